//! Least privilege, checked on the template as written and on what the real SAM transform
//! makes of it (the roles SAM generates for functions, their dead-letter permissions…): no
//! Allow with a wildcard action anywhere, no Allow on every resource, no SAM policy template,
//! no managed policy (each function has its own role, logging to its own log group only). Also the offline linters: cfn-lint
//! passes, and the SAM transform accepts the template.

use anpr_infra_tests::{
    cfn_lint, load_template, managed_policies, resource, resources, sam_transform, statements,
    template_path, text, wildcard_grants,
};
use serde_json::Value;

/// The SAM transform of the template, run once per test binary (it takes seconds).
fn transformed() -> &'static Value {
    static ONCE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        sam_transform(&template_path()).unwrap_or_else(|e| panic!("SAM transform: {e}"))
    })
}

#[test]
fn no_statement_of_the_template_allows_a_wildcard_action() {
    let t = load_template(&template_path()).expect("template");
    let found = wildcard_grants(&statements(&t));
    assert!(
        found.is_empty(),
        "wildcard actions granted:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_role_of_the_deployed_stack_allows_a_wildcard_action() {
    let t = transformed();
    let all = statements(t);
    assert!(
        all.iter()
            .any(|s| s.principal.starts_with("RequestApiRole")),
        "the transform lost the function roles"
    );
    let found = wildcard_grants(&all);
    assert!(
        found.is_empty(),
        "wildcard actions granted:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_statement_allows_every_resource_or_uses_a_policy_template() {
    for t in [
        &load_template(&template_path()).expect("template"),
        transformed(),
    ] {
        for s in statements(t).iter().filter(|s| s.allows()) {
            assert!(
                !s.actions.iter().any(|a| a.starts_with("opaque:")),
                "{}: SAM policy template {:?}",
                s.principal,
                s.actions
            );
            assert!(!s.resources.is_empty(), "{}: no resource", s.principal);
            for r in &s.resources {
                assert!(
                    r != "*" && !r.starts_with("NotResource:"),
                    "{}: resource {r}",
                    s.principal
                );
            }
        }
    }
}

#[test]
fn no_role_gets_a_managed_policy() {
    // SAM's generated function roles would carry AWSLambdaBasicExecutionRole (log actions on
    // every resource): each function has its own role instead.
    let t = transformed();
    let managed = managed_policies(t);
    assert!(managed.is_empty(), "managed policies: {managed:?}");
}

#[test]
fn each_function_runs_as_its_own_role_and_logs_only_to_its_own_log_group() {
    let t = load_template(&template_path()).expect("template");
    let all = statements(&t);
    let functions = resources(&t, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 5);
    let mut roles = Vec::new();
    for (id, f) in functions {
        let role = f["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no own role"));
        assert!(!roles.contains(&role), "{id} shares {role}");
        roles.push(role);
        let name = text(&f["Properties"]["FunctionName"])
            .unwrap_or_else(|| panic!("{id}: no FunctionName"));
        let log_statements: Vec<_> = all
            .iter()
            .filter(|s| s.principal.starts_with(&format!("{role}/")))
            .filter(|s| s.actions.iter().any(|a| a.starts_with("logs:")))
            .collect();
        assert_eq!(log_statements.len(), 1, "{id}");
        let group = log_statements[0].resources[0].clone();
        let group_id = group
            .strip_prefix(r#"{"Fn::GetAtt":[""#)
            .and_then(|g| g.split_once('"'))
            .map(|(g, _)| g.to_owned())
            .unwrap_or_else(|| panic!("{id}: log resource {group}"));
        let lg = resource(&t, &group_id).expect("log group");
        assert_eq!(
            text(&lg["Properties"]["LogGroupName"]),
            Some(format!("/aws/lambda/{name}")),
            "{id}"
        );
    }
}

#[test]
fn wildcard_actions_appear_only_in_deny_statements_with_a_tls_condition() {
    let t = load_template(&template_path()).expect("template");
    for s in statements(&t).iter().filter(|s| !s.allows()) {
        assert_eq!(s.effect, "Deny", "{}", s.principal);
        assert!(s.conditional, "{}: an unconditional Deny", s.principal);
    }
}

#[test]
fn functions_get_only_the_table_actions_their_code_uses() {
    // The actions the adapters call (anpr-aws dynamo.rs/plates.rs), per function.
    let expect: &[(&str, &[&str])] = &[
        (
            "RequestApiRole/",
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
        ),
        (
            "UploadCompletedRole/",
            &["dynamodb:GetItem", "dynamodb:PutItem"],
        ),
        (
            "FileStatusRole/",
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
        ),
        (
            "PlateIngestRole/",
            &["dynamodb:BatchWriteItem", "dynamodb:GetItem"],
        ),
    ];
    let t = load_template(&template_path()).expect("template");
    let all = statements(&t);
    for (f, want) in expect {
        let mut got: Vec<&str> = all
            .iter()
            .filter(|s| s.principal.starts_with(f))
            .flat_map(|s| s.actions.iter().map(String::as_str))
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(&got, want, "{f}");
    }
}

#[test]
fn the_bucket_is_private_encrypted_and_refuses_plain_http() {
    let t = load_template(&template_path()).expect("template");
    let b = resource(&t, "MediaBucket").expect("bucket");
    let block = &b["Properties"]["PublicAccessBlockConfiguration"];
    for k in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[k], true, "{k}");
    }
    let sse = &b["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert!(sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"].is_string());
    let policies = resources(&t, "AWS::S3::BucketPolicy");
    assert_eq!(policies.len(), 1);
    let st = &policies[0].1["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(policies[0].1["Properties"]["Bucket"]["Ref"], "MediaBucket");
}

