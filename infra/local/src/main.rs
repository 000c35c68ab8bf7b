//! `anpr-local`: the request API routes served over plain HTTP against local AWS stand-ins
//! (moto, started by `scripts/local`), for trying the system without an AWS account.
//!
//! The caller identity that API Gateway's JWT authorizer provides in AWS comes from the
//! `x-demo-user` header here (default `demo-user`): this binary is for local use only.

use anpr_aws::{
    AwsClients, DynamoCameraRegistry, DynamoRequestStore, FunctionConfig, IotDataPublisher,
};
use anpr_core::model::Camera;
use anpr_core::{Caller, FileRequests};
use anpr_protocol::CameraId;
use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Serve the request API locally against local AWS stand-ins")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Cameras to register (ids), e.g. `--camera 123456`.
    #[arg(long = "camera", default_value = "123456")]
    cameras: Vec<String>,
    /// Create the table if it does not exist.
    #[arg(long, default_value_t = true)]
    create_table: bool,
}

async fn demo_identity(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let sub = req
        .headers()
        .get("x-demo-user")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .unwrap_or("demo-user")
        .to_owned();
    req.extensions_mut().insert(Caller { sub });
    next.run(req).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = FunctionConfig::from_env().context("reading configuration")?;
    let clients = AwsClients::from_env(&config.iot_endpoint)
        .await
        .context("building AWS clients")?;
    if args.create_table
        && clients
            .dynamo
            .describe_table()
            .table_name(&config.table)
            .send()
            .await
            .is_err()
    {
        anpr_aws::schema::create_table(&clients.dynamo, &config.table)
            .await
            .context("creating the table")?;
    }
    let registry = DynamoCameraRegistry::new(clients.dynamo.clone(), &config.table);
    for id in &args.cameras {
        registry
            .register(&Camera {
                camera_id: CameraId::parse(id)?,
                name: Some(format!("demo camera {id}")),
                registered_at: 0,
            })
            .await
            .context("registering a camera")?;
    }
    let service = FileRequests::new(
        DynamoRequestStore::new(clients.dynamo.clone(), &config.table),
        registry,
        IotDataPublisher::new(clients.iot.clone()),
        config.requests.clone(),
    );
    let app = request_api::router(service).layer(axum::middleware::from_fn(demo_identity));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "request API on http://{}  (cameras: {})",
        args.listen,
        args.cameras.join(", ")
    );
    axum::serve(listener, app).await?;
    Ok(())
}
