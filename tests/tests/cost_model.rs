//! `scripts/cost-model` runs, its arithmetic matches hand-checked figures, and the plate item it
//! sizes has the attributes the code writes.
//!
//! The arithmetic tests are Python (`scripts/cost/test_cost_model.py`, stdlib only, Python ≥ 3.11
//! for `tomllib`); this test runs them so `cargo test --workspace` covers the cost model.

use anpr_core::plates::StoredRead;
use anpr_protocol::{CameraId, FileName, ReadId};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

#[test]
fn cost_model_arithmetic_is_right_for_hand_checked_inputs() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "scripts/cost",
            "-p",
            "test_*.py",
            "-v",
        ])
        .current_dir(root())
        .output()
        .expect("python3 runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cost model unit tests failed:\n{log}");
    assert!(log.contains("Ran 10 tests"), "{log}");
}

#[test]
fn cost_model_command_prints_profiles_and_fleets() {
    let out = Command::new(root().join("scripts/cost-model"))
        .arg("--json")
        .current_dir(root())
        .output()
        .expect("scripts/cost-model runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    for p in ["idle", "quiet", "busy"] {
        let total = v["profiles"][p]["total"]
            .as_f64()
            .expect("a total per profile");
        assert!(total > 0.0, "{p}");
    }
    let idle = v["profiles"]["idle"]["total"].as_f64().unwrap();
    let busy = v["profiles"]["busy"]["total"].as_f64().unwrap();
    assert!(busy > idle * 10.0, "busy {busy} vs idle {idle}");
    assert_eq!(v["fleets"].as_array().map(Vec::len), Some(3));
}

/// The attribute names of `[plates.item]` in scripts/cost/workload.toml.
fn workload_item_attributes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("scripts/cost/workload.toml")).unwrap();
    text.lines()
        .skip_while(|l| l.trim() != "[plates.item]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .collect()
}

#[test]
fn sized_plate_item_has_the_attributes_the_store_writes() {
    let read = StoredRead {
        camera_id: CameraId::parse("cam-000001").unwrap(),
        org: Some(anpr_core::OrgId::parse("acme").unwrap()),
        read_id: ReadId::parse("0kq3h7x2m1k2").unwrap(),
        t_ms: 1_764_086_400_123,
        plate: "AB123CD".into(),
        plate_raw: "AB 123 CD".into(),
        confidence: 97,
        img: Some(FileName::parse("reads/0kq3h7x2m1k2.jpg").unwrap()),
        bb: Some([412, 300, 120, 40]),
        received_ms: 1_764_086_401_500,
        expires_at: 1_771_862_400,
    };
    let item = anpr_aws::plates::to_item(&read).unwrap();
    let written: BTreeSet<String> = item.keys().cloned().collect();
    assert_eq!(workload_item_attributes(), written);
}
