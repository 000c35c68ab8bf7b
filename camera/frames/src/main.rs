//! `anpr-frames`: the camera's recognizer, a program of its own so that the agent
//! (`anpr-camera`) never holds the models. `feed --config FILE` is the frame feed the agent
//! starts and speaks to over stdin/stdout (`anpr_camera::feed_link`); `recognize` and `eval`
//! are for people (`anpr-camera recognize|eval` run them). Logs go to stderr.

use anpr_camera::config::{ConfirmReader, SecondDetector};
use anpr_camera::feed_link::{self, FeedSettings, LinkSink};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "anpr-frames", version, about = "ANPR camera recognizer")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The frame feed (started by `anpr-camera run`): reads the frames of `recognizer.watch_dir`
    /// and hands the plate reads to the agent over stdout, one JSON line each.
    Feed {
        /// The agent's TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Recognize plates in image files and print the reads as JSON lines.
    Recognize {
        /// Image files (JPEG, PNG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Folder of the model files (default: `ANPR_MODELS_DIR`, else `.local/models`).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Reader: `ppocr` (PP-OCRv4, the default) or `plate` (our own plate reader).
        #[arg(long, default_value_t = anpr_recognizer::ReaderKind::default().name().to_string())]
        reader: String,
        /// Detector: `plate` (our own plate detector, the default) or `ppocr` (PP-OCRv4).
        #[arg(long, default_value_t = anpr_recognizer::DetectorKind::default().name().to_string())]
        detector: String,
    },
    /// Evaluate the recognizer on a folder of annotated photos.
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
        #[arg(long, default_value_t = anpr_recognizer::ReaderKind::default().name().to_string())]
        reader: String,
        /// Detector(s) to measure, as `--reader`: `plate` (the default), `ppocr`, a list or
        /// `all`; every detector is measured with every reader.
        #[arg(long, default_value_t = anpr_recognizer::DetectorKind::default().name().to_string())]
        detector: String,
        /// Read crops as they are, without painting over coloured marks (stickers, emblems):
        /// measures what the painting gains.
        #[arg(long)]
        keep_colour_marks: bool,
        /// Read a crop again narrowed and widened when its read scores below this (0: never;
        /// default: the recognizer's, 0.55; 0..=1): measures what the second reading gains and
        /// costs.
        #[arg(long)]
        reread_below: Option<f32>,
        /// A second detector whose regions are read too on a frame whose best read is weak:
        /// `plate`, `ppocr` or `none` (default: the recognizer's, `plate`; the same as the
        /// detector, as with the default detector: none): measures what the second look gains
        /// and costs.
        #[arg(long)]
        second_detector: Option<String>,
        /// A reader that reads each weak crop too, a read it reads alike taken as sure:
        /// `plate`, `ppocr` or `none` (default: the recognizer's, `plate`; the same as the
        /// reader: none): measures what the confirmation saves and costs.
        #[arg(long)]
        confirm_reader: Option<String>,
        /// No last look at frames still without a sure read with their local contrast evened
        /// out: measures what that look gains and costs.
        #[arg(long)]
        no_faint_look: bool,
        /// The detector's first look, the frame's longer side in pixels (default: the
        /// recognizer's, 960): the camera's `recognizer.detector_side`, and checked as it is.
        #[arg(long)]
        detector_side: Option<u32>,
        /// The detector's finer look at a frame still without a sure read, pixels; 0: none
        /// (default: the recognizer's, 1120): the camera's `recognizer.finer_side`, and checked
        /// as it is (above the first look).
        #[arg(long)]
        finer_side: Option<u32>,
        /// The score below which a frame's best read takes the finer look; 0: only a frame
        /// without any read (default: the recognizer's, 0): the camera's
        /// `recognizer.finer_below`, and checked as it is (0..=1).
        #[arg(long)]
        finer_below: Option<f32>,
    },
}

/// A setting named as in the configuration file, in any case (`--second-detector`,
/// `--confirm-reader`).
fn setting<T: std::str::FromStr<Err = String>>(name: &str) -> anyhow::Result<T> {
    name.to_ascii_lowercase()
        .parse()
        .map_err(anyhow::Error::msg)
}

/// `--reader` or `--detector`: `ppocr`, `plate`, `ppocr,plate` or `all` (`all` of `every`).
fn parse_kinds<T>(arg: &str, every: &[T], option: &str) -> anyhow::Result<Vec<T>>
where
    T: Copy + PartialEq + std::str::FromStr<Err = String>,
{
    if arg.eq_ignore_ascii_case("all") {
        return Ok(every.to_vec());
    }
    let mut out = Vec::new();
    for name in arg.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let r = name.parse().map_err(anyhow::Error::msg)?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    anyhow::ensure!(!out.is_empty(), "{option} names nothing");
    Ok(out)
}

