//! The SAM template (`infra/template.yaml`) as the contract tests read it, and the checks they
//! share: loading the YAML with CloudFormation's short tags, resolving `!Sub` strings, listing
//! every IAM/IoT policy statement, matching policy resources against concrete ARNs, and running
//! the offline tools (cfn-lint, the real SAM transform) from the project's venv.
//!
//! The template is turned into the JSON form CloudFormation itself uses (`!Ref X` becomes
//! `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` becomes
//! `{"Fn::Sub": "s"}`…), so the same helpers read the source template and the output of the SAM
//! transform.
//!
//! # Layout
//! - this module: the template loaded ([`load_template`]), its resources and texts, policy
//!   [`statements`] and [`glob`] matching, the rules' events ([`rule_event`]), the permissions
//!   report ([`iam_report`]), and the offline tools ([`cfn_lint`], [`sam_transform`]).
//! - `src/bin/iam-report.rs`: the `iam-report` binary, the permissions report `docs/infra.md`
//!   holds.
//! - `tests/template_matches_code.rs`: the template names what the code names.
//! - `tests/least_privilege.rs`: no wildcard grants, before and after the SAM transform; the
//!   linters pass.
//! - `tests/deploy_parameters.rs`: the stack's parameters and `samconfig.toml`.
//! - `tests/docs_match_template.rs`: `docs/infra.md` says what the template deploys.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the template or a tool's output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML.
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// YAML that has no CloudFormation meaning (a non-scalar key, an unknown tag…).
    #[error("{0}")]
    Shape(String),
    /// A tool (cfn-lint, python) is missing or could not be started.
    #[error("cannot run {tool}: {source} (run scripts/setup)")]
    Tool {
        /// The executable.
        tool: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and refused the template.
    #[error("{tool} failed ({status}):\n{output}")]
    ToolFailed {
        /// The executable.
        tool: PathBuf,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A tool's output was not the JSON expected.
    #[error("{tool} printed invalid JSON: {source}")]
    Json {
        /// The executable.
        tool: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `infra/template.yaml`.
pub fn template_path() -> PathBuf {
    repo_root().join("infra").join("template.yaml")
}

/// The venv that `scripts/setup` fills (cfn-lint, aws-sam-translator); `ANPR_VENV` overrides.
pub fn venv() -> PathBuf {
    std::env::var_os("ANPR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local").join("venv"))
}

/// Reads a CloudFormation YAML template into its JSON form.
pub fn load_template(path: &Path) -> Result<Value, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_template(&text).map_err(|e| match e {
        TemplateError::Yaml { source, .. } => TemplateError::Yaml {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

/// Parses CloudFormation YAML text (short tags allowed) into its JSON form.
pub fn parse_template(text: &str) -> Result<Value, TemplateError> {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|source| TemplateError::Yaml {
            path: PathBuf::from("<text>"),
            source,
        })?;
    to_json(yaml)
}

fn to_json(v: serde_yaml::Value) -> Result<Value, TemplateError> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n)
            .map_err(|e| TemplateError::Shape(format!("number {n}: {e}")))?,
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(TemplateError::Shape(format!("unsupported key {other:?}")));
                    }
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(t.value)?;
            let (key, inner) = match name {
                "Ref" => ("Ref".to_owned(), inner),
                "Condition" => ("Condition".to_owned(), inner),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (res, attr) = s.split_once('.').ok_or_else(|| {
                                TemplateError::Shape(format!("!GetAtt {s}: no attribute"))
                            })?;
                            Value::Array(vec![res.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), parts)
                }
                "Sub" | "Join" | "If" | "Equals" | "Not" | "And" | "Or" | "Select" | "Split"
                | "FindInMap" | "GetAZs" | "ImportValue" | "Base64" | "Cidr" | "Length"
                | "ToJsonString" => (format!("Fn::{name}"), inner),
                other => return Err(TemplateError::Shape(format!("unknown tag !{other}"))),
            };
            Value::Object(Map::from_iter([(key, inner)]))
        }
    })
}

/// The template's resources of one type, as `(logical id, resource)`, in template order.
pub fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
                .map(|(k, r)| (k.as_str(), r))
                .collect()
        })
        .unwrap_or_default()
}

/// One resource by logical id.
pub fn resource<'a>(template: &'a Value, id: &str) -> Option<&'a Value> {
    template.get("Resources")?.get(id)
}

