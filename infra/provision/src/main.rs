//! `provision-camera`: provisions one camera against a deployed stack and writes its
//! certificate, private key and config file. See `docs/infra.md`.

use anpr_aws::DynamoCameraRegistry;
use anpr_core::OrgId;
use anpr_protocol::CameraId;
use anpr_provision::{DevicePaths, Request, provision};
use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;

/// Provision an ANPR camera: IoT thing, certificate and keys, policy, registry entry, config.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Camera id (thing name, MQTT client id): letters, digits, `-`, `_`.
    #[arg(long)]
    camera_id: String,
    /// Human label stored with the camera.
    #[arg(long)]
    name: Option<String>,
    /// Organisation the camera belongs to (a-z, 0-9, `-`, `_`): only its users see the camera,
    /// its requests and its plate reads.
    #[arg(long)]
    org: String,
    /// DynamoDB table (stack output TableName).
    #[arg(long)]
    table: String,
    /// Media bucket (stack output MediaBucketName).
    #[arg(long)]
    bucket: String,
    /// Camera IoT policy (stack output CameraPolicyName).
    #[arg(long, default_value = "anpr-camera")]
    policy: String,
    /// IoT role alias (stack output CameraRoleAlias).
    #[arg(long, default_value = "anpr-camera-upload")]
    role_alias: String,
    /// The stack's RulePrefix parameter: the camera publishes plate reads to
    /// `$aws/rules/{prefix}_plate_reads/{camera}/plates`.
    #[arg(long, default_value = anpr_provision::stack::DEFAULT_RULE_PREFIX)]
    rule_prefix: String,
    /// Region of the stack; default: the AWS CLI/SDK configuration.
    #[arg(long)]
    region: Option<String>,
    /// IoT data endpoint host; default: looked up (iot:Data-ATS).
    #[arg(long)]
    data_endpoint: Option<String>,
    /// Credentials provider endpoint host; default: looked up.
    #[arg(long)]
    credentials_endpoint: Option<String>,
    /// Where the files go on the camera (cert, key, CA, config).
    #[arg(long, default_value = "/etc/anpr")]
    device_config_dir: PathBuf,
    /// Directory of requestable files on the camera.
    #[arg(long, default_value = "/var/lib/anpr/media")]
    device_media_dir: PathBuf,
    /// Agent state directory on the camera.
    #[arg(long, default_value = "/var/lib/anpr/state")]
    device_state_dir: PathBuf,
    /// Local output directory (must be new or empty); default: ./cameras/{camera-id}.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let camera_id = CameraId::parse(&args.camera_id).context("--camera-id")?;
    let org = OrgId::parse(&args.org).context("--org")?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    let region = sdk
        .region()
        .map(ToString::to_string)
        .context("no region: pass --region or configure one")?;
    let iot = aws_sdk_iot::Client::new(&sdk);
    let registry = DynamoCameraRegistry::new(aws_sdk_dynamodb::Client::new(&sdk), &args.table);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("cameras").join(camera_id.as_str()));
    let req = Request {
        camera_id,
        name: args.name,
        org,
        policy: args.policy,
        role_alias: args.role_alias,
        table: args.table,
        bucket: args.bucket,
        region,
        rule_prefix: args.rule_prefix,
        data_endpoint: args.data_endpoint,
        credentials_endpoint: args.credentials_endpoint,
        device: DevicePaths {
            config_dir: args.device_config_dir,
            media_dir: args.device_media_dir,
            state_dir: args.device_state_dir,
        },
        out_dir,
    };
    let done = provision(&iot, &registry, &req).await?;
    println!("thing:       {}", done.thing_arn);
    println!("certificate: {}", done.certificate_arn);
    println!("config:      {}", done.config_path.display());
    println!(
        "copy {}/* and Amazon Root CA 1 ({}) to {} on the camera",
        req.out_dir.display(),
        anpr_provision::CA_FILE,
        req.device.config_dir.display()
    );
    Ok(())
}
