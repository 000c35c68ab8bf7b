//! Times each stage alone on some images:
//! `cargo run --release -p anpr-recognizer --example stages -- IMAGE…`
//! (`ANPR_MAX_SIDE`: the detector's longer side in pixels, default 800; `ANPR_DETECTOR`:
//! `ppocr`, the default, or `plate`, our own detector).

use std::time::Instant;

use anpr_recognizer::{
    CHARSET_FILE, DetectorSettings, MapDetector, PlateDetector, PlateReader, PpOcrReader,
    READER_FILE, RecognizerConfig, open_image,
};

fn main() -> anyhow::Result<()> {
    let config = RecognizerConfig {
        models_dir: anpr_recognizer::models_dir_or_default(std::env::var_os(
            anpr_recognizer::MODELS_DIR_ENV,
        )),
        detector: match std::env::var("ANPR_DETECTOR") {
            Ok(name) => name.parse().map_err(anyhow::Error::msg)?,
            Err(_) => Default::default(),
        },
        ..RecognizerConfig::default()
    };
    let max_side: u32 = std::env::var("ANPR_MAX_SIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800);
    let det = MapDetector::load(
        &config.detector_file(),
        DetectorSettings {
            max_side,
            ..config.detector_settings()
        },
    )?;
    let reader = PpOcrReader::load(
        &config.models_dir.join(READER_FILE),
        &config.models_dir.join(CHARSET_FILE),
    )?;
    for path in std::env::args().skip(1) {
        let img = open_image(path.as_ref())?.to_rgb8();
        for round in 0..2 {
            let t = Instant::now();
            let regions = det.detect(&img)?;
            let det_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let mut texts = Vec::new();
            for r in &regions {
                let b = r.bbox;
                let crop =
                    image::imageops::crop_imm(&img, b.x as u32, b.y as u32, b.w as u32, b.h as u32)
                        .to_image();
                texts.push(reader.read(&crop)?.text());
            }
            let read_ms = t.elapsed().as_secs_f64() * 1e3;
            if round == 1 {
                println!(
                    "{path}: detect {det_ms:.1} ms, {} regions read in {read_ms:.1} ms: {texts:?}",
                    regions.len()
                );
            }
        }
    }
    Ok(())
}
