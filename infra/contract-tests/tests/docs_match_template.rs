//! `docs/infra.md` says what the template deploys: the permissions report is the generated one
//! (`cargo run -p anpr-infra-tests --bin iam-report`), and the rules' SQL, the TTL attribute,
//! the routes, the parameters and the outputs it names are the template's and the code's.

use anpr_aws::schema;
use anpr_infra_tests::{
    iam_report, load_template, prop, repo_root, resource, resources, sam_transform, template_path,
    text,
};
use serde_json::Value;

const BEGIN: &str =
    "<!-- iam-report:begin (generated: cargo run -p anpr-infra-tests --bin iam-report) -->\n";
const END: &str = "<!-- iam-report:end -->";

fn doc() -> String {
    std::fs::read_to_string(repo_root().join("docs/infra.md")).expect("docs/infra.md")
}

fn template() -> Value {
    load_template(&template_path()).expect("infra/template.yaml parses")
}

#[test]
fn the_permissions_report_in_the_docs_is_the_one_the_template_gives() {
    let doc = doc();
    let start = doc.find(BEGIN).expect("begin marker in docs/infra.md") + BEGIN.len();
    let len = doc[start..].find(END).expect("end marker in docs/infra.md");
    let t = sam_transform(&template_path()).expect("SAM transform");
    assert!(
        doc[start..start + len] == iam_report(&t),
        "docs/infra.md's permissions table is out of date: replace it with the output of \
         `cargo run -p anpr-infra-tests --bin iam-report`"
    );
}

#[test]
fn the_docs_name_the_rules_sql_the_ttl_attribute_every_route_parameter_and_output() {
    let doc = doc();
    let t = template();
    let mut missing = Vec::new();
    let mut want = |s: String| {
        if !doc.contains(&s) {
            missing.push(s);
        }
    };
    for (id, r) in resources(&t, "AWS::IoT::TopicRule") {
        let sql = prop(r, &["TopicRulePayload", "Sql"])
            .and_then(text)
            .unwrap_or_else(|| panic!("{id}: SQL"));
        want(format!("`{sql}`"));
        let name = prop(r, &["RuleName"])
            .and_then(text)
            .unwrap_or_else(|| panic!("{id}: name"));
        want(format!("`{name}`"));
    }
    want(format!("TTL on `{}`", schema::TTL_ATTR));
    let api = resource(&t, "RequestApiFunction").expect("request-api");
    for e in prop(api, &["Events"])
        .and_then(Value::as_object)
        .expect("events")
        .values()
    {
        let method = e["Properties"]["Method"].as_str().expect("method");
        let path = e["Properties"]["Path"].as_str().expect("path");
        want(format!("`{method} {path}`"));
    }
    for section in ["Parameters", "Outputs"] {
        for name in t[section].as_object().expect(section).keys() {
            want(format!("`{name}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/infra.md does not say: {}",
        missing.join(", ")
    );
}
