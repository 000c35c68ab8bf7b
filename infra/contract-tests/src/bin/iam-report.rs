//! `iam-report [TEMPLATE]`: every permission the deployed stack grants, per principal, as a
//! Markdown table, read from the real SAM transform of the template (so the roles SAM
//! generates are included). `docs/infra.md` holds its output, between the `iam-report` markers
//! (tests/docs_match_template.rs fails when it is out of date).

use anpr_infra_tests::{iam_report, sam_transform, template_path};
use anyhow::Context as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(template_path);
    let t = sam_transform(&path).with_context(|| format!("transforming {}", path.display()))?;
    print!("{}", iam_report(&t));
    Ok(())
}