/// One line per pipeline: the overall figures of each report.
fn side_by_side(reports: &[anpr_recognizer::EvalReport]) -> String {
    let mut s = format!(
        "{:<9} {:<8} {:>8} {:>8} {:>7} {:>10} {:>8} {:>10}\n",
        "detector", "reader", "found%", "exact%", "CER", "median ms", "p95 ms", "models MB"
    );
    for r in reports {
        let o = &r.overall;
        s += &format!(
            "{:<9} {:<8} {:>8.1} {:>8.1} {:>7.3} {:>10.1} {:>8.1} {:>10.1}\n",
            r.config.detector.name(),
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

/// `anpr-frames feed`: exit 0 when idle or told to stop, [`feed_link::EXIT_CANNOT_START`]
/// when it cannot start.
fn feed(config: &std::path::Path) -> std::process::ExitCode {
    let mut cfg = match anpr_camera::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %anpr_camera::error_chain(&e), "frame feed: bad configuration");
            return cannot_start();
        }
    };
    // `recognizer.models_dir`, else `ANPR_MODELS_DIR`, else the default folder.
    if let Some(r) = &mut cfg.recognizer
        && r.models_dir.is_none()
    {
        r.models_dir = Some(models_dir(None));
    }
    let Some(initial) = FeedSettings::of(&cfg) else {
        tracing::error!("frame feed: no [recognizer] section in the configuration");
        return cannot_start();
    };
    let idle_exit = cfg
        .recognizer
        .as_ref()
        .map(|r| r.idle_exit_secs)
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let (settings_tx, settings) = tokio::sync::watch::channel(initial);
    let (stop_tx, shutdown) = tokio::sync::watch::channel(false);
    let (answers_tx, answers) = std::sync::mpsc::channel();
    let counts_wanted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wanted = counts_wanted.clone();
    let commands = std::thread::Builder::new()
        .name("commands".into())
        .spawn(move || {
            feed_link::read_commands(
                std::io::stdin().lock(),
                &settings_tx,
                &answers_tx,
                &wanted,
                &stop_tx,
            );
        });
    if let Err(e) = commands {
        tracing::error!(error = %e, "frame feed: cannot start its command reader");
        return cannot_start();
    }
    let sink = LinkSink::new(std::io::stdout(), answers, counts_wanted);
    match anpr_frames::run_feed(&cfg, Box::new(sink), &shutdown, settings, idle_exit) {
        Ok(stats) => {
            tracing::info!(?stats, "frame feed stopped");
            // The command reader may still wait on stdin: leave without joining it.
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %anpr_camera::error_chain(&e), "frame feed cannot start");
            cannot_start()
        }
    }
}

/// `given`, else `ANPR_MODELS_DIR` (read here, at the program's start), else the default folder.
fn models_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        anpr_recognizer::models_dir_or_default(std::env::var_os(anpr_recognizer::MODELS_DIR_ENV))
    })
}

fn cannot_start() -> std::process::ExitCode {
    std::process::ExitCode::from(feed_link::EXIT_CANNOT_START as u8)
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    anpr_camera::logs::init(anpr_camera::logs::LogTo::Stderr);
    match cli.cmd {
        Cmd::Feed { config } => Ok(feed(&config)),
        Cmd::Recognize {
            images,
            models,
            reader,
            detector,
        } => {
            let mut rc = anpr_recognizer::RecognizerConfig {
                reader: reader.parse().map_err(anyhow::Error::msg)?,
                detector: detector.parse().map_err(anyhow::Error::msg)?,
                ..anpr_recognizer::RecognizerConfig::default()
            };
            rc.models_dir = models_dir(models);
            for r in anpr_recognizer::recognize_files(&images, &rc)? {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Eval {
            dir,
            json,
            threads,
            models,
            max_plans,
            reader,
            detector,
            keep_colour_marks,
            reread_below,
            second_detector,
            confirm_reader,
            no_faint_look,
            detector_side,
            finer_side,
            finer_below,
        } => {
            let mut rc = anpr_recognizer::RecognizerConfig {
                models_dir: models_dir(models),
                erase_colour_marks: !keep_colour_marks,
                faint_look: !no_faint_look,
                ..anpr_recognizer::RecognizerConfig::default()
            };
            if let Some(p) = max_plans {
                rc.max_plans = p.max(1);
            }
            if let Some(t) = threads {
                rc.threads = t.max(1);
            }
            if let Some(score) = reread_below {
                anpr_camera::config::check_reread_below(score).with_context(|| {
                    format!("--reread-below must be 0..=1, as the camera's setting, not {score}")
                })?;
                rc.reread_below_score = score;
            }
            if let Some(side) = detector_side {
                rc.detector_max_side = side;
            }
            if let Some(side) = finer_side {
                rc.detector_retry_max_side = side;
            }
            if let Some(score) = finer_below {
                anpr_camera::config::check_finer_below(score).with_context(|| {
                    format!("--finer-below must be 0..=1, as the camera's setting, not {score}")
                })?;
                rc.finer_below_score = score;
            }
            // The looks a camera may set, and no other (a side of 0 would find nothing).
            anpr_camera::config::check_detector_sides(
                rc.detector_max_side,
                rc.detector_retry_max_side,
            )
            .context("--detector-side and --finer-side are the camera's settings")?;
            if let Some(name) = second_detector {
                rc.second_detector = setting::<SecondDetector>(&name)?.kind();
            }
            if let Some(name) = confirm_reader {
                rc.confirm_reader = setting::<ConfirmReader>(&name)?.kind();
            }
            let readers = parse_kinds(&reader, &anpr_recognizer::ReaderKind::ALL, "--reader")?;
            let detectors =
                parse_kinds(&detector, &anpr_recognizer::DetectorKind::ALL, "--detector")?;
            let mut reports = Vec::new();
            for d in &detectors {
                for r in &readers {
                    rc.detector = *d;
                    rc.reader = *r;
                    reports.push(anpr_recognizer::evaluate_dir(&dir, &rc)?);
                }
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
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
