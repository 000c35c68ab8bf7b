//! Lambda entry point of file-status: read config, build clients once, handle rule events.

use anpr_aws::config::ENV_BUCKET;
use anpr_aws::{
    AwsClients, DynamoCameraRegistry, DynamoRequestStore, EnvError, FunctionConfig,
    IotDataPublisher, S3UrlSigner,
};
use anpr_core::presence::Presences;
use anpr_core::status::{StatusConfig, StatusUpdates};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_aws::logging::init();
    let config = FunctionConfig::from_env()?;
    // The status service is shared with upload-completed. A camera status never makes a
    // request `ready`, so this function never signs a URL (its role needs no S3 permission),
    // but the signer is configured the same way.
    let bucket = config.bucket.clone().ok_or(EnvError::Missing(ENV_BUCKET))?;
    let clients = AwsClients::from_env(&config.iot_endpoint).await?;
    let service = StatusUpdates::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &config.table),
        IotDataPublisher::new(clients.iot.clone()),
        S3UrlSigner::new(clients.s3.clone(), &bucket),
        StatusConfig {
            download_url_secs: config.download_url_secs,
        },
    );
    let presences = Presences::new(
        DynamoCameraRegistry::new(clients.dynamo.clone(), &config.table),
        IotDataPublisher::new(clients.iot.clone()),
    );
    let (service, presences) = (&service, &presences);
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<serde_json::Value>| async move {
            let handled = if file_status::is_lifecycle(&e.payload) {
                file_status::handle_lifecycle(presences, &e.payload).await
            } else {
                file_status::handle(service, &e.payload, anpr_protocol::clock::now_secs()).await
            };
            handled
                .map(|handled| tracing::debug!(?handled, "event handled"))
                // A transient failure fails the invocation: Lambda retries the event.
                .map_err(Error::from)
        },
    ))
    .await
}
