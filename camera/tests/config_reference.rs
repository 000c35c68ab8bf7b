//! The configuration's documentation against the code: `camera/camera.example.toml` (the file
//! an installer copies) and the settings table of docs/camera.md ("Configuration reference")
//! name exactly the settings `anpr_camera::Config` has, and the real binary accepts the
//! example as it ships.
#![allow(clippy::unwrap_used)]

use anpr_camera::Config;
use anpr_camera::config::{
    CredentialsSection, HealthSection, MqttSection, OutboxSection, RecognizerSection,
    RemoteSection, UploadSection,
};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn example_text() -> String {
    std::fs::read_to_string(repo_file("camera/camera.example.toml")).unwrap()
}

/// The example with its optional settings and sections switched on: a commented line that is a
/// setting (`# name = value`) or a section header (`# [name]`) loses its `# `; prose stays.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_setting(rest) || is_header(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_setting(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

fn is_header(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .is_some_and(|name| name.chars().all(|c| c.is_ascii_lowercase()))
}

/// Dotted names of every value in a TOML table (`mqtt.host`), sections walked.
fn names(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        match value {
            toml::Value::Table(t) => names(t, &format!("{prefix}{key}."), out),
            _ => {
                out.insert(format!("{prefix}{key}"));
            }
        }
    }
}

fn names_of(table: &toml::Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    names(table, "", &mut out);
    out
}

/// The field names `T` reads, as its deserializer lists them when refusing an unknown one: the
/// struct's own list, optional fields included.
fn fields_of<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let e = toml::from_str::<T>("zz_unknown = 1")
        .unwrap_err()
        .to_string();
    let line = e
        .lines()
        .find(|l| l.contains("unknown field `zz_unknown`"))
        .unwrap_or_else(|| panic!("not an unknown-field error: {e}"));
    let (_, expected) = line.split_once("expected").unwrap();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every setting `Config` has, by dotted name, from the structs themselves.
fn struct_settings() -> BTreeSet<String> {
    let sections = [
        ("mqtt", fields_of::<MqttSection>()),
        ("upload", fields_of::<UploadSection>()),
        ("credentials", fields_of::<CredentialsSection>()),
        ("health", fields_of::<HealthSection>()),
        ("outbox", fields_of::<OutboxSection>()),
        ("remote", fields_of::<RemoteSection>()),
        ("recognizer", fields_of::<RecognizerSection>()),
    ];
    let mut out = BTreeSet::new();
    for top in fields_of::<Config>() {
        match sections.iter().find(|(name, _)| *name == top) {
            Some((name, fields)) => out.extend(fields.iter().map(|f| format!("{name}.{f}"))),
            None => {
                out.insert(top);
            }
        }
    }
    out
}

/// The settings named in the first column of docs/camera.md's reference table.
fn documented_settings() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo_file("docs/camera.md")).unwrap();
    let (_, reference) = doc.split_once("\n## Configuration reference\n").unwrap();
    let reference = reference.split("\n## ").next().unwrap();
    reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn differences(what: &str, got: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let missing: Vec<_> = want.difference(got).collect();
    let unknown: Vec<_> = got.difference(want).collect();
    format!("{what}: missing {missing:?}, not settings of Config {unknown:?}")
}

#[test]
fn the_example_and_the_reference_table_name_every_setting_and_nothing_else() {
    let settings = struct_settings();
    // A sanity floor: the walk found the sections, not just the top level.
    assert!(settings.contains("mqtt.keep_alive_secs"), "{settings:?}");
    assert!(settings.contains("recognizer.watch_dir"), "{settings:?}");
    assert!(settings.contains("media_quota_bytes"), "{settings:?}");

    let text = uncommented(&example_text());
    let example: toml::Table = toml::from_str(&text).unwrap();
    let in_example = names_of(&example);
    assert_eq!(
        in_example,
        settings,
        "{}",
        differences("camera.example.toml", &in_example, &settings)
    );

    // Every setting the example names is read under that name and written back under it: the
    // example as a Config (unknown names refused), serialized, walked.
    let cfg: Config = toml::from_str(&text).unwrap();
    let written: toml::Table = toml::from_str(&cfg.to_toml().unwrap()).unwrap();
    assert_eq!(
        names_of(&written),
        settings,
        "{}",
        differences("Config::to_toml", &names_of(&written), &settings)
    );

    let documented = documented_settings();
    assert_eq!(
        documented,
        settings,
        "{}",
        differences("docs/camera.md reference table", &documented, &settings)
    );
}

/// With every optional setting switched on, the example is still a valid configuration.
#[test]
fn the_example_with_every_optional_setting_on_is_valid() {
    let text = uncommented(&example_text());
    assert!(text.contains("\n[recognizer]\n"), "{text}");
    let cfg = Config::parse(&text).unwrap();
    assert!(cfg.media_quota_bytes.is_some());
    assert!(cfg.mqtt.plate_topic.is_some());
    assert!(cfg.upload.max_bytes_per_sec.is_some());
}

/// `anpr-camera check-config` on the example exactly as it ships (its paths need not exist:
/// the check reads the file, it opens no certificate).
#[test]
fn the_real_binary_accepts_the_example_as_it_ships() {
    let example = repo_file("camera/camera.example.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anpr-camera"))
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(": valid"), "{stdout}");
    assert!(
        stdout.contains("mqtt.key_file = /etc/anpr/key.pem"),
        "{stdout}"
    );
}

/// The uncommenting above recognises settings and headers only: prose keeps its `# `.
#[test]
fn only_commented_settings_and_headers_are_switched_on() {
    let text = "# Prose: a = b here.\n# name = 1\n# [section]\n# [Not one]\nkeep = 2";
    assert_eq!(
        uncommented(text),
        "# Prose: a = b here.\nname = 1\n[section]\n# [Not one]\nkeep = 2"
    );
}
