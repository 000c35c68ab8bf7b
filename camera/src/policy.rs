//! The IAM policy of the role the camera assumes through the IoT credentials provider. The rule
//! "a camera's uploads land under its own prefix only" is tested rather than assumed, by the
//! project's one policy evaluator (`anpr-infra-tests`: `infra/contract-tests/tests/camera_policy.rs`).
//!
//! The policy (`camera/policies/camera-s3-policy.json`, for the deployment template to use)
//! allows `s3:PutObject` (which also covers CreateMultipartUpload, UploadPart and
//! CompleteMultipartUpload), `s3:AbortMultipartUpload` and `s3:ListMultipartUploadParts` on
//! `arn:aws:s3:::${MediaBucket}/media/${credentials-iot:ThingName}/*` and nothing else.
//! `${MediaBucket}` is a template parameter (SAM `!Sub`); `${credentials-iot:ThingName}` is an
//! IAM policy variable AWS fills in from the `x-amzn-iot-thingname` header, which the
//! credentials provider only accepts for the thing the certificate is attached to.

/// The policy document, with `${MediaBucket}` and `${credentials-iot:ThingName}` unresolved.
pub const CAMERA_S3_POLICY: &str = include_str!("../policies/camera-s3-policy.json");

/// The policy document as JSON text (see the module docs).
pub fn camera_s3_policy_json() -> &'static str {
    CAMERA_S3_POLICY
}
