//! Typed configuration from the environment, read once at cold start, and the SDK clients
//! built from it.

use anpr_core::RequestsConfig;

/// Environment variable: the DynamoDB table name.
pub const ENV_TABLE: &str = "ANPR_TABLE_NAME";
/// Environment variable: the IoT data endpoint URL (`https://xxxx-ats.iot.REGION.amazonaws.com`).
pub const ENV_IOT_ENDPOINT: &str = "ANPR_IOT_DATA_ENDPOINT";
/// Environment variable: the media bucket.
pub const ENV_BUCKET: &str = "ANPR_MEDIA_BUCKET";
/// Environment variable: seconds a camera has to serve a request.
pub const ENV_REQUEST_EXPIRY: &str = "ANPR_REQUEST_EXPIRY_SECS";
/// Environment variable: seconds request items are retained.
pub const ENV_RETENTION: &str = "ANPR_REQUEST_RETENTION_SECS";
/// Environment variable: seconds plate reads are retained.
pub const ENV_READ_RETENTION: &str = "ANPR_READ_RETENTION_SECS";
/// Environment variable: validity of presigned download URLs, seconds.
pub const ENV_URL_VALIDITY: &str = "ANPR_DOWNLOAD_URL_SECS";
/// Environment variable: seconds audit records are retained.
pub const ENV_AUDIT_RETENTION: &str = "ANPR_AUDIT_RETENTION_SECS";
/// Shortest audit retention accepted (seconds): one day. Shorter would let a change be
/// forgotten before anyone looks (and `0`/nonsense is refused at start like every setting).
pub const MIN_AUDIT_RETENTION_SECS: u64 = 24 * 3600;

/// A required setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// Not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// Set, but not valid.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// Variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The HTTPS client's TLS settings could not be built.
    #[error("TLS settings of the AWS HTTPS client")]
    Tls(#[source] aws_smithy_http_client::HttpClientError),
}

/// Everything a function needs, read from the environment.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// DynamoDB table.
    pub table: String,
    /// IoT data endpoint URL.
    pub iot_endpoint: String,
    /// Media bucket, for functions that use it.
    pub bucket: Option<String>,
    /// Request service tunables.
    pub requests: RequestsConfig,
    /// Plate read retention, seconds.
    pub read_retention_secs: u64,
    /// Presigned URL validity, seconds.
    pub download_url_secs: u64,
    /// Audit record retention, seconds (at least [`MIN_AUDIT_RETENTION_SECS`]).
    pub audit_retention_secs: u64,
}

fn var(name: &'static str) -> Result<String, EnvError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or(EnvError::Missing(name))
}

fn secs(name: &'static str, default: u64) -> Result<u64, EnvError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| EnvError::Invalid {
                name,
                reason: format!("{v:?} is not a positive number of seconds"),
            }),
    }
}

/// [`ENV_AUDIT_RETENTION`] as set (`None`: unset): default
/// [`anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS`], else a whole number of seconds of at
/// least [`MIN_AUDIT_RETENTION_SECS`].
pub fn audit_retention(raw: Option<&str>) -> Result<u64, EnvError> {
    let Some(raw) = raw else {
        return Ok(anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS);
    };
    let invalid = |reason: String| EnvError::Invalid {
        name: ENV_AUDIT_RETENTION,
        reason,
    };
    let v: u64 = raw
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{raw:?} is not a whole number of seconds")))?;
    if v < MIN_AUDIT_RETENTION_SECS {
        return Err(invalid(format!(
            "{v} s is less than {MIN_AUDIT_RETENTION_SECS} s (one day)"
        )));
    }
    Ok(v)
}

impl FunctionConfig {
    /// Reads the configuration. `ANPR_TABLE_NAME` and `ANPR_IOT_DATA_ENDPOINT` are required.
    pub fn from_env() -> Result<Self, EnvError> {
        let iot_endpoint = var(ENV_IOT_ENDPOINT)?;
        if !(iot_endpoint.starts_with("https://") || iot_endpoint.starts_with("http://")) {
            return Err(EnvError::Invalid {
                name: ENV_IOT_ENDPOINT,
                reason: "must be a URL (https://…)".into(),
            });
        }
        let d = RequestsConfig::default();
        Ok(Self {
            table: var(ENV_TABLE)?,
            iot_endpoint,
            bucket: std::env::var(ENV_BUCKET).ok().filter(|b| !b.is_empty()),
            requests: RequestsConfig {
                request_expiry_secs: secs(ENV_REQUEST_EXPIRY, d.request_expiry_secs)?,
                retention_secs: secs(ENV_RETENTION, d.retention_secs)?,
                idempotency_secs: d.idempotency_secs,
                max_open_per_camera: d.max_open_per_camera,
            },
            read_retention_secs: secs(ENV_READ_RETENTION, 90 * 24 * 3600)?,
            download_url_secs: secs(ENV_URL_VALIDITY, 900)?,
            audit_retention_secs: audit_retention(
                std::env::var(ENV_AUDIT_RETENTION).ok().as_deref(),
            )?,
        })
    }
}

/// The SDK clients, built once.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// DynamoDB.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// IoT data plane, pointed at the configured endpoint.
    pub iot: aws_sdk_iotdataplane::Client,
    /// S3 (path-style when asked, for local stand-ins).
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Builds every client from the default provider chain (env, profile, Lambda role) on the
    /// compiled-in trust store of [`crate::http`], and the IoT data endpoint. `AWS_ENDPOINT_URL`
    /// (honoured by the SDK) points DynamoDB and S3 at a local stand-in, and
    /// `AWS_S3_FORCE_PATH_STYLE=true` makes S3 requests path-style.
    pub async fn from_env(iot_endpoint: &str) -> Result<Self, EnvError> {
        let sdk = crate::http::sdk_config().await?;
        let s3_path_style = std::env::var("AWS_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true");
        Ok(Self::from_sdk_config(&sdk, iot_endpoint, s3_path_style))
    }

    /// Builds every client from an explicit SDK config (tests, local stack), S3 path-style
    /// when `s3_path_style`.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        iot_endpoint: &str,
        s3_path_style: bool,
    ) -> Self {
        let iot = aws_sdk_iotdataplane::config::Builder::from(sdk)
            .endpoint_url(iot_endpoint)
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(s3_path_style)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            iot: aws_sdk_iotdataplane::Client::from_conf(iot),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_retention_defaults_to_a_year_and_refuses_less_than_a_day_or_nonsense() {
        assert_eq!(
            audit_retention(None).unwrap(),
            anpr_core::audit::DEFAULT_AUDIT_RETENTION_SECS
        );
        assert_eq!(audit_retention(Some("2592000")).unwrap(), 2_592_000);
        assert_eq!(audit_retention(Some(" 86400 ")).unwrap(), 86_400);
        for bad in ["86399", "0", "-1", "", "a year", "1e9"] {
            let e = audit_retention(Some(bad)).unwrap_err();
            assert!(e.to_string().contains(ENV_AUDIT_RETENTION), "{bad}: {e}");
        }
    }
}
