//! The IAM policy of the role the camera assumes through the IoT credentials provider, and a
//! small evaluator for it, so the rule "a camera's uploads land under its own prefix only" is
//! tested rather than assumed.
//!
//! The policy (`camera/policies/camera-s3-policy.json`, for the deployment template to use)
//! allows `s3:PutObject` (which also covers CreateMultipartUpload, UploadPart and
//! CompleteMultipartUpload), `s3:AbortMultipartUpload` and `s3:ListMultipartUploadParts` on
//! `arn:aws:s3:::${MediaBucket}/media/${credentials-iot:ThingName}/*` and nothing else.
//! `${MediaBucket}` is a template parameter (SAM `!Sub`); `${credentials-iot:ThingName}` is an
//! IAM policy variable AWS fills in from the `x-amzn-iot-thingname` header, which the
//! credentials provider only accepts for the thing the certificate is attached to.

use serde_json::Value;

/// The policy document, with `${MediaBucket}` and `${credentials-iot:ThingName}` unresolved.
pub const CAMERA_S3_POLICY: &str = include_str!("../policies/camera-s3-policy.json");

/// The policy document as JSON text (see the module docs).
pub fn camera_s3_policy_json() -> &'static str {
    CAMERA_S3_POLICY
}

/// Whether `policy` allows `action` on `resource`, with `vars` substituted for `${name}`:
/// an explicit Deny wins, else any matching Allow allows, else denied (IAM's default). Handles
/// `Action`/`Resource` as string or list, and `*`/`?` wildcards; conditions are not supported
/// (a statement with a `Condition` never matches, so the evaluator errs on the side of deny).
pub fn allows(policy: &str, action: &str, resource: &str, vars: &[(&str, &str)]) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let stmts: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return false,
    };
    let list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let subst = |s: &str| {
        let mut out = s.to_owned();
        for (k, v) in vars {
            out = out.replace(&format!("${{{k}}}"), v);
        }
        out
    };
    let mut allowed = false;
    for st in stmts {
        if st.get("Condition").is_some() {
            continue;
        }
        let acts = list(st.get("Action"));
        let ress = list(st.get("Resource"));
        let hit = acts
            .iter()
            .any(|a| wildcard(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && ress.iter().any(|r| {
                let r = subst(r);
                // An unresolved variable never matches.
                !r.contains("${") && wildcard(&r, resource)
            });
        if hit {
            match st.get("Effect").and_then(Value::as_str) {
                Some("Deny") => return false,
                Some("Allow") => allowed = true,
                _ => {}
            }
        }
    }
    allowed
}

/// IAM-style match: `*` any run of characters (including `/`), `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anpr_protocol::{CameraId, FileName, RequestId, topics};

    fn can_put(thing: &str, key: &str) -> bool {
        allows(
            CAMERA_S3_POLICY,
            "s3:PutObject",
            &format!("arn:aws:s3:::media-bucket/{key}"),
            &[
                ("credentials-iot:ThingName", thing),
                ("MediaBucket", "media-bucket"),
            ],
        )
    }

    #[test]
    fn a_camera_may_upload_under_its_own_prefix_only() {
        let key = topics::upload_key(
            &CameraId::parse("cam-a").unwrap(),
            &RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2R").unwrap(),
            &FileName::parse("clips/a.mp4").unwrap(),
        );
        assert!(can_put("cam-a", &key));
        assert!(!can_put("cam-b", &key), "another camera's prefix");
        assert!(
            !can_put("cam-a", "media/cam-ab/r/x.mp4"),
            "a prefix of a longer id"
        );
        assert!(!can_put("cam-a", "media/cam-a"), "the prefix itself");
        assert!(!can_put("cam-a", "other/cam-a/r/x"), "outside media/");
        assert!(!allows(
            CAMERA_S3_POLICY,
            "s3:PutObject",
            "arn:aws:s3:::another-bucket/media/cam-a/r/x",
            &[
                ("credentials-iot:ThingName", "cam-a"),
                ("MediaBucket", "media-bucket")
            ],
        ));
    }

    #[test]
    fn a_camera_may_not_read_list_or_delete_anything() {
        let vars = [("credentials-iot:ThingName", "cam-a"), ("MediaBucket", "b")];
        for action in [
            "s3:GetObject",
            "s3:DeleteObject",
            "s3:ListBucket",
            "s3:*",
            "iam:PassRole",
        ] {
            assert!(
                !allows(
                    CAMERA_S3_POLICY,
                    action,
                    "arn:aws:s3:::b/media/cam-a/r/x",
                    &vars
                ),
                "{action}"
            );
        }
        assert!(allows(
            CAMERA_S3_POLICY,
            "s3:AbortMultipartUpload",
            "arn:aws:s3:::b/media/cam-a/r/x",
            &vars
        ));
    }

    #[test]
    fn without_the_thing_name_nothing_is_allowed() {
        assert!(!allows(
            CAMERA_S3_POLICY,
            "s3:PutObject",
            "arn:aws:s3:::b/media/${credentials-iot:ThingName}/r/x",
            &[("MediaBucket", "b")],
        ));
    }

    #[test]
    fn the_evaluator_honours_deny_and_wildcards() {
        let p = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
                   {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#;
        assert!(allows(p, "s3:GetObject", "arn:aws:s3:::b/x/y", &[]));
        assert!(!allows(p, "s3:DeleteObject", "arn:aws:s3:::b/x", &[]));
        assert!(!allows(p, "s3:GetObject", "arn:aws:s3:::c/x", &[]));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("a?c", "ac"));
    }
}
