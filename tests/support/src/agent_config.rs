//! The `anpr-camera` configuration file a test writes for an agent it runs against the local
//! stand-ins (the broker, moto's S3, the credentials provider), as TOML text.

use std::path::Path;

/// Where a test's agent finds everything; `mqtt_extra` and `upload_extra` are more lines of
/// those tables (timings, topics, or further tables after `[upload]`).
#[derive(Debug, Clone)]
pub struct AgentConfig<'a> {
    /// Camera id (= certificate CN = thing name).
    pub camera: &'a str,
    /// Media directory.
    pub media: &'a Path,
    /// State directory (journal, outbox, upload checkpoints).
    pub state: &'a Path,
    /// Broker port on localhost (or a proxy in front of it).
    pub mqtt_port: u16,
    /// CA certificate, camera certificate and key.
    pub ca: &'a Path,
    /// Camera certificate.
    pub cert: &'a Path,
    /// Camera key.
    pub key: &'a Path,
    /// Media bucket.
    pub bucket: &'a str,
    /// S3 endpoint URL (moto, or a proxy in front of it).
    pub s3_endpoint: &'a str,
    /// Credentials provider stand-in port on localhost.
    pub creds_port: u16,
    /// More `[mqtt]` lines.
    pub mqtt_extra: &'a str,
    /// More `[upload]` lines.
    pub upload_extra: &'a str,
}

/// The agent's frame feed: a `[recognizer]` section and the media quota.
#[derive(Debug, Clone)]
pub struct RecognizerToml<'a> {
    /// Directory frames are dropped into.
    pub watch_dir: &'a Path,
    /// Model files; default: the agent's (`ANPR_MODELS_DIR`, else `.local/models`).
    pub models_dir: Option<&'a Path>,
    /// `media_quota_bytes`, if any.
    pub media_quota_bytes: Option<u64>,
    /// More `[recognizer]` lines (`group_gap_ms = 500`, `save = "frame"`, …).
    pub extra: &'a str,
}

impl AgentConfig<'_> {
    /// The TOML text with a `[recognizer]` section (and `media_quota_bytes`).
    pub fn toml_with_recognizer(&self, r: &RecognizerToml<'_>) -> String {
        let quota = r
            .media_quota_bytes
            .map(|q| format!("media_quota_bytes = {q}\n"))
            .unwrap_or_default();
        let models = r
            .models_dir
            .map(|m| format!("models_dir = \"{}\"\n", m.display()))
            .unwrap_or_default();
        format!(
            "{quota}{}\n[recognizer]\nwatch_dir = \"{}\"\n{models}{}\n",
            self.toml(),
            r.watch_dir.display(),
            r.extra
        )
    }

    /// The TOML text (multipart from 5 MiB, 5 MiB parts, role alias `anpr-camera`).
    pub fn toml(&self) -> String {
        format!(
            r#"camera_id = "{camera}"
media_dir = "{media}"
state_dir = "{state}"
[mqtt]
host = "localhost"
port = {mport}
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
boot_jitter_secs = 0
{mqtt_extra}
[upload]
bucket = "{bucket}"
region = "us-east-1"
endpoint_url = "{s3}"
force_path_style = true
multipart_threshold_bytes = 5242880
part_size_bytes = 5242880
{upload_extra}
[credentials]
host = "localhost"
port = {cport}
role_alias = "anpr-camera"
[outbox]
drain_start_max_secs = 0
"#,
            camera = self.camera,
            media = self.media.display(),
            state = self.state.display(),
            mport = self.mqtt_port,
            ca = self.ca.display(),
            cert = self.cert.display(),
            key = self.key.display(),
            mqtt_extra = self.mqtt_extra,
            bucket = self.bucket,
            s3 = self.s3_endpoint.trim_end_matches('/'),
            upload_extra = self.upload_extra,
            cport = self.creds_port,
        )
    }
}
