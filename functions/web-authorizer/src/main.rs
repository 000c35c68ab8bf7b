//! Lambda entry point of the web authorizer: read the user pool's issuer and app client, build
//! the JWKS client once, answer AWS IoT's authorizer events.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use web_authorizer::https::HttpsKeys;
use web_authorizer::policy::Scope;
use web_authorizer::token::Expected;
use web_authorizer::{Authorizer, now};

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::from(format!("{name} is not set")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_aws::logging::init();
    let issuer = env("USER_POOL_ISSUER")?;
    let keys = HttpsKeys::new(&format!("{issuer}/.well-known/jwks.json"))?;
    let authorizer = Authorizer::new(
        keys,
        Expected {
            issuer,
            audience: env("APP_CLIENT_ID")?,
        },
        Scope {
            partition: env("AWS_PARTITION").unwrap_or_else(|_| "aws".into()),
            region: env("AWS_REGION")?,
            account: env("ACCOUNT_ID")?,
        },
    );
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(authorizer.handle(&e.payload, now()).await)
        },
    ))
    .await
}
