//! `cargo run --release -p anpr-recognizer --example eval -- DIR [--json] [--threads N]
//! [--region auto|us|eu|br] [--detector ppocr|plate] [--second-detector ppocr|plate]
//! [--reader ppocr|plate] [--confirm-reader ppocr|plate|none] [--models DIR]
//! [--max-side PX] [--threshold T] [--box-threshold T] [--unclip R]
//! [--max-plans N] [--no-faint-look] [--details]`

use anpr_recognizer::{RecognizerConfig, evaluate_dir};
use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let mut config = RecognizerConfig {
        models_dir: anpr_recognizer::models_dir_or_default(std::env::var_os(
            anpr_recognizer::MODELS_DIR_ENV,
        )),
        ..RecognizerConfig::default()
    };
    let (mut dir, mut json, mut details) = (None, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--details" => details = true,
            "--no-folder-region" => config.region_from_folder = false,
            "--no-faint-look" => config.faint_look = false,
            "--confirm-reader" => {
                config.confirm_reader = match args.next().context("--confirm-reader KIND")? {
                    none if none == "none" => None,
                    kind => Some(kind.parse().map_err(anyhow::Error::msg)?),
                }
            }
            "--threads" => config.threads = args.next().context("--threads N")?.parse()?,
            "--max-side" => {
                config.detector_max_side = args.next().context("--max-side PX")?.parse()?
            }
            "--retry-side" => {
                config.detector_retry_max_side = args.next().context("--retry-side PX")?.parse()?
            }
            "--stop-at" => {
                config.stop_at_score = args.next().context("--stop-at SCORE")?.parse()?
            }
            "--threshold" => {
                config.detector_threshold = Some(args.next().context("--threshold T")?.parse()?)
            }
            "--unclip" => {
                config.detector_unclip_ratio = Some(args.next().context("--unclip R")?.parse()?)
            }
            "--detector" => {
                config.detector = args
                    .next()
                    .context("--detector ppocr|plate")?
                    .parse()
                    .map_err(anyhow::Error::msg)?
            }
            "--second-detector" => {
                config.second_detector = Some(
                    args.next()
                        .context("--second-detector ppocr|plate")?
                        .parse()
                        .map_err(anyhow::Error::msg)?,
                )
            }
            "--box-threshold" => {
                config.detector_box_threshold =
                    Some(args.next().context("--box-threshold T")?.parse()?)
            }
            "--max-plans" => config.max_plans = args.next().context("--max-plans N")?.parse()?,
            "--max-reads" => {
                config.max_reads_per_frame = args.next().context("--max-reads N")?.parse()?
            }
            "--region" => {
                config.region = args
                    .next()
                    .context("--region R")?
                    .parse()
                    .map_err(anyhow::Error::msg)?
            }
            "--reader" => {
                config.reader = args
                    .next()
                    .context("--reader ppocr|plate")?
                    .parse()
                    .map_err(anyhow::Error::msg)?
            }
            "--models" => config.models_dir = args.next().context("--models DIR")?.into(),
            other if other.starts_with("--") => bail!("unknown option {other}"),
            other => dir = Some(std::path::PathBuf::from(other)),
        }
    }
    let dir = dir.context("usage: eval DIR [--json] [--threads N]")?;
    let report = evaluate_dir(&dir, &config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if details {
            for r in report.images.iter().filter(|r| !r.exact) {
                println!(
                    "{}/{}\ttruth {}\tread {}\tfound {}\t{:.0} ms",
                    r.subset, r.file, r.truth, r.predicted, r.found, r.ms
                );
            }
        }
        print!("{report}");
    }
    Ok(())
}
