//! `anpr-stack teardown` against moto's IoT control plane and S3 (started by scripts/test): a
//! policy attached to camera certificates cannot be deleted before, can after; certificates,
//! things and the bucket go only when asked, and nothing of another policy is touched.

use anpr_provision::stack::{Teardown, teardown};
use anpr_test_support::{moto, unique};

const POLICY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

struct Camera {
    thing: String,
    cert_arn: String,
    cert_id: String,
}

async fn policy(iot: &aws_sdk_iot::Client) -> String {
    let name = unique("policy");
    iot.create_policy()
        .policy_name(&name)
        .policy_document(POLICY_DOC)
        .send()
        .await
        .expect("create policy");
    name
}

/// A thing with an active certificate carrying `policy`, as provision-camera leaves it.
async fn camera(iot: &aws_sdk_iot::Client, policy: &str) -> Camera {
    let thing = unique("cam");
    iot.create_thing()
        .thing_name(&thing)
        .send()
        .await
        .expect("create thing");
    let cert = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .expect("create certificate");
    let (cert_arn, cert_id) = (
        cert.certificate_arn.expect("arn"),
        cert.certificate_id.expect("id"),
    );
    iot.attach_policy()
        .policy_name(policy)
        .target(&cert_arn)
        .send()
        .await
        .expect("attach policy");
    iot.attach_thing_principal()
        .thing_name(&thing)
        .principal(&cert_arn)
        .send()
        .await
        .expect("attach thing");
    Camera {
        thing,
        cert_arn,
        cert_id,
    }
}

async fn targets(iot: &aws_sdk_iot::Client, policy: &str) -> Vec<String> {
    iot.list_targets_for_policy()
        .policy_name(policy)
        .send()
        .await
        .expect("list targets")
        .targets
        .unwrap_or_default()
}

async fn bucket_with(s3: &aws_sdk_s3::Client, objects: usize) -> String {
    let bucket = unique("media").to_ascii_lowercase().replace('_', "-");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    for i in 0..objects {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("media/cam-1/req/{i}.jpg"))
            .body(b"jpeg".to_vec().into())
            .send()
            .await
            .expect("put object");
    }
    bucket
}

async fn object_count(s3: &aws_sdk_s3::Client, bucket: &str) -> usize {
    s3.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list objects")
        .key_count
        .unwrap_or_default() as usize
}

#[tokio::test]
async fn detaching_the_policies_lets_them_be_deleted_and_leaves_cameras_and_media_alone() {
    let sdk = moto::sdk_config();
    let iot = aws_sdk_iot::Client::new(&sdk);
    let s3 = moto::clients().s3;
    let stack_policy = policy(&iot).await;
    let other_policy = policy(&iot).await;
    let a = camera(&iot, &stack_policy).await;
    let b = camera(&iot, &stack_policy).await;
    let bystander = camera(&iot, &other_policy).await;
    let bucket = bucket_with(&s3, 3).await;

    // What `sam delete` runs into: an attached policy cannot be deleted.
    assert!(
        iot.delete_policy()
            .policy_name(&stack_policy)
            .send()
            .await
            .is_err(),
        "moto deleted an attached policy: the test proves nothing"
    );

    let report = teardown(
        &iot,
        &s3,
        &Teardown {
            policies: vec![stack_policy.clone()],
            ..Teardown::default()
        },
    )
    .await
    .expect("teardown");
    let mut detached: Vec<_> = report.detached.iter().map(|(_, t)| t.clone()).collect();
    detached.sort();
    let mut want = vec![a.cert_arn.clone(), b.cert_arn.clone()];
    want.sort();
    assert_eq!(detached, want);
    assert!(targets(&iot, &stack_policy).await.is_empty());
    iot.delete_policy()
        .policy_name(&stack_policy)
        .send()
        .await
        .expect("a detached policy can be deleted");

    // Not asked to: certificates, things and media stay; another policy is untouched.
    for cam in [&a, &b] {
        let d = iot
            .describe_certificate()
            .certificate_id(&cam.cert_id)
            .send()
            .await
            .expect("certificate kept")
            .certificate_description
            .expect("description");
        assert_eq!(
            d.status.map(|s| s.as_str().to_owned()).as_deref(),
            Some("ACTIVE")
        );
        iot.describe_thing()
            .thing_name(&cam.thing)
            .send()
            .await
            .expect("thing kept");
    }
    assert_eq!(targets(&iot, &other_policy).await, vec![bystander.cert_arn]);
    assert_eq!(object_count(&s3, &bucket).await, 3);
    assert!(report.certificates_deleted.is_empty() && report.things_deleted.is_empty());
}

