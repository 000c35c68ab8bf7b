//! The stack's parameters and `samconfig.toml`: what `sam deploy` cannot go without has no
//! default and is checked the way `anpr-stack deploy-params` checks it, a second stack in the
//! account takes other IoT rule names, the media bucket is named by one expression everywhere,
//! and presigned URLs are not promised beyond the credentials that sign them.

use anpr_infra_tests::{
    fill, load_template, prop, repo_root, resource, resources, statements, template_path, text,
};
use anpr_protocol::{CameraId, topics};
use anpr_provision::stack;
use serde_json::{Value, json};

fn template() -> Value {
    load_template(&template_path()).expect("infra/template.yaml parses")
}

fn parameter<'a>(t: &'a Value, name: &str) -> &'a Value {
    t.get("Parameters")
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

fn pattern(t: &Value, name: &str) -> String {
    parameter(t, name)["AllowedPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no AllowedPattern"))
        .to_owned()
}

#[test]
fn the_iot_endpoint_and_the_web_origin_have_no_default_and_say_what_to_pass() {
    let t = template();
    for name in ["IotDataEndpoint", "WebOrigin"] {
        let p = parameter(&t, name);
        assert!(p.get("Default").is_none(), "{name} has a default");
        let says = p["ConstraintDescription"].as_str().unwrap_or("");
        assert!(says.starts_with("required"), "{name}: {says:?}");
    }
    // deploy-params checks the origin as the template does (the same pattern, written out in
    // anpr_provision::stack::web_origin) and makes the endpoint URL the template's pattern wants.
    assert_eq!(pattern(&t, "WebOrigin"), r"^https?://[^/*\s]+$");
    assert_eq!(pattern(&t, "IotDataEndpoint"), "^https://[a-z0-9.-]+$");
    let p = stack::DeployParams::new(
        "https://abc123-ats.iot.eu-west-1.amazonaws.com".into(),
        "https://app.example.com",
        None,
        None,
        None,
    )
    .expect("valid");
    let words = p.overrides();
    for name in ["IotDataEndpoint", "WebOrigin"] {
        assert!(
            words.iter().any(|w| w.starts_with(&format!("{name}="))),
            "{name} not passed"
        );
    }
    assert!(stack::web_origin("https://app.example.com/").is_err());
}

#[test]
fn rule_names_come_from_a_rule_prefix_in_the_rule_name_alphabet() {
    let t = template();
    let p = parameter(&t, "RulePrefix");
    assert_eq!(p["Default"], stack::DEFAULT_RULE_PREFIX);
    // IoT rule names: ^[a-zA-Z0-9_]+$, at most 128 characters; the longest suffix is 16.
    assert_eq!(pattern(&t, "RulePrefix"), "^[a-zA-Z0-9_]{1,100}$");
    assert!(stack::rule_prefix(&"a".repeat(100)).is_ok());
    assert!(stack::rule_prefix(&"a".repeat(101)).is_err());
    assert!(stack::rule_prefix("anpr-2").is_err());

    let names: Vec<String> = resources(&t, "AWS::IoT::TopicRule")
        .into_iter()
        .map(|(id, r)| {
            prop(r, &["RuleName"])
                .and_then(text)
                .unwrap_or_else(|| panic!("{id}: rule name is not a !Sub"))
        })
        .collect();
    for prefix in [stack::DEFAULT_RULE_PREFIX, "fleet_2"] {
        let vars = [("RulePrefix", prefix)];
        let mut filled: Vec<String> = names.iter().map(|n| fill(n, &vars)).collect();
        filled.sort();
        assert_eq!(
            filled,
            [
                stack::presence_rule(prefix),
                stack::status_rule(prefix),
                stack::sync_rule(prefix),
                stack::plate_rule(prefix)
            ],
            "rule names for RulePrefix={prefix}"
        );
    }
    assert_eq!(
        stack::plate_rule(stack::DEFAULT_RULE_PREFIX),
        topics::PLATE_RULE
    );
    assert_eq!(
        stack::presence_rule(stack::DEFAULT_RULE_PREFIX),
        topics::PRESENCE_RULE
    );

    // The camera policy of a second stack lets its cameras publish to that stack's rule (the
    // topic provision-camera --rule-prefix writes into the camera's config), not the first's.
    let cam = CameraId::parse("cam-1").expect("valid");
    let all = statements(&t);
    let camera: Vec<_> = all
        .iter()
        .filter(|s| s.principal == "CameraPolicy")
        .collect();
    let arn = |topic: &str| format!("arn:aws:iot:us-east-1:123456789012:topic/{topic}");
    let vars = [
        ("AWS::Partition", "aws"),
        ("AWS::Region", "us-east-1"),
        ("AWS::AccountId", "123456789012"),
        ("RulePrefix", "fleet_2"),
        ("iot:Connection.Thing.ThingName", "cam-1"),
    ];
    let grants = |topic: &str| {
        camera
            .iter()
            .any(|s| s.grants("iot:Publish", &arn(topic), &vars))
    };
    assert!(grants(&stack::plate_topic("fleet_2", &cam)));
    assert!(!grants(&stack::plate_topic(
        stack::DEFAULT_RULE_PREFIX,
        &cam
    )));

    // No rule name is written literally anywhere else in the template.
    let raw = std::fs::read_to_string(template_path()).expect("template text");
    for literal in [topics::PLATE_RULE, topics::STATUS_RULE] {
        assert!(
            !raw.contains(literal),
            "{literal} written literally: use ${{RulePrefix}}"
        );
    }
}