#[test]
fn the_http_api_checks_jwts_limits_cors_to_the_web_origin_and_throttles() {
    let t = load_template(&template_path()).expect("template");
    let api = resource(&t, "HttpApi").expect("api");
    let auth = &api["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"]
        .as_str()
        .expect("default authorizer");
    let jwt = &auth["Authorizers"][default]["JwtConfiguration"];
    assert!(text(&jwt["issuer"]).is_some_and(|i| i.starts_with("https://cognito-idp.")));
    assert!(jwt["audience"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(
        api["Properties"]["CorsConfiguration"]["AllowOrigins"][0]["Ref"],
        "WebOrigin"
    );
    let throttle = &api["Properties"]["DefaultRouteSettings"];
    assert_eq!(throttle["ThrottlingRateLimit"]["Ref"], "ApiRateLimit");
    assert_eq!(throttle["ThrottlingBurstLimit"]["Ref"], "ApiBurstLimit");
    // No route opts out of the authorizer.
    let f = resource(&t, "RequestApiFunction").expect("function");
    for (name, e) in f["Properties"]["Events"].as_object().expect("events") {
        assert!(
            e["Properties"].get("Auth").is_none(),
            "{name} overrides the authorizer"
        );
    }
    // And the transform wires the authorizer to every route.
    let out = transformed();
    let apis = resources(out, "AWS::ApiGatewayV2::Api");
    assert_eq!(apis.len(), 1);
    let body = &apis[0].1["Properties"]["Body"]["paths"];
    for (path, methods) in body.as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("methods") {
            assert!(
                op["security"].is_array(),
                "{method} {path} has no authorizer"
            );
        }
    }
}

#[test]
fn the_organisation_claim_is_set_by_administrators_only_and_the_roles_are_groups() {
    use anpr_core::Role;
    use anpr_core::access::{GROUPS_CLAIM, ORG_CLAIM};
    let t = load_template(&template_path()).expect("template");
    let pool = resource(&t, "UserPool").expect("user pool");
    let attr = ORG_CLAIM
        .strip_prefix("custom:")
        .expect("a custom attribute");
    let schema = pool["Properties"]["Schema"].as_array().expect("schema");
    assert!(
        schema.iter().any(|a| a["Name"] == attr),
        "{ORG_CLAIM} is not declared"
    );
    assert_eq!(
        pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"],
        true
    );
    let client = resource(&t, "UserPoolClient").expect("client");
    let writable = client["Properties"]["WriteAttributes"]
        .as_array()
        .expect("WriteAttributes must be listed (absent: every attribute is writable)");
    assert!(
        !writable.iter().any(|a| a == ORG_CLAIM),
        "the app client may write {ORG_CLAIM}"
    );
    let readable = client["Properties"]["ReadAttributes"]
        .as_array()
        .expect("read");
    assert!(readable.iter().any(|a| a == ORG_CLAIM));
    assert_eq!(GROUPS_CLAIM, "cognito:groups");
    let mut groups: Vec<String> = resources(&t, "AWS::Cognito::UserPoolGroup")
        .into_iter()
        .filter_map(|(_, g)| text(&g["Properties"]["GroupName"]))
        .collect();
    groups.sort();
    let mut roles: Vec<String> = [Role::Viewer, Role::Operator, Role::Admin]
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    roles.sort();
    assert_eq!(groups, roles);
}

#[test]
fn cfn_lint_passes() {
    if let Err(e) = cfn_lint(&template_path()) {
        panic!("{e}");
    }
}

#[test]
fn cfn_lint_and_the_sam_transform_refuse_a_broken_template() {
    // The checks above can fail: a template with an unknown event type and a dangling !Ref.
    let dir = tempdir();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(template_path())
        .expect("template")
        .replacen("Type: HttpApi\n", "Type: HttpApiX\n", 1)
        .replacen("!Ref MediaRetentionDays", "!Ref NoSuchParameter", 1);
    std::fs::write(&bad, text).expect("write");
    // Refused by the tool itself: a missing tool (`TemplateError::Tool`) is a failure here.
    let lint = cfn_lint(&bad);
    assert!(
        matches!(
            lint,
            Err(anpr_infra_tests::TemplateError::ToolFailed { .. })
        ),
        "cfn-lint accepted a dangling !Ref (or did not run): {lint:?}"
    );
    let sam = sam_transform(&bad);
    assert!(
        matches!(sam, Err(anpr_infra_tests::TemplateError::ToolFailed { .. })),
        "SAM accepted an unknown event type (or did not run): {sam:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("anpr-infra-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The one statement of `role`'s inline policy that grants `dynamodb:UpdateItem`, and only it.
fn the_update_statement(t: &Value, role: &str) -> Value {
    let r = resource(t, role).unwrap_or_else(|| panic!("{role}"));
    let updates: Vec<&Value> = r["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s.to_string().contains("dynamodb:UpdateItem"))
        .collect();
    assert_eq!(updates.len(), 1, "{role}: one statement grants UpdateItem");
    assert_eq!(
        updates[0]["Action"], "dynamodb:UpdateItem",
        "{role}: and nothing else"
    );
    updates[0].clone()
}

#[test]
fn the_request_api_may_update_only_the_connection_change_time_of_camera_items() {
    let t = load_template(&template_path()).expect("template");
    let s = &the_update_statement(&t, "RequestApiRole");
    let c = &s["Condition"];
    let mut attrs: Vec<&str> = c["ForAllValues:StringEquals"]["dynamodb:Attributes"]
        .as_array()
        .expect("attribute list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    attrs.sort_unstable();
    assert_eq!(
        attrs,
        ["PK", "SK", anpr_aws::dynamo::CONNECTION_CHANGED_AT],
        "the code's attribute, nothing else"
    );
    assert_eq!(
        c["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        serde_json::json!(["CAM#*"])
    );
    assert!(
        !c["StringEqualsIfExists"]["dynamodb:ReturnValues"]
            .to_string()
            .contains("ALL_"),
        "no other attribute is returned"
    );
}

#[test]
fn file_status_may_update_camera_registry_items_only() {
    let t = load_template(&template_path()).expect("template");
    let s = the_update_statement(&t, "FileStatusRole");
    assert_eq!(
        s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        serde_json::json!(["CAM#*"]),
        "presence is written on camera items (CAM#…) only"
    );
}
