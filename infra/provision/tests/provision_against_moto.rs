//! Provisioning against moto's IoT control plane and DynamoDB (started by scripts/test): the
//! thing, certificate, attachments and registry entry exist afterwards, and the config file
//! written is one the camera agent accepts.

use anpr_aws::DynamoCameraRegistry;
use anpr_core::ports::CameraRegistry;
use anpr_protocol::CameraId;
use anpr_provision::{CERT_FILE, DevicePaths, KEY_FILE, ProvisionError, Request, provision};
use anpr_test_support::moto;
use std::path::Path;

const POLICY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"}]}"#;

struct Env {
    iot: aws_sdk_iot::Client,
    registry: DynamoCameraRegistry,
    table: String,
    policy: String,
}

async fn env() -> Env {
    let sdk = moto::sdk_config();
    let iot = aws_sdk_iot::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let table = moto::fresh_table(&dynamo).await;
    let policy = anpr_test_support::unique("camera-policy");
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(POLICY_DOC)
        .send()
        .await
        .expect("create policy in moto");
    Env {
        iot,
        registry: DynamoCameraRegistry::new(dynamo, &table),
        table,
        policy,
    }
}

fn request(env: &Env, camera: &CameraId, root: &Path) -> Request {
    Request {
        camera_id: camera.clone(),
        name: Some("Gate 3".into()),
        org: anpr_core::OrgId::parse("acme").expect("org"),
        policy: env.policy.clone(),
        role_alias: "anpr-camera-upload".into(),
        table: env.table.clone(),
        bucket: "anpr-media-123456789012-us-east-1".into(),
        region: "us-east-1".into(),
        rule_prefix: "anpr".into(),
        data_endpoint: None,
        credentials_endpoint: None,
        device: DevicePaths {
            config_dir: root.join("out"),
            media_dir: root.join("media"),
            state_dir: root.join("state"),
        },
        out_dir: root.join("out"),
    }
}

fn camera() -> CameraId {
    CameraId::parse(&anpr_test_support::unique("cam")).expect("valid camera id")
}

async fn thing_principals(iot: &aws_sdk_iot::Client, thing: &str) -> Vec<String> {
    iot.list_thing_principals()
        .thing_name(thing)
        .send()
        .await
        .map(|o| o.principals.unwrap_or_default())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_provisioned_camera_has_a_thing_an_attached_certificate_a_registry_entry_and_a_config() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let req = request(&env, &cam, dir.path());

    let done = provision(&env.iot, &env.registry, &req)
        .await
        .expect("provisioned");

    // The thing holds the certificate, and the certificate carries the camera policy.
    assert_eq!(
        thing_principals(&env.iot, cam.as_str()).await,
        vec![done.certificate_arn.clone()]
    );
    let attached = env
        .iot
        .list_attached_policies()
        .target(&done.certificate_arn)
        .send()
        .await
        .expect("list policies")
        .policies
        .unwrap_or_default();
    assert_eq!(
        attached
            .iter()
            .filter_map(|p| p.policy_name.as_deref())
            .collect::<Vec<_>>(),
        vec![env.policy.as_str()]
    );
    // The certificate written is the one AWS holds, and it is active.
    let described = env
        .iot
        .describe_certificate()
        .certificate_id(&done.certificate_id)
        .send()
        .await
        .expect("describe certificate")
        .certificate_description
        .expect("description");
    let pem = std::fs::read_to_string(req.out_dir.join(CERT_FILE)).expect("cert file");
    assert_eq!(described.certificate_pem.as_deref(), Some(pem.as_str()));
    assert_eq!(
        described.status.map(|s| s.as_str().to_owned()).as_deref(),
        Some("ACTIVE")
    );
    let key = std::fs::read_to_string(req.out_dir.join(KEY_FILE)).expect("key file");
    assert!(key.contains("PRIVATE KEY"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(req.out_dir.join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key readable by others");
    }

    // The request API finds the camera.
    let registered = env
        .registry
        .get_camera(&cam)
        .await
        .expect("lookup")
        .expect("registered");
    assert_eq!(registered.name.as_deref(), Some("Gate 3"));
    assert_eq!(registered.org.as_ref().map(|o| o.as_str()), Some("acme"));
    assert!(registered.registered_at > 0);

    // The camera agent accepts the config as written, and it points at the files written.
    let config =
        anpr_camera::config::Config::load(&done.config_path).expect("camera accepts the config");
    assert_eq!(config.camera_id, cam);
    assert_eq!(
        std::fs::read_to_string(&config.mqtt.cert_file).expect("cert path"),
        pem
    );
    assert_eq!(
        std::fs::read_to_string(&config.mqtt.key_file).expect("key path"),
        key
    );
    assert!(
        config.mqtt.host.ends_with(".amazonaws.com") && config.mqtt.host.contains("-ats.iot."),
        "{}",
        config.mqtt.host
    );
    assert!(
        config.credentials.host.contains(".credentials.iot."),
        "{}",
        config.credentials.host
    );
    assert_eq!(config.credentials.role_alias, "anpr-camera-upload");
    assert_eq!(config.upload.bucket, req.bucket);
    assert_eq!(config.upload.region, "us-east-1");
    assert_eq!(config.mqtt.port, 8883);
    assert_eq!(
        config.plate_topic(),
        format!("$aws/rules/anpr_plate_reads/{cam}/plates")
    );
}

#[tokio::test]
async fn a_camera_of_a_second_stack_publishes_plate_reads_to_that_stacks_rule() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let mut req = request(&env, &cam, dir.path());
    req.rule_prefix = "fleet_2".into();
    let done = provision(&env.iot, &env.registry, &req)
        .await
        .expect("provisioned");
    let config =
        anpr_camera::config::Config::load(&done.config_path).expect("camera accepts the config");
    assert_eq!(
        config.plate_topic(),
        format!("$aws/rules/fleet_2_plate_reads/{cam}/plates")
    );
}

#[tokio::test]
async fn a_rule_prefix_outside_the_rule_name_alphabet_is_refused_before_anything_is_created() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let mut req = request(&env, &cam, dir.path());
    req.rule_prefix = "fleet-2".into();
    let err = provision(&env.iot, &env.registry, &req)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("letters, digits and _"), "{err}");
    assert!(
        env.iot
            .describe_thing()
            .thing_name(cam.as_str())
            .send()
            .await
            .is_err(),
        "thing created"
    );
    assert!(!req.out_dir.join(KEY_FILE).exists());
}

