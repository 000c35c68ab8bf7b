//! A configuration built in code: [`Config::builder`].

use super::*;

/// Builds a [`Config`] in code (tests, the local stack): [`Config::builder`] with the
/// required settings, a method per section, then [`ConfigBuilder::build`], which checks what
/// [`Config::parse`] checks.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    pub(super) camera_id: CameraId,
    pub(super) media_dir: PathBuf,
    pub(super) state_dir: PathBuf,
    pub(super) mqtt: Option<MqttSection>,
    pub(super) upload: Option<UploadSection>,
    pub(super) credentials: Option<CredentialsSection>,
    pub(super) health: HealthSection,
    pub(super) outbox: OutboxSection,
    pub(super) remote: RemoteSection,
    pub(super) media_quota_bytes: Option<u64>,
    pub(super) recognizer: Option<RecognizerSection>,
}

impl ConfigBuilder {
    /// `[mqtt]` (required).
    pub fn mqtt(mut self, mqtt: MqttSection) -> Self {
        self.mqtt = Some(mqtt);
        self
    }

    /// `[upload]` (required).
    pub fn upload(mut self, upload: UploadSection) -> Self {
        self.upload = Some(upload);
        self
    }

    /// `[credentials]` (required).
    pub fn credentials(mut self, credentials: CredentialsSection) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// `[health]`.
    pub fn health(mut self, health: HealthSection) -> Self {
        self.health = health;
        self
    }

    /// `[outbox]`.
    pub fn outbox(mut self, outbox: OutboxSection) -> Self {
        self.outbox = outbox;
        self
    }

    /// `[remote]`.
    pub fn remote(mut self, remote: RemoteSection) -> Self {
        self.remote = remote;
        self
    }

    /// `media_quota_bytes` (`None`: no quota, the default).
    pub fn media_quota_bytes(mut self, bytes: Option<u64>) -> Self {
        self.media_quota_bytes = bytes;
        self
    }

    /// `[recognizer]` (`None`: no frame feed, the default).
    pub fn recognizer(mut self, recognizer: Option<RecognizerSection>) -> Self {
        self.recognizer = recognizer;
        self
    }

    /// The configuration: relative paths resolved against the current directory, then
    /// validated as a file is; a missing required section is refused naming it.
    pub fn build(self) -> Result<Config, ConfigError> {
        let missing = |section: &'static str| invalid(section, "required section missing");
        Config {
            camera_id: self.camera_id,
            media_dir: self.media_dir,
            state_dir: self.state_dir,
            mqtt: self.mqtt.ok_or_else(|| missing("mqtt"))?,
            upload: self.upload.ok_or_else(|| missing("upload"))?,
            credentials: self.credentials.ok_or_else(|| missing("credentials"))?,
            health: self.health,
            outbox: self.outbox,
            remote: self.remote,
            media_quota_bytes: self.media_quota_bytes,
            recognizer: self.recognizer,
        }
        .resolved_and_valid()
    }
}
