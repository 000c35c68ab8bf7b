//! `anpr-camera eval --reader … --detector …`: each pipeline measured on a folder laid out like the shared
//! set, here one synthetic frame we rendered ourselves (camera/recognizer/tests/fixtures), never
//! a shared photo. Needs the models of scripts/fetch-models (ours included).

use std::path::Path;
use std::process::Command;

fn eval_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recognizer/tests/fixtures/synthetic_plate.jpg");
    std::fs::copy(&fixture, dir.path().join("frame.jpg")).unwrap();
    // The plate is drawn at x 230..410, y 180..232 (make_fixture.py).
    std::fs::write(
        dir.path().join("frame.txt"),
        "frame.jpg\t230\t180\t180\t52\tABC1234\n",
    )
    .unwrap();
    dir
}

fn eval(dir: &Path, reader: &str) -> std::process::Output {
    eval_with(dir, &["--json", "--reader", reader])
}

fn eval_with(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anpr-camera"))
        .arg("eval")
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn eval_measures_each_reader_side_by_side() {
    let dir = eval_folder();
    let out = eval(dir.path(), "all");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = reports.as_array().expect("one report per reader");
    let readers: Vec<&str> = reports
        .iter()
        .map(|r| r["config"]["reader"].as_str().unwrap())
        .collect();
    assert_eq!(readers, ["ppocr", "plate"]);
    for r in reports {
        assert_eq!(r["overall"]["images"], 1, "{r}");
        assert_eq!(r["overall"]["exact"], 1, "{r}");
        assert!(r["model_bytes"].as_u64().unwrap() > 100_000, "{r}");
    }
    // Our reader's pipeline loads the detector and one small model, PP-OCR's two larger ones.
    assert!(reports[1]["model_bytes"].as_u64() < reports[0]["model_bytes"].as_u64());
}

#[test]
fn eval_with_one_reader_prints_one_report_and_refuses_an_unknown_one() {
    let dir = eval_folder();
    let out = eval(dir.path(), "plate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["config"]["reader"], "plate");
    let out = eval(dir.path(), "tesseract");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown reader"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn eval_measures_every_detector_with_every_reader() {
    let dir = eval_folder();
    let out = eval_with(
        dir.path(),
        &["--json", "--detector", "all", "--reader", "all"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pipelines: Vec<(&str, &str)> = reports
        .as_array()
        .expect("one report per pipeline")
        .iter()
        .map(|r| {
            (
                r["config"]["detector"].as_str().unwrap(),
                r["config"]["reader"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pipelines,
        [
            ("ppocr", "ppocr"),
            ("ppocr", "plate"),
            ("plate", "ppocr"),
            ("plate", "plate")
        ]
    );
    for r in reports.as_array().unwrap() {
        assert_eq!(r["overall"]["exact"], 1, "{r}");
    }
    // Our two models are the smallest pipeline.
    let bytes: Vec<u64> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(bytes.iter().min(), Some(&bytes[3]), "{bytes:?}");
    // The table names both stages of each pipeline.
    let out = eval_with(
        dir.path(),
        &["--detector", "plate,ppocr", "--reader", "plate"],
    );
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("detector plate, reader plate"), "{table}");
    assert!(table.contains("detector  reader"), "{table}");
    // An unknown detector is refused, naming the known ones.
    let out = eval_with(dir.path(), &["--detector", "yolo"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown detector \"yolo\" (ppocr, plate)"),
        "{err}"
    );
}

#[test]
fn eval_refuses_looks_and_bars_a_camera_could_not_set_and_measures_nothing() {
    let dir = eval_folder();
    for (args, named) in [
        (&["--detector-side", "0"][..], "recognizer.detector_side"),
        (&["--detector-side", "4000"][..], "recognizer.detector_side"),
        // A finer look must lie above the first one (960 unless given).
        (&["--finer-side", "640"][..], "recognizer.finer_side"),
        (
            &["--detector-side", "640", "--finer-side", "320"][..],
            "recognizer.finer_side",
        ),
        (&["--finer-side", "2000"][..], "recognizer.finer_side"),
        (
            &["--reread-below", "1.5"][..],
            "--reread-below must be 0..=1",
        ),
        (&["--reread-below=-0.1"][..], "--reread-below must be 0..=1"),
        (&["--finer-below", "2"][..], "--finer-below must be 0..=1"),
    ] {
        let out = eval_with(
            dir.path(),
            &[&["--json", "--reader", "plate"][..], args].concat(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was measured");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: a report was printed");
    }
    // A first look and a finer one, as PP-OCR's thorough pipeline takes them, are measured.
    let out = eval_with(
        dir.path(),
        &[
            "--json",
            "--reader",
            "plate",
            "--detector-side",
            "640",
            "--finer-side",
            "960",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overall"]["images"], 1, "{report}");
}
