//! The README's two commands share one build: every crate that `cargo run -p anpr-local` builds
//! has the same features as in `cargo test --workspace` (scripts/test), so running the stack
//! after the tests rebuilds nothing but what changed. Cargo unifies the features enabled by
//! dev-dependencies only in test builds; the "feature unification" block of
//! `infra/local/Cargo.toml` enables them in the run build too. This test fails, naming the
//! crates and features, when that block falls out of date.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `package version` → its features, as `cargo tree` resolves them for `args`.
fn features(root: &Path, args: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter_map(|l| {
            // A crate already shown is marked " (*)" at the end of its line.
            let (p, f) = l.trim_end_matches(" (*)").split_once('|')?;
            // "name vX.Y.Z (path)": name and version identify the crate.
            let id: Vec<&str> = p.split_whitespace().take(2).collect();
            Some((id.join(" "), f.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_run_command_builds_every_crate_with_the_test_builds_features() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = features(&root, &["-p", "anpr-local", "-e", "normal,build"]);
    let test = features(&root, &["--workspace", "-e", "normal,build,dev"]);
    let differ: Vec<String> = run
        .iter()
        .filter_map(|(id, f)| {
            let t = test.get(id)?;
            (t != f).then(|| format!("{id}: run [{f}] test [{t}]"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "`cargo run -p anpr-local` would rebuild these crates after `scripts/test` (add the \
         features to the feature-unification block of infra/local/Cargo.toml):\n{}",
        differ.join("\n")
    );
}
