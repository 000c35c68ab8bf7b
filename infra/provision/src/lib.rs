//! Camera provisioning: creates the camera's AWS IoT thing, a certificate and its keys,
//! attaches the camera IoT policy (from `infra/template.yaml`) to the certificate and the
//! certificate to the thing, registers the camera in the table where the request API looks
//! cameras up, and writes a ready camera config file (the format of `anpr_camera::config`).
//!
//! Nothing is overwritten: the output directory must be new or empty, and the private key is
//! written (mode 0600) the moment AWS returns it, before any later step can fail, since AWS
//! never returns it again.
//!
//! # Layout
//!
//! - this module: [`provision`] (the `provision-camera` binary, `src/main.rs`);
//! - [`stack`]: deploy parameters, rule names per stack, and the teardown before `sam delete`
//!   (the `anpr-stack` binary, `src/bin/anpr-stack.rs`).

pub mod replay;
pub mod stack;

use anpr_aws::DynamoCameraRegistry;
use anpr_core::Camera;
use anpr_core::OrgId;
use anpr_protocol::CameraId;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// File name of the camera's certificate in the output directory.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the camera's private key in the output directory.
pub const KEY_FILE: &str = "private.key";
/// File name of the camera's config file in the output directory.
pub const CONFIG_FILE: &str = "camera.toml";
/// File name the config expects for the CA certificate (Amazon Root CA 1), in the device dir.
pub const CA_FILE: &str = "AmazonRootCA1.pem";

