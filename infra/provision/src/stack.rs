//! The stack of `infra/template.yaml` around `sam deploy` and `sam delete`:
//!
//! - [`DeployParams`]: the parameters `sam deploy` cannot go without — `IotDataEndpoint`,
//!   looked up ([`data_endpoint_url`], `DescribeEndpoint iot:Data-ATS`), and `WebOrigin`,
//!   checked against the template's pattern ([`web_origin`]) — as `--parameter-overrides`
//!   words;
//! - the IoT rule names a stack's `RulePrefix` gives ([`plate_rule`], [`plate_topic`]), so a
//!   camera's config names the rule of its own stack;
//! - [`teardown`]: what CloudFormation cannot delete by itself — IoT policies still attached to
//!   certificates or identities — detached, and on request the cameras' certificates and
//!   things deleted and the retained media bucket emptied and deleted.

use anpr_protocol::{CameraId, topics};

/// `RulePrefix` of the template when none is given: the rule names of
/// `anpr_protocol::topics::{PLATE_RULE, STATUS_RULE}`.
pub const DEFAULT_RULE_PREFIX: &str = "anpr";

/// Why a stack step stopped. Each variant says what had already been done.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// `WebOrigin` missing or not an origin.
    #[error(
        "web origin {0:?} is not an origin: give the web app's scheme and host (and port), without a path or trailing slash, e.g. https://app.example.com"
    )]
    WebOrigin(String),
    /// `RulePrefix` outside the IoT rule-name alphabet.
    #[error(
        "rule prefix {0:?} is not allowed: IoT rule names take letters, digits and _ only (1 to 100 of them here)"
    )]
    RulePrefix(String),
    /// The stack's outputs lack one the console needs, or are not what
    /// `aws cloudformation describe-stacks --query 'Stacks[0].Outputs'` prints.
    #[error("stack outputs: {0}")]
    Outputs(String),
    /// A bucket name that S3 would refuse.
    #[error("{0:?} is not an S3 bucket name")]
    BucketName(String),
    /// An AWS call failed.
    #[error("{step} failed{}", done_so_far(done))]
    Aws {
        /// What was being done.
        step: String,
        /// What had been done before (so a re-run is understood).
        done: Vec<String>,
        /// The service error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn done_so_far(done: &[String]) -> String {
    if done.is_empty() {
        " (nothing changed yet)".into()
    } else {
        format!(" after: {}", done.join("; "))
    }
}

/// The IoT rule plate reads go through for `prefix` (`{prefix}_plate_reads`).
pub fn plate_rule(prefix: &str) -> String {
    format!("{prefix}_plate_reads")
}

/// The IoT rule camera file statuses go through for `prefix` (`{prefix}_file_status`).
pub fn status_rule(prefix: &str) -> String {
    format!("{prefix}_file_status")
}

/// The IoT rule connection lifecycle events (camera presence) go through for `prefix`
/// (`{prefix}_camera_presence`).
pub fn presence_rule(prefix: &str) -> String {
    format!("{prefix}_camera_presence")
}

/// The IoT rule a camera's sync message (new broker session) goes through for `prefix`
/// (`{prefix}_file_sync`).
pub fn sync_rule(prefix: &str) -> String {
    format!("{prefix}_file_sync")
}

/// The Basic Ingest topic a camera of the stack with `prefix` publishes plate reads to.
pub fn plate_topic(prefix: &str, camera: &CameraId) -> String {
    topics::plate_reads_basic_ingest(&plate_rule(prefix), camera)
}

/// `prefix` if it fits the template's `RulePrefix` pattern (`^[a-zA-Z0-9_]{1,100}$`).
pub fn rule_prefix(prefix: &str) -> Result<&str, StackError> {
    let ok = (1..=100).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(prefix)
    } else {
        Err(StackError::RulePrefix(prefix.to_owned()))
    }
}

