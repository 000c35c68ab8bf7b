//! Lambda entry point of plate-ingest: read config, build the DynamoDB client once, handle
//! the SQS batches of the plate-reads queue (partial-batch failures reported).

use anpr_aws::{DynamoCameraRegistry, DynamoPlateReadStore};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use plate_ingest::{IngestConfig, SqsEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_aws::logging::init();
    let config = IngestConfig::from_env()?;
    let sdk = anpr_aws::http::sdk_config().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoPlateReadStore::new(dynamo.clone(), &config.table);
    let cameras = DynamoCameraRegistry::new(dynamo, &config.table);
    let (store, cameras, policy) = (&store, &cameras, &config.policy);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<SqsEvent>| async move {
        let (response, reports) =
            plate_ingest::handle_sqs(store, cameras, policy, &e.payload, e.context.deadline).await;
        let stored: usize = reports.iter().map(|r| r.stored).sum();
        tracing::info!(
            messages = e.payload.records.len(),
            stored,
            returned = response.batch_item_failures.len(),
            "plate read batch handled"
        );
        Ok::<_, Error>(response)
    }))
    .await
}
