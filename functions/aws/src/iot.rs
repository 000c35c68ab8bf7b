//! The device publisher through the AWS IoT data plane (`iotdata:Publish`).

use crate::errors::is_retryable;
use anpr_core::PublishError;
use anpr_core::ports::DevicePublisher;
use aws_sdk_iotdataplane::primitives::Blob;

/// [`DevicePublisher`] over the IoT data plane.
#[derive(Debug, Clone)]
pub struct IotDataPublisher {
    client: aws_sdk_iotdataplane::Client,
}

impl IotDataPublisher {
    /// Wraps a client built at cold start.
    pub fn new(client: aws_sdk_iotdataplane::Client) -> Self {
        Self { client }
    }
}

impl DevicePublisher for IotDataPublisher {
    async fn publish(&self, topic: &str, payload: Vec<u8>, qos: u8) -> Result<(), PublishError> {
        self.client
            .publish()
            .topic(topic)
            .qos(i32::from(qos))
            .payload(Blob::new(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PublishError {
                topic: topic.to_owned(),
                retryable: is_retryable(&e),
                source: Box::new(e),
            })
    }
}
