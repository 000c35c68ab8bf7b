//! moto in server mode: SDK configs and IoT publish read-back.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde::Deserialize;
use std::io::{Read, Write};

/// The moto server URL from `ANPR_MOTO_URL` (set by `scripts/test`). Panics with the fix if
/// it is not set: these tests need the real stand-in, they never skip.
pub fn url() -> String {
    std::env::var("ANPR_MOTO_URL").unwrap_or_else(|_| {
        panic!("ANPR_MOTO_URL is not set: run the tests through scripts/test, which starts moto")
    })
}

/// An SDK config pointed at moto with dummy static credentials.
pub fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "moto",
            )),
        )
        .build()
}

/// All SDK clients, pointed at moto (S3 path-style).
pub fn clients() -> anpr_aws::AwsClients {
    anpr_aws::AwsClients::from_sdk_config(&sdk_config(), &url(), true)
}

/// Registers a thing in moto's IoT registry (moto keeps shadows only for registered things,
/// as AWS does for the named shadows of the fleet).
pub async fn create_thing(name: &str) {
    let iot = aws_sdk_iot::Client::new(&sdk_config());
    iot.create_thing()
        .thing_name(name)
        .send()
        .await
        .expect("moto CreateThing");
}

/// Creates a fresh table with the production schema and returns its name.
pub async fn fresh_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = crate::unique("anpr");
    anpr_aws::schema::create_table(client, &name)
        .await
        .expect("create table in moto");
    name
}

/// One publish through the IoT data plane, as moto received it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IotPublish {
    /// Topic.
    pub topic: String,
    /// QoS asked for (`None` if the request had none).
    pub qos: Option<u8>,
    /// Payload bytes.
    #[serde(deserialize_with = "b64")]
    pub payload: Vec<u8>,
}

fn b64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    use base64::Engine as _;
    let s = String::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(serde::de::Error::custom)
}

fn http_get(url: &str) -> std::io::Result<Vec<u8>> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    write!(
        s,
        "GET /{path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("read-back failed: {head}")));
    }
    Ok(buf[split + 4..].to_vec())
}

/// Every IoT data-plane publish moto received on `topic`, oldest first.
pub fn iot_published(topic: &str) -> Vec<IotPublish> {
    let body = http_get(&format!("{}/_anpr/iot/published", url()))
        .expect("read back IoT publishes from scripts/moto_server.py");
    let all: Vec<IotPublish> = serde_json::from_slice(&body).expect("read-back JSON");
    all.into_iter().filter(|p| p.topic == topic).collect()
}