/// Why provisioning stopped. Each variant says what had already been created.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The output directory exists and is not empty.
    #[error("output directory {0} is not empty: refusing to overwrite a camera's keys")]
    OutputNotEmpty(PathBuf),
    /// A local file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The camera IoT policy does not exist (stack not deployed, or another name).
    #[error("IoT policy {policy} not found: deploy infra/template.yaml first or pass --policy")]
    NoPolicy {
        /// The policy name.
        policy: String,
        /// The service error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An AWS IoT call failed.
    #[error("{step} failed{}", created.as_ref().map(|c| format!(" (already created: certificate {c}; attach it or delete it)")).unwrap_or_default())]
    Iot {
        /// What was being done.
        step: &'static str,
        /// The certificate created before the failure, if any.
        created: Option<String>,
        /// The service error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The camera could not be registered in the table.
    #[error(
        "registering the camera in table {table} failed (thing and certificate {certificate} are ready; run again with the same camera to retry)"
    )]
    Register {
        /// The table.
        table: String,
        /// The certificate created.
        certificate: String,
        /// The store error.
        #[source]
        source: anpr_core::StoreError,
    },
    /// A stack setting (the rule prefix) is not one the template allows.
    #[error(transparent)]
    Stack(#[from] stack::StackError),
    /// The config file could not be produced.
    #[error("cannot encode the camera config: {0}")]
    Encode(#[from] toml::ser::Error),
}

/// Where things will be on the camera, for the config file.
#[derive(Debug, Clone)]
pub struct DevicePaths {
    /// Directory holding the certificate, key, CA and config on the device.
    pub config_dir: PathBuf,
    /// Directory whose files may be requested.
    pub media_dir: PathBuf,
    /// Directory for the agent's state.
    pub state_dir: PathBuf,
}

impl Default for DevicePaths {
    fn default() -> Self {
        Self {
            config_dir: PathBuf::from("/etc/anpr"),
            media_dir: PathBuf::from("/var/lib/anpr/media"),
            state_dir: PathBuf::from("/var/lib/anpr/state"),
        }
    }
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct Request {
    /// The camera id: thing name, MQTT client id.
    pub camera_id: CameraId,
    /// Human label stored in the registry.
    pub name: Option<String>,
    /// The organisation the camera belongs to (only its users see it).
    pub org: OrgId,
    /// The camera IoT policy (stack output `CameraPolicyName`).
    pub policy: String,
    /// The role alias (stack output `CameraRoleAlias`).
    pub role_alias: String,
    /// The table (stack output `TableName`).
    pub table: String,
    /// The media bucket (stack output `MediaBucketName`).
    pub bucket: String,
    /// The region of the stack.
    pub region: String,
    /// The stack's `RulePrefix` (default [`stack::DEFAULT_RULE_PREFIX`]): names the plate
    /// rule whose Basic Ingest topic the camera publishes to.
    pub rule_prefix: String,
    /// The IoT data endpoint host; looked up (`iot:Data-ATS`) when `None`.
    pub data_endpoint: Option<String>,
    /// The credentials provider endpoint host; looked up when `None`.
    pub credentials_endpoint: Option<String>,
    /// Paths on the device.
    pub device: DevicePaths,
    /// Local directory the certificate, key and config are written to.
    pub out_dir: PathBuf,
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The thing's ARN.
    pub thing_arn: String,
    /// The certificate's ARN.
    pub certificate_arn: String,
    /// The certificate's id.
    pub certificate_id: String,
    /// The config file written.
    pub config_path: PathBuf,
}

/// The camera config file written by provisioning: the required settings of
/// `anpr_camera::config::Config`; everything else keeps the agent's defaults.
#[derive(Debug, Clone, Serialize)]
pub struct CameraConfigFile {
    /// Thing name.
    pub camera_id: String,
    /// Requestable files.
    pub media_dir: PathBuf,
    /// Agent state.
    pub state_dir: PathBuf,
    /// `[mqtt]`.
    pub mqtt: MqttSection,
    /// `[upload]`.
    pub upload: UploadSection,
    /// `[credentials]`.
    pub credentials: CredentialsSection,
}

/// `[mqtt]` of [`CameraConfigFile`].
#[derive(Debug, Clone, Serialize)]
pub struct MqttSection {
    /// IoT data endpoint host.
    pub host: String,
    /// 8883.
    pub port: u16,
    /// Amazon Root CA 1.
    pub ca_file: PathBuf,
    /// The camera's certificate.
    pub cert_file: PathBuf,
    /// The camera's key.
    pub key_file: PathBuf,
    /// Basic Ingest topic of the stack's plate rule ([`stack::plate_topic`]).
    pub plate_topic: String,
}

/// `[upload]` of [`CameraConfigFile`].
#[derive(Debug, Clone, Serialize)]
pub struct UploadSection {
    /// Media bucket.
    pub bucket: String,
    /// Its region.
    pub region: String,
}

/// `[credentials]` of [`CameraConfigFile`].
#[derive(Debug, Clone, Serialize)]
pub struct CredentialsSection {
    /// Credentials provider endpoint host.
    pub host: String,
    /// Role alias.
    pub role_alias: String,
}

impl CameraConfigFile {
    /// The config for `req` with the resolved endpoints.
    pub fn new(req: &Request, data_host: &str, credentials_host: &str) -> Self {
        let dir = &req.device.config_dir;
        Self {
            camera_id: req.camera_id.to_string(),
            media_dir: req.device.media_dir.clone(),
            state_dir: req.device.state_dir.clone(),
            mqtt: MqttSection {
                host: data_host.to_owned(),
                port: 8883,
                ca_file: dir.join(CA_FILE),
                cert_file: dir.join(CERT_FILE),
                key_file: dir.join(KEY_FILE),
                plate_topic: stack::plate_topic(&req.rule_prefix, &req.camera_id),
            },
            upload: UploadSection {
                bucket: req.bucket.clone(),
                region: req.region.clone(),
            },
            credentials: CredentialsSection {
                host: credentials_host.to_owned(),
                role_alias: req.role_alias.clone(),
            },
        }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> Result<String, ProvisionError> {
        Ok(toml::to_string(self)?)
    }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

fn write(path: &Path, content: &str, private: bool) -> Result<(), ProvisionError> {
    use std::io::Write as _;
    let err = |source| ProvisionError::Write {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

fn prepare_out_dir(dir: &Path) -> Result<(), ProvisionError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|source| ProvisionError::Write {
                path: dir.to_owned(),
                source,
            })?
            .next()
            .is_none();
        if !empty {
            return Err(ProvisionError::OutputNotEmpty(dir.to_owned()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| ProvisionError::Write {
        path: dir.to_owned(),
        source,
    })
}

pub(crate) async fn endpoint(
    iot: &aws_sdk_iot::Client,
    given: Option<&str>,
    kind: &'static str,
) -> Result<String, ProvisionError> {
    if let Some(host) = given {
        return Ok(host.to_owned());
    }
    let out = iot
        .describe_endpoint()
        .endpoint_type(kind)
        .send()
        .await
        .map_err(|e| ProvisionError::Iot {
            step: "DescribeEndpoint",
            created: None,
            source: boxed(e),
        })?;
    out.endpoint_address.ok_or_else(|| ProvisionError::Iot {
        step: "DescribeEndpoint",
        created: None,
        source: format!("no {kind} endpoint address returned").into(),
    })
}

/// Provisions one camera (see the module docs for the steps and their order).
pub async fn provision(
    iot: &aws_sdk_iot::Client,
    registry: &DynamoCameraRegistry,
    req: &Request,
) -> Result<Provisioned, ProvisionError> {
    stack::rule_prefix(&req.rule_prefix)?;
    prepare_out_dir(&req.out_dir)?;
    // Everything that can fail without side effects first.
    iot.get_policy()
        .policy_name(&req.policy)
        .send()
        .await
        .map_err(|e| ProvisionError::NoPolicy {
            policy: req.policy.clone(),
            source: boxed(e),
        })?;
    let data_host = endpoint(iot, req.data_endpoint.as_deref(), "iot:Data-ATS").await?;
    let creds_host = endpoint(
        iot,
        req.credentials_endpoint.as_deref(),
        "iot:CredentialProvider",
    )
    .await?;

    let thing = req.camera_id.as_str();
    let thing_arn = match iot.create_thing().thing_name(thing).send().await {
        Ok(out) => out.thing_arn.unwrap_or_default(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            // A camera being re-provisioned (new certificate): the thing stays.
            iot.describe_thing()
                .thing_name(thing)
                .send()
                .await
                .map_err(|e| ProvisionError::Iot {
                    step: "DescribeThing",
                    created: None,
                    source: boxed(e),
                })?
                .thing_arn
                .unwrap_or_default()
        }
        Err(e) => {
            return Err(ProvisionError::Iot {
                step: "CreateThing",
                created: None,
                source: boxed(e),
            });
        }
    };

    let cert = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .map_err(|e| ProvisionError::Iot {
            step: "CreateKeysAndCertificate",
            created: None,
            source: boxed(e),
        })?;
    let (Some(cert_arn), Some(cert_id), Some(pem), Some(key)) = (
        cert.certificate_arn,
        cert.certificate_id,
        cert.certificate_pem,
        cert.key_pair.and_then(|k| k.private_key),
    ) else {
        return Err(ProvisionError::Iot {
            step: "CreateKeysAndCertificate",
            created: None,
            source: "the answer lacks the certificate or its private key".into(),
        });
    };
    write(&req.out_dir.join(KEY_FILE), &key, true)?;
    write(&req.out_dir.join(CERT_FILE), &pem, false)?;

    let step_err = |step: &'static str| {
        let created = Some(cert_id.clone());
        move |e: Box<dyn std::error::Error + Send + Sync>| ProvisionError::Iot {
            step,
            created,
            source: e,
        }
    };
    iot.attach_policy()
        .policy_name(&req.policy)
        .target(&cert_arn)
        .send()
        .await
        .map_err(|e| step_err("AttachPolicy")(boxed(e)))?;
    iot.attach_thing_principal()
        .thing_name(thing)
        .principal(&cert_arn)
        .send()
        .await
        .map_err(|e| step_err("AttachThingPrincipal")(boxed(e)))?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    registry
        .register(&Camera {
            camera_id: req.camera_id.clone(),
            name: req.name.clone(),
            registered_at: now,
            org: Some(req.org.clone()),
            presence: None,
        })
        .await
        .map_err(|source| ProvisionError::Register {
            table: req.table.clone(),
            certificate: cert_id.clone(),
            source,
        })?;

    let config_path = req.out_dir.join(CONFIG_FILE);
    let config = CameraConfigFile::new(req, &data_host, &creds_host).to_toml()?;
    write(&config_path, &config, false)?;
    Ok(Provisioned {
        thing_arn,
        certificate_arn: cert_arn,
        certificate_id: cert_id,
        config_path,
    })
}