#[tokio::test]
async fn asked_to_it_deletes_the_cameras_certificates_and_things_and_empties_and_deletes_the_bucket()
 {
    let sdk = moto::sdk_config();
    let iot = aws_sdk_iot::Client::new(&sdk);
    let s3 = moto::clients().s3;
    let stack_policy = policy(&iot).await;
    let other_policy = policy(&iot).await;
    let gone = camera(&iot, &stack_policy).await;
    // A thing that also holds a certificate of another stack keeps that one and stays.
    let shared = camera(&iot, &stack_policy).await;
    let other_cert = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .expect("create certificate")
        .certificate_arn
        .expect("arn");
    iot.attach_policy()
        .policy_name(&other_policy)
        .target(&other_cert)
        .send()
        .await
        .expect("attach");
    iot.attach_thing_principal()
        .thing_name(&shared.thing)
        .principal(&other_cert)
        .send()
        .await
        .expect("attach thing");
    // More objects than one listing page (1000) holds.
    let bucket = bucket_with(&s3, 1003).await;

    let report = teardown(
        &iot,
        &s3,
        &Teardown {
            policies: vec![stack_policy.clone()],
            delete_certificates: true,
            empty_bucket: Some(bucket.clone()),
            delete_bucket: true,
        },
    )
    .await
    .expect("teardown");

    for cam in [&gone, &shared] {
        assert!(
            iot.describe_certificate()
                .certificate_id(&cam.cert_id)
                .send()
                .await
                .is_err(),
            "certificate {} kept",
            cam.cert_id
        );
    }
    assert!(
        iot.describe_thing()
            .thing_name(&gone.thing)
            .send()
            .await
            .is_err(),
        "thing kept"
    );
    let left = iot
        .list_thing_principals()
        .thing_name(&shared.thing)
        .send()
        .await
        .expect("shared thing kept")
        .principals
        .unwrap_or_default();
    assert_eq!(left, vec![other_cert.clone()]);
    assert_eq!(targets(&iot, &other_policy).await, vec![other_cert]);
    assert_eq!(report.things_deleted, vec![gone.thing.clone()]);
    assert_eq!(report.certificates_deleted.len(), 2);
    assert_eq!(report.objects_deleted, 1003);
    assert!(report.bucket_deleted);
    assert!(
        s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket kept"
    );
    iot.delete_policy()
        .policy_name(&stack_policy)
        .send()
        .await
        .expect("a detached policy can be deleted");
}

#[tokio::test]
async fn the_endpoint_deploy_params_looks_up_is_an_ats_data_endpoint_url_the_template_accepts() {
    let iot = aws_sdk_iot::Client::new(&moto::sdk_config());
    let url = anpr_provision::stack::data_endpoint_url(&iot)
        .await
        .expect("looked up");
    // moto makes up a new host on each call: the shape is what can be checked, the pattern of
    // the template's IotDataEndpoint parameter (^https://[a-z0-9.-]+$) and an ATS data host.
    let host = url.strip_prefix("https://").expect("an https URL");
    assert!(
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
        "{url}"
    );
    assert!(host.contains("-ats.iot."), "{host}");
}
