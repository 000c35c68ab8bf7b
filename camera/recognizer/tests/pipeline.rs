//! The real pipeline (PP-OCR models from scripts/fetch-models) on a synthetic frame we rendered
//! ourselves (tests/fixtures/make_fixture.py); never on the shared photos.

mod common;

use anpr_recognizer::{
    ClosedGroup, DETECTOR_FILE, PlateRegion, Recognizer, RecognizerConfig, TemporalGrouper,
};
use common::{assert_on_the_plate, synthetic_frame as fixture};

fn config() -> RecognizerConfig {
    let config = RecognizerConfig::default();
    let det = config.models_dir.join(DETECTOR_FILE);
    assert!(
        det.is_file(),
        "model {} is missing: run scripts/fetch-models (scripts/setup calls it) or set ANPR_MODELS_DIR",
        det.display()
    );
    config
}

#[test]
fn the_pipeline_reads_the_plate_of_a_synthetic_frame_with_its_box() -> anyhow::Result<()> {
    let recognizer = Recognizer::new(&config())?;
    let reads = recognizer.recognize(&fixture())?;
    let top = reads.first().expect("at least one plate read");
    assert_eq!(top.text, "ABC1234", "reads: {reads:?}");
    // The dealer sticker "AUTO CENTER" is words, not a plate (in `auto`, the region default).
    assert_eq!(reads.len(), 1, "reads: {reads:?}");
    assert!(top.confidence > 0.5);
    assert_eq!(top.char_confidences.len(), 7);
    assert_on_the_plate(&top.bbox);
    Ok(())
}

#[test]
fn two_threads_give_the_same_reads_as_one() -> anyhow::Result<()> {
    let one = Recognizer::new(&config())?.recognize(&fixture())?;
    let two = Recognizer::new(&RecognizerConfig {
        threads: 2,
        stop_at_score: 2.0,
        ..config()
    })?
    .recognize(&fixture())?;
    assert_eq!(one.first().map(|r| &r.text), two.first().map(|r| &r.text));
    Ok(())
}

#[test]
fn a_brazilian_camera_reads_the_synthetic_plate_in_the_old_format() -> anyhow::Result<()> {
    let recognizer = Recognizer::new(&RecognizerConfig {
        region: PlateRegion::Br,
        ..config()
    })?;
    let reads = recognizer.recognize(&fixture())?;
    assert_eq!(
        reads.first().and_then(|r| r.format.as_deref()),
        Some("br-old")
    );
    Ok(())
}

#[test]
fn frames_of_one_passage_become_one_read() -> anyhow::Result<()> {
    let recognizer = Recognizer::new(&config())?;
    let frame = fixture();
    let mut grouper = TemporalGrouper::new(1000, 30_000);
    let mut out = Vec::new();
    for t in [0u64, 100, 200] {
        out.extend(grouper.push(t, &recognizer.recognize(&frame)?));
    }
    out.extend(grouper.flush());
    let out: Vec<_> = out.into_iter().map(ClosedGroup::emit).collect();
    let plates: Vec<_> = out.iter().filter(|g| g.best.text == "ABC1234").collect();
    assert_eq!(plates.len(), 1);
    assert_eq!(plates[0].count, 3);
    Ok(())
}

#[test]
fn a_missing_model_is_reported_with_the_setup_hint() {
    let config = RecognizerConfig {
        models_dir: "/nonexistent/models".into(),
        ..RecognizerConfig::default()
    };
    let err = Recognizer::new(&config).expect_err("no models there");
    assert!(err.to_string().contains("scripts/fetch-models"), "{err}");
}
