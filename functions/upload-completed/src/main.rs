//! Lambda entry point of upload-completed: read config, build clients once, handle S3 events.

use anpr_aws::config::ENV_BUCKET;
use anpr_aws::{
    AwsClients, DynamoRequestStore, EnvError, FunctionConfig, IotDataPublisher, S3UrlSigner,
};
use anpr_core::status::{StatusConfig, StatusUpdates};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_aws::logging::init();
    let config = FunctionConfig::from_env()?;
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
    let (service, bucket) = (&service, bucket.as_str());
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<serde_json::Value>| async move {
            upload_completed::handle(service, bucket, &e.payload)
                .await
                .map(|summary| tracing::info!(?summary, "event handled"))
                // A transient failure fails the invocation: Lambda retries the event.
                .map_err(Error::from)
        },
    ))
    .await
}
