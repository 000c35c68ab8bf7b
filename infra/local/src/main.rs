//! `anpr-local`: the whole system on one machine, one command (see the crate docs of
//! `anpr_local` for what stands in for what).

use anyhow::Context as _;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "The whole ANPR system in one process: broker, S3, API, console, cameras")]
struct Args {
    /// The data folder (state survives restarts); a relative path is taken from the current
    /// directory.
    #[arg(long, global = true, default_value = ".local/anpr-local")]
    data_dir: PathBuf,
    /// Delete the data folder first.
    #[arg(long)]
    reset: bool,
    /// HTTP address of the console and the request API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// MQTT 5 over TLS port (cameras).
    #[arg(long, default_value_t = 8883)]
    mqtt_port: u16,
    /// MQTT over WebSocket port (console).
    #[arg(long, default_value_t = 8083)]
    ws_port: u16,
    /// The MQTT-over-WebSocket URL the console uses, when browsers reach the WebSocket
    /// listener through a proxy or a forwarded port (default: the listener's own URL).
    #[arg(long)]
    console_ws_url: Option<String>,
    /// S3 port.
    #[arg(long, default_value_t = 9000)]
    s3_port: u16,
    /// Credentials provider port.
    #[arg(long, default_value_t = 8443)]
    creds_port: u16,
    /// Simulated cameras (ids).
    #[arg(long = "camera", default_values_t = ["cam-001".to_owned(), "cam-002".to_owned()])]
    cameras: Vec<String>,
    /// Seconds between simulated plate reads (with --models-dir: frames) per camera (0: none).
    #[arg(long, default_value_t = 5)]
    plate_interval: u64,
    /// Feed frames to the real recognizer with these models (`scripts/fetch-models` puts them
    /// in .local/models); needs the `recognizer` feature (on by default).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a valid token (1 h) for a demo user (ada, otto, vic, gil) signed with the data
    /// folder's key, for `Authorization: Bearer` (e.g. `anpr-local --data-dir D token ada`).
    Token {
        /// The demo user.
        user: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,anpr_local=info,anpr_camera=info")
            }),
        )
        .init();
    let mut args = Args::parse();
    // The one rule for paths a user gives: a relative path is resolved once, here, against the
    // current directory; everything below sees absolute paths only.
    args.data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("--data-dir {}", args.data_dir.display()))?;
    if let Some(m) = &args.models_dir {
        args.models_dir =
            Some(std::path::absolute(m).with_context(|| format!("--models-dir {}", m.display()))?);
    }
    if let Some(Command::Token { user }) = &args.command {
        let issuer = anpr_local::tokens::Issuer::open(&args.data_dir)
            .context("opening the data folder's token signing key")?;
        println!(
            "{}",
            issuer.token_for(user, anpr_protocol::clock::now_secs())?
        );
        return Ok(());
    }
    if args.models_dir.is_some() && !cfg!(feature = "recognizer") {
        anyhow::bail!(
            "--models-dir needs a build with the recognizer (a default feature): cargo run -p anpr-local -- --models-dir …"
        );
    }
    if args.reset {
        anpr_local::reset(&args.data_dir)?;
    }
    let running = anpr_local::start(anpr_local::Options {
        data_dir: args.data_dir.clone(),
        http: args.http,
        mqtt_port: args.mqtt_port,
        ws_port: args.ws_port,
        console_ws_url: args.console_ws_url.clone(),
        console_keepalive_secs: anpr_local::console::DEFAULT_KEEPALIVE_SECS,
        s3_port: args.s3_port,
        creds_port: args.creds_port,
        cameras: args.cameras.clone(),
        plate_interval_secs: args.plate_interval,
        models_dir: args.models_dir.clone(),
    })
    .await
    .context("starting the local stack")?;
    if !running
        .cameras_ready(std::time::Duration::from_secs(15))
        .await
    {
        eprintln!("anpr-local: a simulated camera has not connected yet (see the log)");
    }
    println!(
        "anpr-local ready in {} ms: console {}  (data in {}; cameras {})",
        started.elapsed().as_millis(),
        running.console_url,
        running.data_dir.display(),
        args.cameras.join(", ")
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping (cameras finish their current upload part)…");
    running.stop().await;
    Ok(())
}
