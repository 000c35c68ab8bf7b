//! `iam-report [TEMPLATE]`: every permission the deployed stack grants, per principal, as a
//! Markdown table, read from the real SAM transform of the template (so the roles SAM
//! generates are included). `docs/infra.md` holds its output.

use anpr_infra_tests::{
    managed_policies, prop, resources, sam_transform, statements, template_path, texts,
};
use anyhow::Context as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(template_path);
    let t = sam_transform(&path).with_context(|| format!("transforming {}", path.display()))?;
    println!("| principal (policy) | kind | effect | actions | resources |");
    println!("|---|---|---|---|---|");
    for s in statements(&t) {
        println!(
            "| {} | {} | {}{} | {} | {} |",
            s.principal,
            s.carrier,
            s.effect,
            if s.conditional { " (conditional)" } else { "" },
            s.actions.join(", "),
            s.resources
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    for (role, arn) in managed_policies(&t) {
        println!("| {role} | managed policy | Allow | (see AWS) | `{arn}` |");
    }
    // Resource-based: who may invoke which function.
    for (id, p) in resources(&t, "AWS::Lambda::Permission") {
        let one = |k: &str| texts(prop(p, &[k])).join(" ");
        println!(
            "| {} (`{id}`) | AWS::Lambda::Permission | Allow | {} | function `{}`, source `{}` |",
            one("Principal"),
            one("Action"),
            one("FunctionName"),
            one("SourceArn"),
        );
    }
    Ok(())
}
