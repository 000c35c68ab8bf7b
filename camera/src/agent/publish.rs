//! What the agent publishes, one function per message: encode, hand to the MQTT client. Each
//! says whether it was queued; the loop tracks the QoS 1 ones for their PUBACK.

use crate::mqtt;
use anpr_protocol::shadow::{self as shadow_msg, ReportedUpdate};
use anpr_protocol::{CameraId, FileStatus, FileSync, Health, ProtocolError, topics};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ClientError};
use serde_json::{Map, Value};

/// A message was not handed to the MQTT client.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The message could not be encoded.
    #[error("message not encodable")]
    Encode(#[from] ProtocolError),
    /// The shadow report could not be encoded.
    #[error("report not encodable")]
    Report(#[from] serde_json::Error),
    /// The client's request queue is closed (its event loop is gone).
    #[error("not queued")]
    Queue(#[from] ClientError),
}

/// Publishes a status with QoS 1.
pub async fn status(
    client: &AsyncClient,
    cam: &CameraId,
    s: &FileStatus,
) -> Result<(), PublishError> {
    let bytes = anpr_protocol::encode(s)?;
    client
        .publish(topics::file_status(cam), QoS::AtLeastOnce, false, bytes)
        .await?;
    Ok(())
}

/// Publishes the sync message (QoS 1) that asks the cloud for the open requests.
pub async fn publish_sync(client: &AsyncClient, cam: &CameraId) -> Result<(), PublishError> {
    let bytes = anpr_protocol::encode(&FileSync {})?;
    tracing::info!("new session: asking for the open requests");
    client
        .publish(topics::file_sync(cam), QoS::AtLeastOnce, false, bytes)
        .await?;
    Ok(())
}

/// The health report: small (about 60 bytes), QoS 0.
pub async fn health(client: &AsyncClient, cam: &CameraId, h: &Health) -> Result<(), PublishError> {
    let bytes = anpr_protocol::encode(h)?;
    client
        .publish(topics::health(cam), QoS::AtMostOnce, false, bytes)
        .await?;
    Ok(())
}

/// The retained presence message: `on` at connect (QoS 0), off at a clean stop (QoS 1, like
/// the last will).
pub async fn presence(client: &AsyncClient, cam: &CameraId, on: bool) -> Result<(), PublishError> {
    let qos = if on {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    client
        .publish(topics::presence(cam), qos, true, mqtt::presence_payload(on))
        .await?;
    Ok(())
}

/// Publishes reported configuration keys (QoS 1) to the shadow's `update`.
pub async fn report(
    client: &AsyncClient,
    cam: &CameraId,
    report: Map<String, Value>,
) -> Result<(), PublishError> {
    let bytes = serde_json::to_vec(&ReportedUpdate::new(report))?;
    client
        .publish(
            topics::config_shadow(cam, shadow_msg::UPDATE),
            QoS::AtLeastOnce,
            false,
            bytes,
        )
        .await?;
    Ok(())
}

/// Asks the shadow for its document (QoS 0, empty payload): a change made while the session
/// was gone arrives as `get/accepted`.
pub async fn shadow_get(client: &AsyncClient, cam: &CameraId) -> Result<(), PublishError> {
    client
        .publish(
            topics::config_shadow(cam, shadow_msg::GET),
            QoS::AtMostOnce,
            false,
            Vec::new(),
        )
        .await?;
    Ok(())
}
