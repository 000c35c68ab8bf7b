//! `cargo run --release -p anpr-recognizer --example recognize -- IMAGE… [--threads N]`

use anpr_recognizer::{RecognizerConfig, recognize_files};
use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut config = RecognizerConfig {
        models_dir: anpr_recognizer::models_dir_or_default(std::env::var_os(
            anpr_recognizer::MODELS_DIR_ENV,
        )),
        ..RecognizerConfig::default()
    };
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => config.threads = args.next().context("--threads N")?.parse()?,
            other => paths.push(std::path::PathBuf::from(other)),
        }
    }
    let reads = recognize_files(&paths, &config)?;
    println!("{}", serde_json::to_string_pretty(&reads)?);
    Ok(())
}