/// Counts the values equal to `name` under `v`, and fails on any other string that names a
/// media bucket (`-media-`) by itself.
fn uses_of(v: &Value, name: &Value, path: &str) -> usize {
    if v == name {
        return 1;
    }
    match v {
        Value::String(s) => {
            assert!(
                !s.contains("-media-"),
                "{path}: {s} names the bucket without the MediaBucket expression"
            );
            0
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| uses_of(x, name, &format!("{path}[{i}]")))
            .sum(),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| uses_of(x, name, &format!("{path}.{k}")))
            .sum(),
        _ => 0,
    }
}

#[test]
fn the_media_bucket_is_named_by_one_expression_everywhere() {
    let t = template();
    let bucket = resource(&t, "MediaBucket").expect("bucket");
    let name = prop(bucket, &["BucketName"]).expect("bucket name");
    assert_eq!(
        name,
        &json!({"Fn::If": ["NamedBucket", {"Ref": "MediaBucketName"},
            {"Fn::Sub": "${AppName}-media-${AWS::AccountId}-${AWS::Region}"}]})
    );
    assert_eq!(
        t["Conditions"]["NamedBucket"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "MediaBucketName"}, ""]}]})
    );
    let p = parameter(&t, "MediaBucketName");
    assert_eq!(p["Default"], "");
    assert_eq!(
        pattern(&t, "MediaBucketName"),
        "^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    );
    assert!(stack::bucket_name("").is_ok() && stack::bucket_name("Bad_Name").is_err());

    // Every `${Bucket}` of a `!Sub [..., {Bucket: ...}]` and every ANPR_MEDIA_BUCKET is that same
    // expression; nothing else names a media bucket. The bucket itself, three environments
    // (file-status, upload-completed, request-api), the two presigning roles' GetObject and
    // the camera upload role: seven uses.
    let resources = &t["Resources"];
    assert_eq!(uses_of(resources, name, "Resources"), 7);
    for (id, f) in anpr_infra_tests::resources(&t, "AWS::Serverless::Function") {
        if let Some(v) = prop(f, &["Environment", "Variables", "ANPR_MEDIA_BUCKET"]) {
            assert_eq!(v, name, "{id}: ANPR_MEDIA_BUCKET");
        }
    }
    let mut subs = 0;
    let mut walk = vec![resources];
    while let Some(v) = walk.pop() {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(a)) = m.get("Fn::Sub")
                    && let Some(b) = a.get(1).and_then(|vars| vars.get("Bucket"))
                {
                    assert_eq!(b, name, "{}", a[0]);
                    subs += 1;
                }
                walk.extend(m.values());
            }
            Value::Array(a) => walk.extend(a),
            _ => {}
        }
    }
    assert_eq!(subs, 3);
}

#[test]
fn download_urls_are_not_valid_longer_than_the_credentials_that_sign_them() {
    let t = template();
    let p = parameter(&t, "DownloadUrlSecs");
    let max = p["MaxValue"]
        .as_u64()
        .expect("DownloadUrlSecs has a MaxValue");
    assert!(
        max <= 3600,
        "MaxValue {max}: a Lambda role session may end within the hour"
    );
    assert!(p["Default"].as_u64().expect("default") <= max);
}

#[test]
fn samconfig_builds_without_a_prompt_and_asks_for_the_required_parameters() {
    let text = std::fs::read_to_string(repo_root().join("samconfig.toml")).expect("samconfig.toml");
    let c: toml::Value = toml::from_str(&text).expect("samconfig.toml is TOML");
    for section in ["build", "sync"] {
        assert_eq!(
            c["default"][section]["parameters"]["beta_features"],
            toml::Value::Boolean(true),
            "[default.{section}.parameters] beta_features"
        );
    }
    assert_eq!(
        c["default"]["build"]["parameters"]["template_file"].as_str(),
        Some("infra/template.yaml")
    );
    // The required parameters are not pinned to someone's account or web app here.
    assert!(
        c["default"]["deploy"]["parameters"]
            .get("parameter_overrides")
            .is_none()
    );
    // scripts/deploy is what fills them in.
    let deploy =
        std::fs::read_to_string(repo_root().join("scripts/deploy")).expect("scripts/deploy");
    assert!(deploy.contains("deploy-params"));
}

#[test]
fn scripts_deploy_without_a_web_origin_and_no_terminal_stops_and_says_what_to_pass() {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/deploy"))
        .env_remove("ANPR_WEB_ORIGIN")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/deploy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WebOrigin is required: pass --web-origin"),
        "{err}"
    );
    // It stopped before building or deploying anything.
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}
