//! Lambda entry point of the web authorizer: read the user pool's issuer and app client, build
//! the JWKS client once, answer AWS IoT's authorizer events.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use web_authorizer::Authorizer;
use web_authorizer::https::HttpsKeys;
use web_authorizer::policy::Scope;
use web_authorizer::token::Expected;

/// The user pool's issuer URL (`https://cognito-idp.{region}.amazonaws.com/{pool id}`).
const ENV_USER_POOL_ISSUER: &str = "ANPR_USER_POOL_ISSUER";
/// The app client id (the ID token's audience).
const ENV_APP_CLIENT_ID: &str = "ANPR_APP_CLIENT_ID";
/// The account of the IoT endpoint (policy resources).
const ENV_ACCOUNT_ID: &str = "ANPR_ACCOUNT_ID";
/// The partition (`aws` unless set).
const ENV_PARTITION: &str = "ANPR_PARTITION";

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::from(format!("{name} is not set")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    anpr_lambda::logging::init();
    let issuer = env(ENV_USER_POOL_ISSUER)?;
    let keys = HttpsKeys::new(&format!("{issuer}/.well-known/jwks.json"))?;
    let authorizer = Authorizer::new(
        keys,
        Expected {
            issuer,
            audience: env(ENV_APP_CLIENT_ID)?,
        },
        Scope {
            partition: env(ENV_PARTITION).unwrap_or_else(|_| "aws".into()),
            region: env("AWS_REGION")?,
            account: env(ENV_ACCOUNT_ID)?,
        },
    );
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |e: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(
                authorizer
                    .handle(&e.payload, anpr_protocol::clock::now_secs())
                    .await,
            )
        },
    ))
    .await
}
