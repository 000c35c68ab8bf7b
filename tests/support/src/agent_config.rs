//! The `anpr-camera` configuration a test's agent runs with against the local stand-ins (the
//! broker, moto's S3, the credentials provider): built with [`anpr_camera::Config::builder`],
//! and written as the agent's file ([`write`]) when the agent runs as a process.

use anpr_camera::Config;
use anpr_camera::config::{
    ConfigBuilder, CredentialsSection, MIN_PART_SIZE, MqttSection, OutboxSection, UploadSection,
};
use anpr_protocol::CameraId;
use std::path::Path;

/// Where a test's agent finds everything.
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
}

impl AgentConfig<'_> {
    /// `[mqtt]`: the broker on localhost, no boot jitter.
    pub fn mqtt(&self) -> MqttSection {
        MqttSection {
            port: self.mqtt_port,
            boot_jitter_secs: 0,
            ..MqttSection::new("localhost", self.ca, self.cert, self.key)
        }
    }

    /// `[upload]`: the S3 endpoint, path-style, multipart from 5 MiB in 5 MiB parts.
    pub fn upload(&self) -> UploadSection {
        UploadSection {
            endpoint_url: Some(self.s3_endpoint.trim_end_matches('/').to_owned()),
            force_path_style: true,
            multipart_threshold_bytes: MIN_PART_SIZE,
            part_size_bytes: MIN_PART_SIZE,
            ..UploadSection::new(self.bucket, "us-east-1")
        }
    }

    /// The builder with every section set ([`Self::mqtt`], [`Self::upload`], the credentials
    /// stand-in with role alias `anpr-camera`, the outbox's backlog drained at once); a test
    /// replaces sections before [`ConfigBuilder::build`].
    pub fn builder(&self) -> ConfigBuilder {
        let camera = CameraId::parse(self.camera).expect("a valid camera id");
        Config::builder(camera, self.media, self.state)
            .mqtt(self.mqtt())
            .upload(self.upload())
            .credentials(CredentialsSection {
                port: self.creds_port,
                ..CredentialsSection::new("localhost", "anpr-camera")
            })
            .outbox(OutboxSection {
                drain_start_max_secs: 0,
                ..OutboxSection::default()
            })
    }
}

/// Writes `cfg` to `path` as the agent's configuration file.
pub fn write(cfg: &Config, path: &Path) {
    let text = cfg.to_toml().expect("a config serializes");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
