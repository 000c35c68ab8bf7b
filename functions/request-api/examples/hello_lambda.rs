//! The smallest lambda_runtime function: the baseline the request API's cold start is compared
//! with (`scripts/measure-cold-start`).

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(e.payload)
    }))
    .await
}
