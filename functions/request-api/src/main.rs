//! Lambda entry point of the request API: read config, build clients once, serve the API.

use anpr_aws::{
    AwsClients, DynamoAuditLog, DynamoCameraRegistry, DynamoPlateReadStore, DynamoRequestStore,
    FunctionConfig, IotConfigShadows, IotDataPublisher, S3UrlSigner,
};
use anpr_core::{CameraConfigs, FileRequests};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    anpr_aws::logging::init();
    let config = FunctionConfig::from_env()?;
    let clients = AwsClients::from_env(&config.iot_endpoint).await?;
    let requests = FileRequests::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &config.table),
        DynamoCameraRegistry::new(clients.dynamo.clone(), &config.table),
        IotDataPublisher::new(clients.iot.clone()),
        config.requests.clone(),
    );
    let reads = DynamoPlateReadStore::new(clients.dynamo.clone(), &config.table);
    let configs = CameraConfigs::new(
        DynamoCameraRegistry::new(clients.dynamo.clone(), &config.table),
        IotConfigShadows::new(clients.iot.clone()),
    );
    let audit = DynamoAuditLog::new(clients.dynamo.clone(), &config.table)
        .with_retention(config.audit_retention_secs);
    let bucket = config
        .bucket
        .clone()
        .ok_or_else(|| lambda_http::Error::from("ANPR_MEDIA_BUCKET is not set"))?;
    let downloads = request_api::Downloads {
        signer: S3UrlSigner::new(clients.s3.clone(), &bucket),
        valid_for_secs: config.download_url_secs,
    };
    lambda_http::run(request_api::app(request_api::Services {
        requests,
        reads,
        configs,
        audit,
        downloads,
    }))
    .await
}
