//! The table of environment variables (`docs/configuration.md`) stays true: every variable a
//! Rust source of the repository reads is in it, and every variable in it is still read by a
//! Rust source or a script.

use anpr_infra_tests::repo_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Folders that are not our sources.
const SKIP: &[&str] = &["target", "vendor", ".local", ".git", "node_modules"];

fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if !SKIP.iter().any(|s| name == *s) {
                files(&p, keep, out);
            }
        } else if keep(&p) {
            out.push(p);
        }
    }
}

fn rust_sources() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    // This file's own examples are not reads.
    files(
        &repo_root(),
        &|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with(file!()),
        &mut paths,
    );
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect()
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The string literal right after each `call` in `text` (`var("NAME"` → `NAME`).
fn literal_args<'a>(text: &'a str, call: &str) -> Vec<(usize, &'a str)> {
    text.match_indices(call)
        .filter_map(|(i, _)| {
            let rest = text[i + call.len()..].trim_start().strip_prefix('"')?;
            let name = &rest[..rest.find('"')?];
            is_name(name).then_some((i, name))
        })
        .collect()
}

/// The environment variables `text` reads: `env::var("…")`, `var_os("…")`, a helper
/// `env("…")` (not a `Command`'s `.env("…", …)`, which sets one), and the names of
/// `const ENV_…: &str = "…"` (read through the constant).
fn names_read(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for call in ["var(", "var_os("] {
        for (_, name) in literal_args(text, call) {
            out.insert(name.to_owned());
        }
    }
    for (i, name) in literal_args(text, "env(") {
        let before = text[..i].chars().next_back();
        if !before.is_some_and(|c| c == '.' || c == '_' || c.is_ascii_alphanumeric()) {
            out.insert(name.to_owned());
        }
    }
    for line in text.lines() {
        let l = line.trim_start();
        if (l.starts_with("pub const ENV_") || l.starts_with("const ENV_"))
            && let Some(name) = l.split('"').nth(1).filter(|n| is_name(n))
        {
            out.insert(name.to_owned());
        }
    }
    out
}

/// The names in the first column of the table of `docs/configuration.md`.
fn documented() -> BTreeSet<String> {
    let path = repo_root().join("docs").join("configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| is_name(n))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_scanner_finds_reads_of_every_kind() {
    let text = r#"
        let a = std::env::var("ANPR_A").ok();
        let b = std::env::var_os( "ANPR_B");
        pub const ENV_C: &str = "ANPR_C";
        let d = env("ANPR_D");
        Command::new("x").env("ANPR_SET", "1");
        let e = std::env::var(ENV_C);
        let f = env!("CARGO_MANIFEST_DIR");
    "#;
    let found: Vec<String> = names_read(text).into_iter().collect();
    assert_eq!(found, ["ANPR_A", "ANPR_B", "ANPR_C", "ANPR_D"]);
}

#[test]
fn every_variable_read_is_in_the_table() {
    let table = documented();
    assert!(table.len() > 20, "the table was not found: {table:?}");
    let mut missing = Vec::new();
    let mut all = BTreeSet::new();
    for (path, text) in rust_sources() {
        for name in names_read(&text) {
            if !table.contains(&name) {
                let rel = path.strip_prefix(repo_root()).unwrap_or(&path).to_owned();
                missing.push(format!("{name} (read in {})", rel.display()));
            }
            all.insert(name);
        }
    }
    // Reads of each kind are found at all (the scanner did not go blind).
    for known in [
        "ANPR_MOTO_URL",
        "ANPR_TABLE_NAME",
        "AWS_REGION",
        "ANPR_PLATES_CHILD_CA",
    ] {
        assert!(all.contains(known), "{known} was not found read: {all:?}");
    }
    assert!(
        missing.is_empty(),
        "read but not in docs/configuration.md: {missing:#?}"
    );
}

#[test]
fn every_variable_in_the_table_is_read() {
    let mut texts: Vec<String> = rust_sources().into_iter().map(|(_, t)| t).collect();
    let mut scripts = Vec::new();
    files(&repo_root().join("scripts"), &|_| true, &mut scripts);
    texts.extend(
        scripts
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok()),
    );
    let word = |text: &str, name: &str| {
        text.match_indices(name).any(|(i, _)| {
            let edge = |c: Option<char>| !c.is_some_and(|c| c == '_' || c.is_ascii_alphanumeric());
            edge(text[..i].chars().next_back()) && edge(text[i + name.len()..].chars().next())
        })
    };
    let stale: Vec<String> = documented()
        .into_iter()
        .filter(|n| !texts.iter().any(|t| word(t, n)))
        .collect();
    assert!(
        stale.is_empty(),
        "in docs/configuration.md but named by no source or script: {stale:?}"
    );
}
