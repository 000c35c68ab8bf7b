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
    /// Recognize plates in image files (runs `anpr-frames recognize`).
    #[command(disable_help_flag = true)]
    Recognize {
        /// The arguments of `anpr-frames recognize` (`--help` for them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Evaluate the recognizer on a folder of annotated photos (runs `anpr-frames eval`).
    #[command(disable_help_flag = true)]
    Eval {
        /// The arguments of `anpr-frames eval` (`--help` for them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Check a configuration file and exit (0 if valid).
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// The frame feed's program, next to this one.
fn frames_program() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("the path of anpr-camera")?;
    Ok(anpr_camera::feed_link::program_next_to(&me))
}

/// Runs `anpr-frames SUBCOMMAND ARGS…` in place of this process; returns only on failure.
fn run_frames(sub: &str, args: &[std::ffi::OsString]) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let program = match frames_program() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let e = std::process::Command::new(&program)
        .arg(sub)
        .args(args)
        .exec();
    anyhow::Error::new(e).context(format!(
        "cannot run {} (the recognizer is not installed next to anpr-camera)",
        program.display()
    ))
}

/// Starts the frame feed's process when `[recognizer]` is configured. If it cannot (no
/// `anpr-frames` next to the agent) the agent still runs, so the camera stays reachable.
fn start_feed(
    config_file: &std::path::Path,
    cfg: &anpr_camera::Config,
    outbox: &anpr_camera::agent::OutboxHandle,
) -> Option<anpr_camera::feed_link::FeedSupervisor> {
    cfg.recognizer.as_ref()?;
    let started = frames_program().and_then(|program| {
        anpr_camera::feed_link::FeedSupervisor::start(
            program,
            config_file.to_path_buf(),
            cfg,
            outbox.clone(),
        )
        .map_err(anyhow::Error::new)
    });
    match started {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "frame feed not started; the agent runs without it"
            );
            None
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anpr_camera::logs::init(anpr_camera::logs::LogTo::Stdout);
    match cli.cmd {
        Cmd::Recognize { args } => Err(run_frames("recognize", &args)),
        Cmd::Eval { args } => Err(run_frames("eval", &args)),
        Cmd::CheckConfig { config } => {
            let cfg = anpr_camera::Config::load(&config)?;
            if cfg.recognizer.is_some() {
                let program = frames_program()?;
                anyhow::ensure!(
                    program.is_file(),
                    anpr_camera::feed_link::FeedLinkError::ProgramMissing { path: program }
                );
            }
            println!("{}: valid", config.display());
            // Relative paths were resolved against this directory: show what the agent uses.
            for (setting, path) in cfg.paths() {
                println!("  {setting} = {}", path.display());
            }
            Ok(())
        }
        Cmd::Run { config } => {
            // One thread: the camera is small and the agent is I/O-bound (less memory); the
            // frame feed is a process of its own.
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
            let (running_tx, mut running_rx) = tokio::sync::watch::channel(cfg.clone());
            let feed = start_feed(&config, &cfg, &outbox).map(std::sync::Arc::new);
            let follow = feed.clone();
            let feed_counts = feed.as_ref().map(|f| f.counters().feed.clone());
            let result = rt.block_on(async move {
                if let Some(feed) = follow {
                    tokio::spawn(async move {
                        while running_rx.changed().await.is_ok() {
                            let cfg = running_rx.borrow_and_update().clone();
                            feed.retune(&cfg);
                        }
                    });
                }
                tokio::spawn(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                    tracing::info!("signal received");
                    let _ = tx.send(true);
                });
                let mut agent = anpr_camera::agent::Agent::builder(cfg)
                    .outbox(outbox)
                    .settings(running_tx);
                if let Some(counts) = feed_counts {
                    agent = agent.feed_counts(counts);
                }
                agent.run(anpr_camera::agent::Shutdown::new(rx)).await
            });
            // The agent stopped (or could not start): stop the feed too, let it hand over its
            // last reads. The runtime (and the task following the settings) is gone with it.
            drop(rt);
            if let Some(feed) = feed.and_then(std::sync::Arc::into_inner) {
                feed.stop();
            }
            result?;
            Ok(())
        }
    }
}