/// `origin` if it fits the template's `WebOrigin` pattern (`^https?://[^/*\s]+$`).
pub fn web_origin(origin: &str) -> Result<&str, StackError> {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains(['/', '*']) && !h.contains(char::is_whitespace) => {
            Ok(origin)
        }
        _ => Err(StackError::WebOrigin(origin.to_owned())),
    }
}

/// `name` if empty (the template's default name) or an S3 bucket name (the template's
/// `MediaBucketName` pattern `^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`).
pub fn bucket_name(name: &str) -> Result<&str, StackError> {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = name.is_empty()
        || ((3..=63).contains(&b.len())
            && b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'.' || *c == b'-'));
    if ok {
        Ok(name)
    } else {
        Err(StackError::BucketName(name.to_owned()))
    }
}

/// The account's IoT data endpoint as the URL `IotDataEndpoint` takes (`https://{host}`).
pub async fn data_endpoint_url(iot: &aws_sdk_iot::Client) -> Result<String, StackError> {
    crate::endpoint(iot, None, "iot:Data-ATS")
        .await
        .map(|host| format!("https://{host}"))
        .map_err(|e| StackError::Aws {
            step: "DescribeEndpoint iot:Data-ATS".into(),
            done: Vec::new(),
            source: Box::new(e),
        })
}

/// The parameters `scripts/deploy` passes to `sam deploy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployParams {
    /// `IotDataEndpoint`: `https://{host}`.
    pub iot_data_endpoint: String,
    /// `WebOrigin`.
    pub web_origin: String,
    /// `RulePrefix`; the template's default when `None`.
    pub rule_prefix: Option<String>,
    /// `AppName`; the template's default when `None`.
    pub app_name: Option<String>,
    /// `MediaBucketName`; the template's default when `None`.
    pub media_bucket_name: Option<String>,
}

impl DeployParams {
    /// Checks the given values against the template's patterns.
    pub fn new(
        iot_data_endpoint: String,
        web_origin: &str,
        rule_prefix: Option<&str>,
        app_name: Option<&str>,
        media_bucket_name: Option<&str>,
    ) -> Result<Self, StackError> {
        Ok(Self {
            iot_data_endpoint,
            web_origin: self::web_origin(web_origin)?.to_owned(),
            rule_prefix: rule_prefix.map(rule_prefix_owned).transpose()?,
            app_name: app_name.map(str::to_owned),
            media_bucket_name: media_bucket_name
                .map(|b| bucket_name(b).map(str::to_owned))
                .transpose()?,
        })
    }

    /// `Key=Value` words for `sam deploy --parameter-overrides` (no value holds a space: the
    /// patterns above refuse whitespace).
    pub fn overrides(&self) -> Vec<String> {
        let mut out = vec![
            format!("IotDataEndpoint={}", self.iot_data_endpoint),
            format!("WebOrigin={}", self.web_origin),
        ];
        for (key, value) in [
            ("RulePrefix", &self.rule_prefix),
            ("AppName", &self.app_name),
            ("MediaBucketName", &self.media_bucket_name),
        ] {
            if let Some(v) = value {
                out.push(format!("{key}={v}"));
            }
        }
        out
    }
}

fn rule_prefix_owned(p: &str) -> Result<String, StackError> {
    rule_prefix(p).map(str::to_owned)
}

/// What [`teardown`] does.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    /// IoT policies of the stack (output `CameraPolicyName`): detached from every target
    /// (certificates).
    pub policies: Vec<String>,
    /// Also deactivate and delete the certificates the policies were attached to, detach them
    /// from their things, and delete each thing left without a certificate.
    pub delete_certificates: bool,
    /// Delete every object of this bucket (the stack's retained media bucket).
    pub empty_bucket: Option<String>,
    /// After emptying it, delete the bucket too.
    pub delete_bucket: bool,
}

/// What [`teardown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// `(policy, target)` pairs detached.
    pub detached: Vec<(String, String)>,
    /// Certificate ids deleted.
    pub certificates_deleted: Vec<String>,
    /// Things deleted.
    pub things_deleted: Vec<String>,
    /// Objects deleted from the bucket.
    pub objects_deleted: usize,
    /// Whether the bucket was deleted.
    pub bucket_deleted: bool,
}

