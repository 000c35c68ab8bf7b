//! Our own plate reader (`models/anpr_plate_reader_v1.onnx`, trained by scripts/train-plates on
//! rendered plates) on crops rendered by the same renderer under seeds the training never used
//! (tests/fixtures/make_plate_crops.py), and its selection by the configuration. Never on the
//! shared photos.

mod common;

use std::path::{Path, PathBuf};

use anpr_recognizer::format::best_plate;
use anpr_recognizer::{
    CTC_SEPARATOR, DETECTOR_FILE, DetectorKind, PLATE_DETECTOR_FILE, PLATE_READER_FILE,
    PlateCtcReader, PlateReader, PlateRegion, READER_FILE, ReaderKind, Recognizer,
    RecognizerConfig, RecognizerError, open_image,
};
use common::{assert_on_the_plate, synthetic_frame};

fn committed_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(PLATE_READER_FILE)
}

/// (label, crop) of every fixture crop; the label is the end of the file name.
fn fixture_crops() -> Vec<(String, image::RgbImage)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plate_crops");
    let mut out: Vec<(String, image::RgbImage)> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .map(|p| {
            let stem = p.file_stem().expect("name").to_string_lossy().into_owned();
            let label = stem.rsplit('-').next().expect("label").to_string();
            (label, open_image(&p).expect("fixture").to_rgb8())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn our_reader_reads_rendered_plates_of_each_region() -> anyhow::Result<()> {
    let reader = PlateCtcReader::load(&committed_model())?;
    let crops = fixture_crops();
    assert_eq!(crops.len(), 9, "three crops per region");
    let mut wrong = Vec::new();
    for (label, crop) in &crops {
        let read = reader.read(crop)?;
        // No separators: this reader knows only the 36 plate characters.
        assert!(read.chars.iter().all(|c| !c.is_separator()), "{read:?}");
        assert!(
            read.chars
                .iter()
                .all(|c| (0.0..=1.0).contains(&c.confidence)),
            "{read:?}"
        );
        // Letter O and digit 0 are one glyph in DIN and on many plates: which one a plate
        // holds is for the format rules (format.rs) to decide, not for the reader.
        let same = |s: &str| s.replace('O', "0");
        if same(&read.text()) != same(label) {
            wrong.push(format!("{label} read as {}", read.text()));
        }
    }
    assert!(wrong.is_empty(), "misread: {wrong:?}");
    Ok(())
}

#[test]
fn our_reader_keeps_its_ctc_output_for_format_decoding() -> anyhow::Result<()> {
    let reader = PlateCtcReader::load(&committed_model())?;
    let mut brazilian = 0;
    for (label, crop) in fixture_crops() {
        let read = reader.read(&crop)?;
        let matrix = read.ctc.as_ref().expect("the CTC matrix");
        // One row per output step, each a probability distribution over blank, 0-9 A-Z and
        // separator (which this reader never gives).
        assert_eq!(matrix.rows().len(), 32);
        for row in matrix.rows() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{row:?}");
            assert_eq!(row[CTC_SEPARATOR], 0.0);
        }
        // The Brazilian crops decoded under Brazil's formats give their plate and its format.
        if ["FSH2676", "HKE7R98", "LFZ4580"].contains(&label.as_str()) {
            brazilian += 1;
            let plate = best_plate(&read, PlateRegion::Br).expect("a plate");
            assert_eq!(plate.text, label);
            let expected = if label == "HKE7R98" {
                "br-mercosul"
            } else {
                "br-old"
            };
            assert_eq!(plate.format, Some(expected));
            assert_eq!(plate.char_confidences.len(), 7);
        }
    }
    assert_eq!(brazilian, 3);
    Ok(())
}

#[test]
fn a_blank_crop_reads_as_no_plate_or_a_weak_one() -> anyhow::Result<()> {
    let reader = PlateCtcReader::load(&committed_model())?;
    let grey = image::RgbImage::from_pixel(90, 24, image::Rgb([128, 128, 128]));
    let read = reader.read(&grey)?;
    assert!(
        read.chars.len() <= 1 && read.chars.iter().all(|c| c.confidence < 0.9),
        "{read:?}"
    );
    Ok(())
}

/// A models folder holding only the detector (symlinked from the real one).
fn detectors_only_dir(name: &str) -> PathBuf {
    let real = RecognizerConfig::default().models_dir;
    let dir = std::env::temp_dir().join(format!("anpr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for file in [DETECTOR_FILE, PLATE_DETECTOR_FILE] {
        std::os::unix::fs::symlink(real.join(file), dir.join(file)).expect("link");
    }
    dir
}

#[test]
fn the_configured_reader_is_the_one_loaded() {
    let dir = detectors_only_dir("reader-choice");
    let missing = |reader| match Recognizer::new(&RecognizerConfig {
        models_dir: dir.clone(),
        reader,
        ..RecognizerConfig::default()
    }) {
        Err(RecognizerError::ModelMissing { path }) => path,
        other => panic!("expected a missing reader model, got {other:?}"),
    };
    assert!(missing(ReaderKind::Plate).ends_with(PLATE_READER_FILE));
    assert!(missing(ReaderKind::Ppocr).ends_with(READER_FILE));
    std::os::unix::fs::symlink(committed_model(), dir.join(PLATE_READER_FILE)).expect("link");
    let plate = Recognizer::new(&RecognizerConfig {
        models_dir: dir.clone(),
        reader: ReaderKind::Plate,
        ..RecognizerConfig::default()
    });
    assert!(plate.is_ok(), "{plate:?}");
    // Beside PP-OCR's detector, the second detector (ours, by default) is loaded too, and only
    // when configured.
    std::fs::remove_file(dir.join(PLATE_DETECTOR_FILE)).expect("unlink");
    let config = RecognizerConfig {
        models_dir: dir.clone(),
        reader: ReaderKind::Plate,
        detector: DetectorKind::Ppocr,
        ..RecognizerConfig::default()
    };
    match Recognizer::new(&config) {
        Err(RecognizerError::ModelMissing { path }) => assert!(path.ends_with(PLATE_DETECTOR_FILE)),
        other => panic!("expected the second detector missing, got {other:?}"),
    }
    let without = Recognizer::new(&RecognizerConfig {
        second_detector: None,
        ..config
    });
    assert!(without.is_ok(), "{without:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readers_are_named_in_settings_as_on_the_command_line() {
    for r in ReaderKind::ALL {
        assert_eq!(r.name().parse::<ReaderKind>(), Ok(r));
    }
    assert_eq!("PLATE".parse::<ReaderKind>(), Ok(ReaderKind::Plate));
    assert!("tesseract".parse::<ReaderKind>().is_err());
    assert_eq!(RecognizerConfig::default().reader, ReaderKind::Ppocr);
}

#[test]
fn the_pipeline_with_our_reader_reads_the_synthetic_frame() -> anyhow::Result<()> {
    let dir = detectors_only_dir("plate-pipeline");
    std::os::unix::fs::symlink(committed_model(), dir.join(PLATE_READER_FILE))?;
    let recognizer = Recognizer::new(&RecognizerConfig {
        models_dir: dir.clone(),
        reader: ReaderKind::Plate,
        ..RecognizerConfig::default()
    })?;
    let reads = recognizer.recognize(&synthetic_frame())?;
    let _ = std::fs::remove_dir_all(&dir);
    let top = reads.first().expect("a plate read");
    assert_eq!(top.text, "ABC1234", "reads: {reads:?}");
    assert_on_the_plate(&top.bbox);
    Ok(())
}
