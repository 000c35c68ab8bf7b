//! The IAM policy of the camera's role (`camera/policies/camera-s3-policy.json`), evaluated by
//! the project's one policy evaluator ([`anpr_infra_tests::allowed`]): a camera's uploads land
//! under its own prefix only, and it may do nothing else.

use anpr_camera::policy::CAMERA_S3_POLICY;
use anpr_infra_tests::{Statement, allowed, document_statements, glob};
use anpr_protocol::{CameraId, FileName, RequestId, topics};

fn camera_policy() -> Vec<Statement> {
    let doc = serde_json::from_str(CAMERA_S3_POLICY).expect("the camera policy is JSON");
    document_statements("camera", &doc)
}

fn can(action: &str, resource: &str, vars: &[(&str, &str)]) -> bool {
    allowed(&camera_policy(), action, resource, vars)
}

fn can_put(thing: &str, key: &str) -> bool {
    can(
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
    assert!(!can(
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
            !can(action, "arn:aws:s3:::b/media/cam-a/r/x", &vars),
            "{action}"
        );
    }
    assert!(can(
        "s3:AbortMultipartUpload",
        "arn:aws:s3:::b/media/cam-a/r/x",
        &vars
    ));
}

#[test]
fn without_the_thing_name_nothing_is_allowed() {
    assert!(!can(
        "s3:PutObject",
        "arn:aws:s3:::b/media/${credentials-iot:ThingName}/r/x",
        &[("MediaBucket", "b")],
    ));
}

#[test]
fn the_evaluator_honours_deny_conditions_and_wildcards() {
    let doc = serde_json::json!({"Statement":[
        {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
        {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"},
        {"Effect":"Allow","Action":"s3:PutBucketPolicy","Resource":"*",
         "Condition":{"Bool":{"aws:SecureTransport":"true"}}}
    ]});
    let p = document_statements("test", &doc);
    assert!(allowed(&p, "s3:GetObject", "arn:aws:s3:::b/x/y", &[]));
    assert!(
        allowed(&p, "S3:GetObject", "arn:aws:s3:::b/x/y", &[]),
        "actions ignore case"
    );
    assert!(!allowed(&p, "s3:DeleteObject", "arn:aws:s3:::b/x", &[]));
    assert!(!allowed(&p, "s3:GetObject", "arn:aws:s3:::c/x", &[]));
    assert!(
        !allowed(&p, "s3:PutBucketPolicy", "arn:aws:s3:::c", &[]),
        "a conditional Allow is not relied on"
    );
    assert!(glob("a?c*", "abcdef"));
    assert!(!glob("a?c", "ac"));
}