impl TeardownReport {
    fn summary(&self) -> Vec<String> {
        let mut s = Vec::new();
        if !self.detached.is_empty() {
            s.push(format!(
                "{} policy attachments removed",
                self.detached.len()
            ));
        }
        if !self.certificates_deleted.is_empty() {
            s.push(format!(
                "certificates deleted: {}",
                self.certificates_deleted.join(", ")
            ));
        }
        if !self.things_deleted.is_empty() {
            s.push(format!(
                "things deleted: {}",
                self.things_deleted.join(", ")
            ));
        }
        if self.objects_deleted > 0 {
            s.push(format!("{} objects deleted", self.objects_deleted));
        }
        s
    }
}

fn aws_err<E: std::error::Error + Send + Sync + 'static>(
    step: impl Into<String>,
    report: &TeardownReport,
) -> impl FnOnce(E) -> StackError {
    let (step, done) = (step.into(), report.summary());
    move |e| StackError::Aws {
        step,
        done,
        source: Box::new(e),
    }
}

/// Every target an IoT policy is attached to.
async fn policy_targets(
    iot: &aws_sdk_iot::Client,
    policy: &str,
    report: &TeardownReport,
) -> Result<Vec<String>, StackError> {
    let mut targets = Vec::new();
    let mut marker = None;
    loop {
        let out = iot
            .list_targets_for_policy()
            .policy_name(policy)
            .set_marker(marker)
            .send()
            .await
            .map_err(aws_err(format!("ListTargetsForPolicy {policy}"), report))?;
        targets.extend(out.targets.unwrap_or_default());
        marker = out.next_marker.filter(|m| !m.is_empty());
        if marker.is_none() {
            return Ok(targets);
        }
    }
}

/// A certificate's id from its ARN (`arn:…:cert/{id}`); `None` for other targets.
fn certificate_id(target: &str) -> Option<&str> {
    target
        .split_once(":cert/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

async fn delete_certificate(
    iot: &aws_sdk_iot::Client,
    cert_arn: &str,
    cert_id: &str,
    report: &mut TeardownReport,
) -> Result<(), StackError> {
    let things = iot
        .list_principal_things()
        .principal(cert_arn)
        .send()
        .await
        .map_err(aws_err(format!("ListPrincipalThings {cert_id}"), report))?
        .things
        .unwrap_or_default();
    for thing in &things {
        iot.detach_thing_principal()
            .thing_name(thing)
            .principal(cert_arn)
            .send()
            .await
            .map_err(aws_err(
                format!("DetachThingPrincipal {thing} {cert_id}"),
                report,
            ))?;
    }
    iot.update_certificate()
        .certificate_id(cert_id)
        .new_status(aws_sdk_iot::types::CertificateStatus::Inactive)
        .send()
        .await
        .map_err(aws_err(
            format!("UpdateCertificate {cert_id} INACTIVE"),
            report,
        ))?;
    iot.delete_certificate()
        .certificate_id(cert_id)
        .send()
        .await
        .map_err(aws_err(format!("DeleteCertificate {cert_id}"), report))?;
    report.certificates_deleted.push(cert_id.to_owned());
    for thing in things {
        let left = iot
            .list_thing_principals()
            .thing_name(&thing)
            .send()
            .await
            .map_err(aws_err(format!("ListThingPrincipals {thing}"), report))?
            .principals
            .unwrap_or_default();
        // A thing still holding another certificate (of another stack) stays.
        if left.is_empty() {
            iot.delete_thing()
                .thing_name(&thing)
                .send()
                .await
                .map_err(aws_err(format!("DeleteThing {thing}"), report))?;
            report.things_deleted.push(thing);
        }
    }
    Ok(())
}

async fn empty_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    report: &mut TeardownReport,
) -> Result<(), StackError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    loop {
        // Deleting the listed objects and listing again from the start: no continuation token
        // that deletions could invalidate. A listing page holds at most 1000 keys, which is
        // also DeleteObjects' limit.
        let keys: Vec<String> = s3
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .map_err(aws_err(format!("ListObjectsV2 {bucket}"), report))?
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(aws_err("DeleteObjects request", report))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(aws_err("DeleteObjects request", report))?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(aws_err(format!("DeleteObjects {bucket}"), report))?;
        if let Some(e) = out.errors.unwrap_or_default().into_iter().next() {
            let what = format!(
                "{}: {}",
                e.key.unwrap_or_default(),
                e.message.or(e.code).unwrap_or_default()
            );
            return Err(aws_err(format!("DeleteObjects {bucket}"), report)(
                std::io::Error::other(what),
            ));
        }
        report.objects_deleted += keys.len();
    }
}