#[tokio::test]
async fn a_non_empty_output_directory_is_refused_before_anything_is_created() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let req = request(&env, &cam, dir.path());
    std::fs::create_dir_all(&req.out_dir).expect("mkdir");
    std::fs::write(req.out_dir.join(KEY_FILE), "an earlier camera's key").expect("write");

    let err = provision(&env.iot, &env.registry, &req)
        .await
        .expect_err("refused");
    assert!(matches!(err, ProvisionError::OutputNotEmpty(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(req.out_dir.join(KEY_FILE)).expect("kept"),
        "an earlier camera's key"
    );
    assert!(
        env.iot
            .describe_thing()
            .thing_name(cam.as_str())
            .send()
            .await
            .is_err(),
        "thing created"
    );
    assert!(
        env.registry
            .get_camera(&cam)
            .await
            .expect("lookup")
            .is_none()
    );
}

#[tokio::test]
async fn a_missing_camera_policy_stops_provisioning_before_anything_is_created() {
    let mut env = env().await;
    env.policy = "no-such-policy".into();
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let req = request(&env, &cam, dir.path());

    let err = provision(&env.iot, &env.registry, &req)
        .await
        .expect_err("refused");
    assert!(matches!(err, ProvisionError::NoPolicy { .. }), "{err}");
    assert!(err.to_string().contains("no-such-policy"), "{err}");
    assert!(
        env.iot
            .describe_thing()
            .thing_name(cam.as_str())
            .send()
            .await
            .is_err(),
        "thing created"
    );
    assert!(!req.out_dir.join(KEY_FILE).exists());
}

#[tokio::test]
async fn re_provisioning_a_camera_adds_a_new_certificate_to_the_same_thing() {
    let env = env().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cam = camera();
    let first = provision(
        &env.iot,
        &env.registry,
        &request(&env, &cam, &dir.path().join("a")),
    )
    .await
    .expect("first");
    let second = provision(
        &env.iot,
        &env.registry,
        &request(&env, &cam, &dir.path().join("b")),
    )
    .await
    .expect("second");
    assert_ne!(first.certificate_arn, second.certificate_arn);
    let mut principals = thing_principals(&env.iot, cam.as_str()).await;
    principals.sort();
    let mut want = vec![first.certificate_arn, second.certificate_arn];
    want.sort();
    assert_eq!(principals, want);
}