/// A property of a resource, by path (`["TopicRulePayload", "Sql"]`).
pub fn prop<'a>(resource: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(resource.get("Properties")?, |v, k| v.get(*k))
}

/// The text of a string, or of a `Fn::Sub` (string or `[string, vars]` form) with `${!x}`
/// unescaped to the literal `${x}` that AWS sees. Other intrinsics give `None`.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => match m.get("Fn::Sub")? {
            Value::String(s) => Some(s.replace("${!", "${")),
            Value::Array(a) => a.first()?.as_str().map(|s| s.replace("${!", "${")),
            _ => None,
        },
        _ => None,
    }
}

/// A string or list of strings/intrinsics as texts (see [`text`]); intrinsics without text
/// are rendered as their JSON, so they can still be reported.
pub fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| text(x).unwrap_or_else(|| x.to_string()))
            .collect(),
        Some(x) => vec![text(x).unwrap_or_else(|| x.to_string())],
    }
}

/// Fills `${name}` placeholders of a resolved [`text`].
pub fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(text.to_owned(), |t, (k, v)| {
        t.replace(&format!("${{{k}}}"), v)
    })
}

/// IAM/IoT glob match: `*` matches any run of characters, `?` any one; case-sensitive.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One statement of a policy in the template.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Who gets it: `LogicalId` of the role/policy resource, plus the inline policy's name.
    pub principal: String,
    /// The resource type that carries it.
    pub carrier: String,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// Actions (`Action`), or `NotAction:`-prefixed entries.
    pub actions: Vec<String>,
    /// Resources as texts (see [`text`]), or `NotResource:`-prefixed entries.
    pub resources: Vec<String>,
    /// Whether the statement has a `Condition`.
    pub conditional: bool,
}

impl Statement {
    /// Whether it grants (`Allow`).
    pub fn allows(&self) -> bool {
        self.effect == "Allow"
    }

    /// Actions that are wildcards: containing `*` or `?`, or any `NotAction` (which allows all
    /// but the listed ones).
    pub fn wildcard_actions(&self) -> Vec<&str> {
        self.actions
            .iter()
            .filter(|a| a.contains('*') || a.contains('?') || a.starts_with("NotAction:"))
            .map(String::as_str)
            .collect()
    }

    /// Whether the statement allows `action` on `resource` (a concrete ARN), with policy
    /// variables filled from `vars`. Conditions are ignored (callers check them separately).
    pub fn grants(&self, action: &str, resource: &str, vars: &[(&str, &str)]) -> bool {
        self.allows() && self.covers(action, resource, vars)
    }

    /// Whether the statement, whatever its effect, names `action` on `resource`: an action and
    /// a resource match (IAM globs, actions case-insensitive), after `vars` are filled in; a
    /// resource with a variable left unfilled matches nothing.
    pub fn covers(&self, action: &str, resource: &str, vars: &[(&str, &str)]) -> bool {
        self.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && self.resources.iter().any(|r| {
                let r = fill(r, vars);
                !r.contains("${") && glob(&r, resource)
            })
    }
}

fn push_document(out: &mut Vec<Statement>, principal: String, carrier: &str, doc: &Value) {
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    for st in statements {
        let mut actions = texts(st.get("Action"));
        actions.extend(
            texts(st.get("NotAction"))
                .into_iter()
                .map(|a| format!("NotAction:{a}")),
        );
        let mut resources = texts(st.get("Resource"));
        resources.extend(
            texts(st.get("NotResource"))
                .into_iter()
                .map(|r| format!("NotResource:{r}")),
        );
        out.push(Statement {
            principal: principal.clone(),
            carrier: carrier.to_owned(),
            effect: st
                .get("Effect")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            actions,
            resources,
            conditional: st.get("Condition").is_some(),
        });
    }
}

/// The statements of one policy document (an IoT policy a custom authorizer returns, say),
/// attributed to `principal`.
pub fn document_statements(principal: &str, doc: &Value) -> Vec<Statement> {
    let mut out = Vec::new();
    push_document(&mut out, principal.to_owned(), "policy document", doc);
    out
}

