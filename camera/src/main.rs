//! `anpr-camera`: the camera binary. `run --config FILE` starts the agent; structured logs
//! (tracing; `RUST_LOG`, `ANPR_LOG_FORMAT=json`); SIGTERM or Ctrl-C stops it gracefully.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "anpr-camera", version, about = "ANPR camera agent")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the agent: MQTT session to AWS IoT Core, file requests, uploads, health.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Recognize plates in image files and print the reads as JSON lines.
    #[cfg(feature = "recognizer")]
    Recognize {
        /// Image files (JPEG, PNG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Folder of the model files (default: `ANPR_MODELS_DIR`, else `.local/models`).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Reader: `ppocr` (PP-OCRv4, the default) or `plate` (our own plate reader).
        #[arg(long, default_value = "ppocr")]
        reader: String,
    },
    /// Evaluate the recognizer on a folder of annotated photos.
    #[cfg(feature = "recognizer")]
    Eval {
        /// The folder.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Threads per frame.
        #[arg(long)]
        threads: Option<usize>,
        /// Folder of the model files.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Compiled inference plans kept per model (memory vs recompiling for varied sizes).
        #[arg(long)]
        max_plans: Option<usize>,
        /// Reader(s) to measure: `ppocr`, `plate`, a comma-separated list, or `all`; with more
        /// than one, each pipeline is measured in turn and reported side by side (`--json`: an
        /// array of reports).
        #[arg(long, default_value = "ppocr")]
        reader: String,
    },
    /// Check a configuration file and exit (0 if valid).
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Logs at the levels `RUST_LOG` names (`info`, `anpr_camera=debug,rumqttc=warn`: targets
/// and levels, without span or field filters, which would link a regex engine), else `info`.
fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO)
        });
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var("ANPR_LOG_FORMAT").as_deref() == Ok("json") {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .init();
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_ansi(false))
            .init();
    }
}

/// Starts the frame feed when `[recognizer]` is configured. If it cannot start (models
/// missing, directory unusable) the agent still runs, so the camera stays reachable.
#[cfg(feature = "recognizer")]
fn start_feed(
    cfg: &anpr_camera::Config,
    outbox: &anpr_camera::agent::OutboxHandle,
    rx: &tokio::sync::watch::Receiver<bool>,
    settings: tokio::sync::watch::Receiver<anpr_camera::Config>,
) -> Option<anpr_camera::frames::FeedHandle> {
    cfg.recognizer.as_ref()?;
    match anpr_camera::frames::spawn_with_settings(cfg, outbox.clone(), rx.clone(), settings) {
        Ok(h) => Some(h),
        Err(e) => {
            let e = anyhow::Error::new(e);
            tracing::error!(
                error = format!("{e:#}"),
                "frame feed not started; the agent runs without it"
            );
            None
        }
    }
}

