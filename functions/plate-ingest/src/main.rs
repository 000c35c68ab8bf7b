//! Lambda entry point of plate-ingest: read config, build the DynamoDB client once, handle
//! IoT rule events.

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use plate_ingest::IngestConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_aws::logging::init();
    let config = IngestConfig::from_env()?;
    let sdk = anpr_aws::http::sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoPlateReadStore::new(dynamo.clone(), &config.table);
    let cameras = DynamoCameraRegistry::new(dynamo, &config.table);
    let (store, cameras, policy) = (&store, &cameras, &config.policy);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<serde_json::Value>| async move {
        plate_ingest::handle(store, cameras, policy, &e.payload, plate_ingest::now_ms())
            .await
            .map_err(|err| {
                tracing::error!(error = ?err, "plate reads not stored; the invocation will be retried");
                Error::from(err)
            })
    }))
    .await
}