/// IAM's decision for `action` on `resource` under `statements`: an explicit Deny that covers
/// it wins, else an Allow that covers it allows, else denied (IAM's default). A statement with
/// a `Condition` is never taken to match, so the answer errs on the side of deny for an Allow
/// (and a conditional Deny is not relied on).
pub fn allowed(
    statements: &[Statement],
    action: &str,
    resource: &str,
    vars: &[(&str, &str)],
) -> bool {
    let covering = || {
        statements
            .iter()
            .filter(|s| !s.conditional && s.covers(action, resource, vars))
    };
    if covering().any(|s| s.effect == "Deny") {
        return false;
    }
    covering().any(Statement::allows)
}

/// Every permission statement of the template: inline role policies, IAM policies, IoT
/// policies, bucket and queue policies, and the `Policies` of SAM functions. SAM policy
/// templates (`{DynamoDBCrudPolicy: …}`) and managed policy names cannot be read here: they
/// are reported as a statement whose only action is `opaque:<name>` so a check can refuse them.
/// Trust policies (`AssumeRolePolicyDocument`) are not permissions and are left out.
pub fn statements(template: &Value) -> Vec<Statement> {
    let mut out = Vec::new();
    let Some(all) = template.get("Resources").and_then(Value::as_object) else {
        return out;
    };
    for (id, r) in all {
        let kind = r.get("Type").and_then(Value::as_str).unwrap_or("");
        let props = r.get("Properties").cloned().unwrap_or(Value::Null);
        match kind {
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                for p in props
                    .get("Policies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = p.get("PolicyName").and_then(text).unwrap_or_default();
                    if let Some(doc) = p.get("PolicyDocument") {
                        push_document(&mut out, format!("{id}/{name}"), kind, doc);
                    }
                }
            }
            "AWS::IAM::Policy"
            | "AWS::IAM::ManagedPolicy"
            | "AWS::IAM::RolePolicy"
            | "AWS::IoT::Policy"
            | "AWS::S3::BucketPolicy"
            | "AWS::SQS::QueuePolicy" => {
                if let Some(doc) = props.get("PolicyDocument") {
                    push_document(&mut out, id.clone(), kind, doc);
                }
            }
            "AWS::Serverless::Function" => {
                let policies = match props.get("Policies") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(v) => vec![v.clone()],
                    None => Vec::new(),
                };
                for (i, p) in policies.iter().enumerate() {
                    if p.get("Statement").is_some() {
                        push_document(&mut out, format!("{id}/Policies[{i}]"), kind, p);
                    } else {
                        let name = match p {
                            Value::String(s) => s.clone(),
                            Value::Object(m) => m.keys().cloned().collect::<Vec<_>>().join(","),
                            other => other.to_string(),
                        };
                        out.push(Statement {
                            principal: format!("{id}/Policies[{i}]"),
                            carrier: kind.to_owned(),
                            effect: "Allow".into(),
                            actions: vec![format!("opaque:{name}")],
                            resources: vec!["*".into()],
                            conditional: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Managed policy ARNs attached to roles: `(role logical id, ARN text)`.
pub fn managed_policies(template: &Value) -> Vec<(String, String)> {
    resources(template, "AWS::IAM::Role")
        .into_iter()
        .flat_map(|(id, r)| {
            texts(prop(r, &["ManagedPolicyArns"]))
                .into_iter()
                .map(move |arn| (id.to_owned(), arn))
        })
        .collect()
}

/// Every permission the template grants, per principal, as the Markdown table `docs/infra.md`
/// holds (call it on the SAM transform, so the roles and permissions SAM generates are in it):
/// policy statements, managed policies, and who may invoke which function.
pub fn iam_report(template: &Value) -> String {
    let mut out = String::from(
        "| principal (policy) | kind | effect | actions | resources |\n|---|---|---|---|---|\n",
    );
    for s in statements(template) {
        out.push_str(&format!(
            "| {} | {} | {}{} | {} | {} |\n",
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
        ));
    }
    for (role, arn) in managed_policies(template) {
        out.push_str(&format!(
            "| {role} | managed policy | Allow | (see AWS) | `{arn}` |\n"
        ));
    }
    for (id, p) in resources(template, "AWS::Lambda::Permission") {
        let one = |k: &str| texts(prop(p, &[k])).join(" ");
        out.push_str(&format!(
            "| {} (`{id}`) | AWS::Lambda::Permission | Allow | {} | function `{}`, source `{}` |\n",
            one("Principal"),
            one("Action"),
            one("FunctionName"),
            one("SourceArn"),
        ));
    }
    out
}

/// Allow statements with a wildcard action (see [`Statement::wildcard_actions`]), as
/// `principal: actions` lines. A `Deny` with a wildcard narrows access and is not reported.
pub fn wildcard_grants(statements: &[Statement]) -> Vec<String> {
    statements
        .iter()
        .filter(|s| s.allows())
        .filter_map(|s| {
            let w = s.wildcard_actions();
            (!w.is_empty()).then(|| format!("{}: {}", s.principal, w.join(", ")))
        })
        .collect()
}

/// The event an AWS IoT rule with `sql` sends its action for a message published on `topic`
/// (for Basic Ingest: the topic without `$aws/rules/{rule}/`), or `None` when the rule's
/// `FROM` filter does not match the topic.
///
/// A small evaluator of the subset of IoT SQL the template uses: `SELECT` items `*` (the JSON
/// payload's fields), `topic()`, `topic(n)` and `encode(*, 'base64')`, each `AS name` except
/// `*`; `FROM '<filter>'` with `+`/`#`; no `WHERE`. Anything else is an error, so a rule the
/// evaluator cannot read fails the tests instead of passing them.
pub fn rule_event(sql: &str, topic: &str, payload: &[u8]) -> Result<Option<Value>, TemplateError> {
    let bad = |why: &str| TemplateError::Shape(format!("IoT SQL {sql:?}: {why}"));
    let rest = sql
        .trim()
        .strip_prefix("SELECT ")
        .ok_or_else(|| bad("no SELECT"))?;
    let (select, from) = rest.rsplit_once(" FROM ").ok_or_else(|| bad("no FROM"))?;
    let filter = from
        .trim()
        .strip_prefix('\'')
        .and_then(|f| f.strip_suffix('\''))
        .ok_or_else(|| bad("FROM is not one quoted topic filter (WHERE is not supported)"))?;
    if !mqtt_match(filter, topic) {
        return Ok(None);
    }
    let levels: Vec<&str> = topic.split('/').collect();
    let mut out = Map::new();
    // Items, split on the commas outside parentheses.
    let (mut depth, mut start, mut items) = (0i32, 0usize, Vec::new());
    for (i, c) in select.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&select[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&select[start..]);
    for item in items.iter().map(|i| i.trim()) {
        if item == "*" {
            let json: Value = serde_json::from_slice(payload)
                .map_err(|e| bad(&format!("SELECT * of a non-JSON payload: {e}")))?;
            let Value::Object(fields) = json else {
                return Err(bad("SELECT * of a payload that is not a JSON object"));
            };
            out.extend(fields);
            continue;
        }
        // A bare field of the JSON payload, selected under its own name.
        if !item.is_empty() && item.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let json: Value = serde_json::from_slice(payload)
                .map_err(|e| bad(&format!("SELECT {item} of a non-JSON payload: {e}")))?;
            if let Some(v) = json.get(item) {
                out.insert(item.to_owned(), v.clone());
            }
            continue;
        }
        let (expr, name) = item
            .rsplit_once(" AS ")
            .ok_or_else(|| bad(&format!("{item}: no AS name")))?;
        let value = match expr.trim() {
            "topic()" => Value::from(topic),
            "encode(*, 'base64')" => {
                use base64::Engine as _;
                Value::from(base64::engine::general_purpose::STANDARD.encode(payload))
            }
            e => {
                let n: usize = e
                    .strip_prefix("topic(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| bad(&format!("unsupported expression {e}")))?;
                levels
                    .get(n.wrapping_sub(1))
                    .map(|l| Value::from(*l))
                    .unwrap_or(Value::Null)
            }
        };
        out.insert(name.trim().to_owned(), value);
    }
    Ok(Some(Value::Object(out)))
}

/// MQTT filter match (`+` one level, `#` the rest).
pub fn mqtt_match(filter: &str, topic: &str) -> bool {
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn run(tool: &Path, args: &[&Path]) -> Result<String, TemplateError> {
    let out = Command::new(tool)
        .args(args)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .map_err(|source| TemplateError::Tool {
            tool: tool.to_owned(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(TemplateError::ToolFailed {
            tool: tool.to_owned(),
            status: out.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(stdout)
}

/// Runs `cfn-lint` (from the venv) on a template; `Ok` when it reports nothing.
pub fn cfn_lint(path: &Path) -> Result<(), TemplateError> {
    run(&venv().join("bin").join("cfn-lint"), &[path]).map(|_| ())
}

/// Runs the real SAM transform (aws-sam-translator, through `sam_transform.py`) offline and
/// returns the CloudFormation template that would be deployed.
pub fn sam_transform(path: &Path) -> Result<Value, TemplateError> {
    let python = venv().join("bin").join("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sam_transform.py");
    let out = run(&python, &[&script, path])?;
    serde_json::from_str(&out).map_err(|source| TemplateError::Json {
        tool: python,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tags_become_the_json_intrinsics() {
        let t = parse_template(
            "a: !Ref X\nb: !GetAtt Res.Arn\nc: !Sub 'x/${!iot:ThingName}'\nd: !If [C, 1, 2]\n",
        )
        .unwrap();
        assert_eq!(t["a"], serde_json::json!({"Ref": "X"}));
        assert_eq!(t["b"], serde_json::json!({"Fn::GetAtt": ["Res", "Arn"]}));
        assert_eq!(text(&t["c"]).unwrap(), "x/${iot:ThingName}");
        assert_eq!(t["d"], serde_json::json!({"Fn::If": ["C", 1, 2]}));
    }

    #[test]
    fn an_unknown_tag_is_an_error_not_a_silent_string() {
        assert!(parse_template("a: !Bogus X\n").is_err());
    }

    #[test]
    fn the_rule_evaluator_builds_the_event_and_refuses_what_it_cannot_read() {
        let ev = rule_event(
            "SELECT *, topic(1) AS camera_id, topic() AS t FROM '+/file/status'",
            "cam-1/file/status",
            br#"{"v":1,"s":"accepted"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            ev,
            serde_json::json!({"v": 1, "s": "accepted", "camera_id": "cam-1", "t": "cam-1/file/status"})
        );
        let ev = rule_event(
            "SELECT encode(*, 'base64') AS p FROM '+/plates'",
            "c/plates",
            b"hi",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ev, serde_json::json!({"p": "aGk="}));
        assert!(
            rule_event("SELECT * FROM '+/plates'", "c/health", b"{}")
                .unwrap()
                .is_none()
        );
        assert!(rule_event("SELECT upper(x) AS y FROM '#'", "a", b"{}").is_err());
        assert!(rule_event("SELECT * FROM '#' WHERE x = 1", "a", b"{}").is_err());
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("topic/*/file/request", "topic/cam-1/file/request"));
        assert!(!glob("topic/*/file/request", "topic/cam-1/file/status"));
        assert!(glob("media/cam-1/*", "media/cam-1/r/a.mp4"));
        assert!(!glob("media/cam-1/*", "media/cam-2/r/a.mp4"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    }

    const WILD: &str = r#"
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [s3:GetObject, 's3:Put*']
                Resource: '*'
  B:
    Type: AWS::S3::BucketPolicy
    Properties:
      PolicyDocument:
        Statement:
          - Effect: Deny
            Action: 's3:*'
            Resource: '*'
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - DynamoDBCrudPolicy: {TableName: t}
        - Statement:
            - Effect: Allow
              NotAction: iam:*
              Resource: '*'
"#;

    #[test]
    fn wildcard_allows_are_found_and_wildcard_denies_are_not() {
        let t = parse_template(WILD).unwrap();
        let found = wildcard_grants(&statements(&t));
        assert!(
            found.iter().any(|f| f.starts_with("R/p: s3:Put*")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.contains("NotAction:iam:*")),
            "{found:?}"
        );
        assert!(!found.iter().any(|f| f.starts_with("B")), "{found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn sam_policy_templates_are_reported_as_opaque() {
        let t = parse_template(WILD).unwrap();
        let s = statements(&t);
        assert!(
            s.iter().any(|s| s.actions == ["opaque:DynamoDBCrudPolicy"]),
            "{s:?}"
        );
    }

    #[test]
    fn a_statement_grants_only_what_it_names() {
        let t = parse_template(WILD).unwrap();
        let s = statements(&t);
        let r = s.iter().find(|s| s.principal == "R/p").unwrap();
        assert!(r.grants("s3:GetObject", "arn:aws:s3:::b/k", &[]));
        assert!(!r.grants("s3:DeleteObject", "arn:aws:s3:::b/k", &[]));
    }
}
