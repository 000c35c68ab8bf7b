//! Our own plate detector (`anpr_plate_detector_v1.onnx`, committed in `models/`, made by
//! `scripts/train-detector` from composed frames only), on the synthetic frame we rendered
//! ourselves (tests/fixtures/make_fixture.py); never on the shared photos. These tests need no
//! downloaded model: both of our own models are in the repository.

mod common;

use std::path::{Path, PathBuf};

use anpr_recognizer::{
    DetectorKind, DetectorSettings, MapDetector, PLATE_DETECTOR_FILE, PLATE_READER_FILE,
    PlateDetector, ReaderKind, Recognizer, RecognizerConfig, RecognizerError,
};
use common::{assert_on_the_plate, synthetic_frame};

fn committed(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file)
}

fn fixture() -> image::RgbImage {
    synthetic_frame().to_rgb8()
}

fn detector() -> MapDetector {
    MapDetector::load(
        &committed(PLATE_DETECTOR_FILE),
        DetectorSettings {
            max_side: 640,
            ..DetectorSettings::for_kind(DetectorKind::Plate)
        },
    )
    .expect("our plate detector loads")
}

/// A models folder holding `files` (symlinked from the committed models), removed on drop.
struct ModelsDir(PathBuf);

impl ModelsDir {
    fn with(name: &str, files: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("anpr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for f in files {
            std::os::unix::fs::symlink(committed(f), dir.join(f)).expect("link");
        }
        Self(dir)
    }
}

impl Drop for ModelsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn our_detector_finds_the_plate_and_not_the_dealer_sticker() {
    let regions = detector().detect(&fixture()).expect("detect");
    // The plate is drawn at x 230..410, y 180..232, its characters around (320, 207).
    let plate: Vec<_> = regions
        .iter()
        .filter(|r| {
            let (cx, cy) = r.bbox.center();
            (250.0..390.0).contains(&cx) && (190.0..224.0).contains(&cy)
        })
        .collect();
    assert_eq!(plate.len(), 1, "regions: {regions:?}");
    let b = plate[0].bbox;
    assert!(
        b.x < 265.0 && b.x + b.w > 375.0 && b.h > 15.0 && b.h < 60.0,
        "the box holds the characters: {b:?}"
    );
    // "AUTO CENTER" is written from (150, 110), 12 px high: text, not a plate.
    assert!(
        regions.iter().all(|r| {
            let (cx, cy) = r.bbox.center();
            !((140.0..260.0).contains(&cx) && (100.0..135.0).contains(&cy))
        }),
        "the sticker is not a plate: {regions:?}"
    );
}

#[test]
fn a_frame_without_a_plate_gives_no_region() {
    // The fixture's street and car without the plate: its grey, the sticker's words aside.
    let mut frame = fixture();
    for y in 170..245 {
        for x in 220..420 {
            frame.put_pixel(x, y, image::Rgb([140, 30, 35]));
        }
    }
    let regions = detector().detect(&frame).expect("detect");
    assert!(regions.is_empty(), "regions: {regions:?}");
}

#[test]
fn the_configured_detector_is_the_one_loaded() {
    let dir = ModelsDir::with("detector-choice", &[PLATE_READER_FILE]);
    let config = |detector| RecognizerConfig {
        models_dir: dir.0.clone(),
        detector,
        reader: ReaderKind::Plate,
        ..RecognizerConfig::default()
    };
    match Recognizer::new(&config(DetectorKind::Plate)) {
        Err(RecognizerError::ModelMissing { path }) => {
            assert!(path.ends_with(PLATE_DETECTOR_FILE), "{path:?}")
        }
        other => panic!("expected our detector's file missing, got {other:?}"),
    }
    match Recognizer::new(&config(DetectorKind::Ppocr)) {
        Err(RecognizerError::ModelMissing { path }) => {
            assert!(path.ends_with(anpr_recognizer::DETECTOR_FILE), "{path:?}")
        }
        other => panic!("expected PP-OCR's detector file missing, got {other:?}"),
    }
    let files = config(DetectorKind::Plate).model_files();
    assert_eq!(
        files,
        vec![
            dir.0.join(PLATE_DETECTOR_FILE),
            dir.0.join(PLATE_READER_FILE)
        ]
    );
}

#[test]
fn our_two_models_alone_read_the_synthetic_frame() -> anyhow::Result<()> {
    let dir = ModelsDir::with("own-models", &[PLATE_DETECTOR_FILE, PLATE_READER_FILE]);
    let recognizer = Recognizer::new(&RecognizerConfig {
        models_dir: dir.0.clone(),
        detector: DetectorKind::Plate,
        reader: ReaderKind::Plate,
        ..RecognizerConfig::default()
    })?;
    let reads = recognizer.recognize(&image::DynamicImage::ImageRgb8(fixture()))?;
    let top = reads.first().expect("a plate read");
    assert_eq!(top.text, "ABC1234", "reads: {reads:?}");
    assert_eq!(reads.len(), 1, "reads: {reads:?}");
    assert_on_the_plate(&top.bbox);
    Ok(())
}
