//! `passage DIR [--reader ppocr|plate] [--scales 1,0.85,0.7] [--per-passage] [--json]`: each
//! annotated photo
//! under `DIR`'s region folders (`br`, `eu`, `us`) read as a synthetic passage, the photo once
//! per scale (a vehicle coming closer or going away: the plate at several sizes), 200 ms apart,
//! through `TemporalGrouper`. Per folder, the exact-plate share of: the first frame alone (what
//! `eval` measures), the passage's most confident read (what the grouper emitted before the
//! per-character vote) and the passage's voted read. A measurement of the vote, not a test:
//! real passages differ from rescaled photos (no motion blur, no change of angle). With
//! `--per-passage`, weak crops are not read again in every frame; the passage's most confident
//! read is, once, from its frame, before the vote (as the frame feed does:
//! `Recognizer::read_again`).

use anpr_protocol::PlateRegion;
use anpr_recognizer::eval::annotated_in;
use anpr_recognizer::{PlateRead, Recognizer, RecognizerConfig, TemporalGrouper, open_image};
use anyhow::{Context, bail};
use image::imageops::FilterType;

#[derive(serde::Serialize)]
struct Subset {
    name: String,
    images: usize,
    first_frame_exact: usize,
    most_confident_exact: usize,
    voted_exact: usize,
    /// Passages whose voted text differs from their most confident read's.
    vote_changed: usize,
}

/// Time between the frames of a synthetic passage.
const FRAME_GAP_MS: u64 = 200;

fn main() -> anyhow::Result<()> {
    let mut config = RecognizerConfig {
        models_dir: anpr_recognizer::models_dir_or_default(std::env::var_os(
            anpr_recognizer::MODELS_DIR_ENV,
        )),
        ..RecognizerConfig::default()
    };
    let (mut dir, mut json) = (None, false);
    let mut scales = vec![1.0f32, 0.85, 0.7];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--per-passage" => config.reread_each_crop = false,
            "--reader" => {
                config.reader = args
                    .next()
                    .context("--reader ppocr|plate")?
                    .parse()
                    .map_err(anyhow::Error::msg)?
            }
            "--scales" => {
                scales = args
                    .next()
                    .context("--scales S,S,...")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other if other.starts_with("--") => bail!("unknown option {other}"),
            other => dir = Some(std::path::PathBuf::from(other)),
        }
    }
    let dir =
        dir.context("usage: passage DIR [--reader R] [--scales S,S,...] [--per-passage] [--json]")?;
    let mut recognizer = Recognizer::new(&config)?;
    let mut subsets = Vec::new();
    for name in ["br", "eu", "us"] {
        let folder = dir.join(name);
        if !folder.is_dir() {
            continue;
        }
        let region: PlateRegion = name.parse().map_err(anyhow::Error::msg)?;
        recognizer.tune(config.min_score, region);
        let mut s = Subset {
            name: name.into(),
            images: 0,
            first_frame_exact: 0,
            most_confident_exact: 0,
            voted_exact: 0,
            vote_changed: 0,
        };
        for (_, truth) in annotated_in(&folder)? {
            let img = open_image(&folder.join(&truth.file))?;
            let mut grouper = TemporalGrouper::new(1000, 60_000);
            let mut surest: Option<PlateRead> = None;
            let mut first = String::new();
            let mut frames = Vec::new();
            for (i, scale) in scales.iter().enumerate() {
                let frame = if (*scale - 1.0).abs() < 1e-6 {
                    img.clone()
                } else {
                    let w = ((img.width() as f32 * scale).round() as u32).max(1);
                    let h = ((img.height() as f32 * scale).round() as u32).max(1);
                    img.resize_exact(w, h, FilterType::Triangle)
                };
                let reads = recognizer.recognize(&frame)?;
                if let Some(top) = reads.first() {
                    if i == 0 {
                        first = top.text.clone();
                    }
                    if surest
                        .as_ref()
                        .is_none_or(|b| top.confidence > b.confidence)
                    {
                        surest = Some(top.clone());
                    }
                }
                // The frame's top read only: the truth is one plate per photo.
                grouper.push(i as u64 * FRAME_GAP_MS, &reads[..reads.len().min(1)]);
                if !config.reread_each_crop {
                    // Kept for the passage's read again.
                    frames.push(frame.into_rgb8());
                }
            }
            // The passage of the most confident read (other groups are other text).
            let passage = grouper.flush().into_iter().find(|g| {
                let (best, _) = g.best();
                surest
                    .as_ref()
                    .is_some_and(|b| best.confidence == b.confidence && best.bbox == b.bbox)
            });
            let voted = match passage {
                Some(mut g) => {
                    let (best, at_ms) = g.best();
                    if let Some(frame) = frames.get((at_ms / FRAME_GAP_MS) as usize)
                        && let Some(better) = recognizer.read_again(frame, best)?
                    {
                        g.replace_best(better);
                    }
                    g.emit().best.text
                }
                None => String::new(),
            };
            let surest = surest.map(|r| r.text).unwrap_or_default();
            s.images += 1;
            s.first_frame_exact += usize::from(first == truth.plate);
            s.most_confident_exact += usize::from(surest == truth.plate);
            s.voted_exact += usize::from(voted == truth.plate);
            s.vote_changed += usize::from(voted != surest);
        }
        subsets.push(s);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&subsets)?);
    } else {
        let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
        let total = |f: fn(&Subset) -> usize| subsets.iter().map(f).sum::<usize>();
        for s in &subsets {
            println!(
                "{}\t{} images\tfirst frame {:.1} %\tmost confident {:.1} %\tvoted {:.1} %\tvote changed {}",
                s.name,
                s.images,
                pct(s.first_frame_exact, s.images),
                pct(s.most_confident_exact, s.images),
                pct(s.voted_exact, s.images),
                s.vote_changed
            );
        }
        let n = total(|s| s.images);
        println!(
            "overall\t{n} images\tfirst frame {:.1} %\tmost confident {:.1} %\tvoted {:.1} %\tvote changed {}",
            pct(total(|s| s.first_frame_exact), n),
            pct(total(|s| s.most_confident_exact), n),
            pct(total(|s| s.voted_exact), n),
            total(|s| s.vote_changed)
        );
    }
    Ok(())
}