/// Detaches the stack's IoT policies from every target, then (as asked) deletes the
/// certificates and things, empties and deletes the bucket. Run before `sam delete`: a policy
/// still attached cannot be deleted, and the retained bucket keeps its name taken.
pub async fn teardown(
    iot: &aws_sdk_iot::Client,
    s3: &aws_sdk_s3::Client,
    what: &Teardown,
) -> Result<TeardownReport, StackError> {
    let mut report = TeardownReport::default();
    for policy in &what.policies {
        for target in policy_targets(iot, policy, &report).await? {
            iot.detach_policy()
                .policy_name(policy)
                .target(&target)
                .send()
                .await
                .map_err(aws_err(format!("DetachPolicy {policy} {target}"), &report))?;
            report.detached.push((policy.clone(), target.clone()));
            if what.delete_certificates
                && let Some(id) = certificate_id(&target)
            {
                delete_certificate(iot, &target, id, &mut report).await?;
            }
        }
    }
    if let Some(bucket) = &what.empty_bucket {
        empty_bucket(s3, bucket, &mut report).await?;
        if what.delete_bucket {
            s3.delete_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(aws_err(format!("DeleteBucket {bucket}"), &report))?;
            report.bucket_deleted = true;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_gives_the_rule_names_the_protocol_crate_knows() {
        assert_eq!(plate_rule(DEFAULT_RULE_PREFIX), topics::PLATE_RULE);
        assert_eq!(status_rule(DEFAULT_RULE_PREFIX), topics::STATUS_RULE);
        assert_eq!(sync_rule(DEFAULT_RULE_PREFIX), topics::SYNC_RULE);
        let cam = CameraId::parse("cam-1").expect("valid");
        assert_eq!(
            plate_topic("second_stack", &cam),
            "$aws/rules/second_stack_plate_reads/cam-1/plates"
        );
    }

    #[test]
    fn rule_prefixes_take_the_rule_name_alphabet_only() {
        for ok in ["anpr", "Fleet_2", "a"] {
            assert!(rule_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "anpr-2", "an pr", "anpr/x", "a".repeat(101).as_str()] {
            assert!(rule_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn web_origins_are_scheme_and_host_only() {
        for ok in ["https://app.example.com", "http://localhost:5173"] {
            assert!(web_origin(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://*.example.com",
            "https://app example.com",
            "ftp://app.example.com",
        ] {
            let e = web_origin(bad).expect_err(bad);
            assert!(e.to_string().contains("e.g. https://"), "{e}");
        }
    }

    #[test]
    fn bucket_names_are_empty_or_s3_names() {
        for ok in ["", "anpr-media-2", "a.b.c"] {
            assert!(bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Anpr-media", "-anpr", "anpr-", "anpr_media"] {
            assert!(bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_name_every_given_parameter_and_only_those() {
        let p = DeployParams::new(
            "https://x-ats.iot.eu-west-1.amazonaws.com".into(),
            "https://app.example.com",
            Some("fleet2"),
            None,
            Some("fleet2-media"),
        )
        .expect("valid");
        assert_eq!(
            p.overrides(),
            [
                "IotDataEndpoint=https://x-ats.iot.eu-west-1.amazonaws.com",
                "WebOrigin=https://app.example.com",
                "RulePrefix=fleet2",
                "MediaBucketName=fleet2-media",
            ]
        );
        assert!(DeployParams::new("https://x".into(), "https://a.b/", None, None, None).is_err());
    }

    #[test]
    fn only_certificate_targets_have_a_certificate_id() {
        assert_eq!(
            certificate_id("arn:aws:iot:us-east-1:123456789012:cert/abc123"),
            Some("abc123")
        );
        assert_eq!(certificate_id("us-east-1:1234-abcd"), None);
    }
}

/// The web console's `config.json` for the stack whose outputs are `outputs` (the JSON array
/// `aws cloudformation describe-stacks --query 'Stacks[0].Outputs'` prints): the API's URL, the
/// IoT endpoint's MQTT-over-WSS URL, and the hosted UI sign-in (`auth`). The keys are the ones
/// the console reads (`infra/local/src/console.rs`'s `ConsoleConfig`); no demo users.
pub fn console_config(outputs: &serde_json::Value) -> Result<serde_json::Value, StackError> {
    let list = outputs.as_array().ok_or_else(|| {
        StackError::Outputs("not a JSON array of {OutputKey, OutputValue}".into())
    })?;
    let get = |key: &str| {
        list.iter()
            .find(|o| o["OutputKey"] == key)
            .and_then(|o| o["OutputValue"].as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| StackError::Outputs(format!("no output {key}")))
    };
    let iot = get("IotDataEndpoint")?;
    let host = iot
        .strip_prefix("https://")
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| {
            StackError::Outputs(format!("IotDataEndpoint {iot:?} is not https://{{host}}"))
        })?;
    Ok(serde_json::json!({
        "api_url": get("ApiUrl")?.trim_end_matches('/'),
        "mqtt_url": format!("wss://{host}/mqtt"),
        "mqtt_keepalive_secs": 120,
        "auth": {
            "domain_url": get("AuthDomainUrl")?,
            "client_id": get("UserPoolClientId")?,
            "authorizer": get("WebAuthorizerName")?,
        },
        "sample_files": [],
    }))
}

#[cfg(test)]
mod console_config_tests {
    use super::*;

    #[test]
    fn the_consoles_configuration_comes_from_the_stacks_outputs() {
        let out = |k: &str, v: &str| serde_json::json!({"OutputKey": k, "OutputValue": v});
        let outputs = serde_json::json!([
            out(
                "ApiUrl",
                "https://abc123.execute-api.eu-west-1.amazonaws.com"
            ),
            out(
                "IotDataEndpoint",
                "https://a1b2c3-ats.iot.eu-west-1.amazonaws.com"
            ),
            out(
                "AuthDomainUrl",
                "https://anpr-123456789012.auth.eu-west-1.amazoncognito.com"
            ),
            out("UserPoolClientId", "4abc5def6ghi"),
            out("WebAuthorizerName", "anpr-web"),
            out("TableName", "anpr"),
        ]);
        let c = console_config(&outputs).unwrap();
        assert_eq!(
            c["mqtt_url"],
            "wss://a1b2c3-ats.iot.eu-west-1.amazonaws.com/mqtt"
        );
        assert_eq!(
            c["api_url"],
            "https://abc123.execute-api.eu-west-1.amazonaws.com"
        );
        assert_eq!(c["auth"]["authorizer"], "anpr-web");
        assert_eq!(c["auth"]["client_id"], "4abc5def6ghi");
        assert_eq!(c["mqtt_keepalive_secs"], 120);
        let mut missing = outputs.as_array().unwrap().clone();
        missing.retain(|o| o["OutputKey"] != "AuthDomainUrl");
        assert!(matches!(
            console_config(&serde_json::Value::Array(missing)),
            Err(StackError::Outputs(m)) if m.contains("AuthDomainUrl")
        ));
        assert!(console_config(&serde_json::json!({"Stacks": []})).is_err());
    }
}