/// `--reader ppocr`, `plate`, `ppocr,plate` or `all`.
#[cfg(feature = "recognizer")]
fn parse_readers(arg: &str) -> anyhow::Result<Vec<anpr_recognizer::ReaderKind>> {
    if arg.eq_ignore_ascii_case("all") {
        return Ok(anpr_recognizer::ReaderKind::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in arg.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let r = name.parse().map_err(anyhow::Error::msg)?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    anyhow::ensure!(!out.is_empty(), "--reader names no reader");
    Ok(out)
}

/// One line per pipeline: the overall figures of each report.
#[cfg(feature = "recognizer")]
fn side_by_side(reports: &[anpr_recognizer::EvalReport]) -> String {
    let mut s = format!(
        "{:<8} {:>8} {:>8} {:>7} {:>10} {:>8} {:>10}\n",
        "reader", "found%", "exact%", "CER", "median ms", "p95 ms", "models MB"
    );
    for r in reports {
        let o = &r.overall;
        s += &format!(
            "{:<8} {:>8.1} {:>8.1} {:>7.3} {:>10.1} {:>8.1} {:>10.1}\n",
            r.config.reader.name(),
            o.found_pct,
            o.exact_pct,
            o.cer,
            o.median_ms,
            o.p95_ms,
            r.model_bytes as f64 / 1e6
        );
    }
    s
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs();
    match cli.cmd {
        #[cfg(feature = "recognizer")]
        Cmd::Recognize {
            images,
            models,
            reader,
        } => {
            let mut rc = anpr_recognizer::RecognizerConfig {
                reader: reader.parse().map_err(anyhow::Error::msg)?,
                ..anpr_recognizer::RecognizerConfig::default()
            };
            if let Some(m) = models {
                rc.models_dir = m;
            }
            for r in anpr_recognizer::recognize_files(&images, &rc)? {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(())
        }
        #[cfg(feature = "recognizer")]
        Cmd::Eval {
            dir,
            json,
            threads,
            models,
            max_plans,
            reader,
        } => {
            let mut rc = anpr_recognizer::RecognizerConfig::default();
            if let Some(m) = models {
                rc.models_dir = m;
            }
            if let Some(p) = max_plans {
                rc.max_plans = p.max(1);
            }
            if let Some(t) = threads {
                rc.threads = t.max(1);
            }
            let readers = parse_readers(&reader)?;
            let mut reports = Vec::new();
            for r in &readers {
                rc.reader = *r;
                reports.push(anpr_recognizer::evaluate_dir(&dir, &rc)?);
            }
            match (json, reports.as_slice()) {
                (true, [one]) => println!("{}", serde_json::to_string_pretty(one)?),
                (true, all) => println!("{}", serde_json::to_string_pretty(all)?),
                (false, all) => {
                    for report in all {
                        println!("{report}");
                    }
                    if all.len() > 1 {
                        println!("{}", side_by_side(all));
                    }
                }
            }
            Ok(())
        }
        Cmd::CheckConfig { config } => {
            let cfg = anpr_camera::Config::load(&config)?;
            println!("{}: valid", config.display());
            // Relative paths were resolved against this directory: show what the agent uses.
            for (setting, path) in cfg.paths() {
                println!("  {setting} = {}", path.display());
            }
            Ok(())
        }
        Cmd::Run { config } => {
            // One thread: the camera is small and the agent is I/O-bound (less memory); the
            // frame feed has its own thread.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            // The signal handlers before anything else: a SIGTERM or Ctrl-C that arrives while
            // the configuration, the outbox or the models load is a clean stop as soon as the
            // agent runs, never the default action (killed mid-start).
            let (mut term, mut interrupt) = {
                use tokio::signal::unix::{SignalKind, signal};
                let _rt = rt.enter();
                (
                    signal(SignalKind::terminate()).context("SIGTERM handler")?,
                    signal(SignalKind::interrupt()).context("SIGINT handler")?,
                )
            };
            let cfg = anpr_camera::Config::load(&config)?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            let outbox = anpr_camera::agent::open_outbox(&cfg)?;
            // The configuration in force (the file with the remote settings over it): the agent
            // sends it at start and on every remote change; the frame feed follows it.
            let (running_tx, _running_rx) = tokio::sync::watch::channel(cfg.clone());
            // An agent-only build refuses a `[recognizer]` section in the configuration.
            #[cfg(feature = "recognizer")]
            let feed = start_feed(&cfg, &outbox, &rx, _running_rx);
            let stop = tx.clone();
            let result = rt.block_on(async move {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                    tracing::info!("signal received");
                    let _ = tx.send(true);
                });
                anpr_camera::agent::Agent::builder(cfg)
                    .outbox(outbox)
                    .settings(running_tx)
                    .run(anpr_camera::agent::Shutdown::new(rx))
                    .await
            });
            // The agent stopped (or could not start): stop the feed too, let it flush.
            let _ = stop.send(true);
            #[cfg(feature = "recognizer")]
            if let Some(feed) = feed
                && feed.join().is_none()
            {
                tracing::error!("the frame feed thread panicked");
            }
            result?;
            Ok(())
        }
    }
}
