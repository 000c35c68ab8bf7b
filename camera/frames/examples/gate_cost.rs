//! What the motion gate costs beside recognition, per 1280×720 frame: for each such JPEG of a
//! folder (others are skipped), the time to decode it, to make the gate's thumbnail of the whole
//! frame ([`anpr_frames::motion::thumbnail`]) and to compare it with the previous frame's
//! ([`anpr_frames::motion::changed_share`]), and to recognise it (one thread, the default
//! reader; the first frame is read once before timing, so that the models' plans are compiled).
//! A still frame costs the feed decode + thumbnail + compare; a read frame that plus
//! recognition. Not a test: it prints figures.
//!
//! ```sh
//! cargo run --locked -p anpr-frames --example gate_cost -- DIR
//! ```
//!
//! The models: `ANPR_MODELS_DIR`, else `.local/models`.

use anpr_frames::motion::{changed_share, thumbnail};
use anpr_recognizer::{Recognizer, RecognizerConfig};
use std::path::PathBuf;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Median and 95th percentile.
fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: gate_cost DIR"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    files.sort();
    let rc = RecognizerConfig {
        models_dir: anpr_recognizer::models_dir_or_default(std::env::var_os(
            anpr_recognizer::MODELS_DIR_ENV,
        )),
        threads: 1,
        ..RecognizerConfig::default()
    };
    let recognizer = Recognizer::new(&rc)?;
    let (mut decode, mut thumb, mut compare, mut recognize) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    let mut warm = false;
    for f in &files {
        let t = Instant::now();
        let img = anpr_recognizer::open_image(f)?;
        let decoded = ms(t);
        if (img.width(), img.height()) != (1280, 720) {
            continue;
        }
        if !warm {
            recognizer.recognize(&img)?;
            warm = true;
        }
        let t = Instant::now();
        let th = thumbnail(&img, [0, 0, 1280, 720]);
        let thumbed = ms(t);
        let t = Instant::now();
        let share = last.as_ref().and_then(|l| changed_share(l, &th));
        let compared = ms(t);
        std::hint::black_box(share);
        last = Some(th);
        let t = Instant::now();
        std::hint::black_box(recognizer.recognize(&img)?);
        recognize.push(ms(t));
        decode.push(decoded);
        thumb.push(thumbed);
        compare.push(compared);
    }
    anyhow::ensure!(!decode.is_empty(), "no 1280×720 JPEG in {}", dir.display());
    let still: Vec<f64> = (0..decode.len())
        .map(|i| decode[i] + thumb[i] + compare[i])
        .collect();
    let read: Vec<f64> = (0..decode.len())
        .map(|i| decode[i] + recognize[i])
        .collect();
    println!("{} frames of 1280×720, ms per frame:", decode.len());
    println!("{:<42} {:>8} {:>8}", "", "median", "p95");
    for (name, v) in [
        ("decode", decode),
        ("gate thumbnail (whole frame)", thumb),
        ("gate compare", compare),
        ("recognize (1 thread)", recognize),
        ("a still frame: decode + gate", still),
        ("a frame read, no gate: decode + recognize", read),
    ] {
        let (m, p) = stats(v);
        println!("{name:<42} {m:>8.2} {p:>8.2}");
    }
    Ok(())
}
