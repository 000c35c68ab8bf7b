//! The cameras' configuration shadows through the IoT data plane (`iot:UpdateThingShadow`,
//! `iot:GetThingShadow` on the named shadow `config`).

use crate::errors::is_retryable;
use anpr_core::StoreError;
use anpr_core::ports::ConfigShadows;
use anpr_protocol::CameraId;
use anpr_protocol::shadow::Document;
use anpr_protocol::topics::CONFIG_SHADOW;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_iotdataplane::primitives::Blob;
use serde_json::{Map, Value};

/// [`ConfigShadows`] over the IoT data plane.
#[derive(Debug, Clone)]
pub struct IotConfigShadows {
    client: aws_sdk_iotdataplane::Client,
}

impl IotConfigShadows {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Self {
        Self { client }
    }
}

fn backend<E, R>(e: aws_sdk_iotdataplane::error::SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Backend {
        retryable: is_retryable(&e),
        source: Box::new(e),
    }
}

impl ConfigShadows for IotConfigShadows {
    async fn desire(
        &self,
        camera: &CameraId,
        desired: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let payload = anpr_core::shadow::desired_update(desired, expected_version);
        let body = serde_json::to_vec(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self
            .client
            .update_thing_shadow()
            .thing_name(camera.as_str())
            .shadow_name(CONFIG_SHADOW)
            .payload(Blob::new(body))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn read(&self, camera: &CameraId) -> Result<Option<Document>, StoreError> {
        match self
            .client
            .get_thing_shadow()
            .thing_name(camera.as_str())
            .shadow_name(CONFIG_SHADOW)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out.payload.map(Blob::into_inner).unwrap_or_default();
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("shadow document: {e}")))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(e)),
        }
    }
}
