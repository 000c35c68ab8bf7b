//! The SAM template names what the code names: topics and rule SQL (`anpr_protocol::topics`),
//! the media key prefix, environment variables (`anpr_aws::config`), table keys, index and TTL
//! (`anpr_aws::schema`), the camera's S3 policy (`camera/policies`), the API routes
//! (`request_api::app`) and the function binaries (the workspace's `[[bin]]`s).

use anpr_aws::{config, schema};
use anpr_infra_tests::{
    Statement, fill, load_template, prop, repo_root, resource, resources, rule_event, statements,
    template_path, text, texts,
};
use anpr_protocol::{CameraId, FileName, RequestId, topics};
use serde_json::Value;

const VARS: &[(&str, &str)] = &[
    ("AWS::Partition", "aws"),
    ("AWS::Region", "us-east-1"),
    ("AWS::AccountId", "123456789012"),
    ("AppName", "anpr"),
    ("RulePrefix", "anpr"),
    // The `${Bucket}` of the `!Sub [..., {Bucket: !If ...}]` that name the media bucket: its
    // default branch (tests/deploy_parameters.rs checks every one is the bucket's own name).
    ("Bucket", BUCKET),
];
const BUCKET: &str = "anpr-media-123456789012-us-east-1";

fn template() -> Value {
    load_template(&template_path()).expect("infra/template.yaml parses")
}

fn cam(id: &str) -> CameraId {
    CameraId::parse(id).expect("valid camera id")
}

fn req_id() -> RequestId {
    RequestId::parse("01JD5Z3X9M0000000000000000").expect("valid request id")
}

fn iot_arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iot:us-east-1:123456789012:{kind}/{name}")
}

fn with_vars<'a>(extra: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    VARS.iter().chain(extra).copied().collect()
}

fn policy_of<'a>(all: &'a [Statement], principal_prefix: &str) -> Vec<&'a Statement> {
    let found: Vec<_> = all
        .iter()
        .filter(|s| s.principal.starts_with(principal_prefix))
        .collect();
    assert!(
        !found.is_empty(),
        "no policy statements for {principal_prefix}"
    );
    found
}

fn grants(policy: &[&Statement], action: &str, arn: &str, vars: &[(&str, &str)]) -> bool {
    policy.iter().any(|s| s.grants(action, arn, vars))
}

fn rule<'a>(t: &'a Value, name: &str) -> &'a Value {
    resources(t, "AWS::IoT::TopicRule")
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| {
            prop(r, &["RuleName"])
                .and_then(text)
                .is_some_and(|n| fill(&n, VARS) == name)
        })
        .unwrap_or_else(|| panic!("no IoT rule named {name}"))
}

fn function_for_rule<'a>(t: &'a Value, rule: &Value) -> &'a str {
    let actions = prop(rule, &["TopicRulePayload", "Actions"]).expect("rule has actions");
    let arn = &actions[0]["Lambda"]["FunctionArn"]["Fn::GetAtt"][0];
    let id = arn
        .as_str()
        .expect("rule invokes a function of the template");
    assert!(resource(t, id).is_some());
    resources(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| *k == id)
        .expect("function exists")
}

fn sql(rule: &Value) -> String {
    text(prop(rule, &["TopicRulePayload", "Sql"]).expect("rule has SQL")).expect("SQL text")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        repo_root()
            .join("functions/protocol/tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

#[test]
fn a_camera_status_through_the_template_rule_is_an_event_file_status_accepts() {
    let t = template();
    let r = rule(&t, topics::STATUS_RULE);
    assert_eq!(function_for_rule(&t, r), "FileStatusFunction");
    assert!(
        prop(r, &["TopicRulePayload", "ErrorAction"]).is_some(),
        "no error action"
    );
    let me = cam("cam-1");
    let payload = fixture("file_status_accepted.json");
    let event = rule_event(&sql(r), &topics::file_status(&me), &payload)
        .expect("rule SQL readable")
        .expect("the rule matches the status topic");
    let (camera, status) =
        file_status::parse_event(&event).expect("file-status accepts the rule's event");
    assert_eq!(camera, me);
    assert_eq!(
        status,
        anpr_protocol::decode::<anpr_protocol::FileStatus>(&payload).expect("fixture")
    );
    // The rule's own stand-in (local stack, tests) builds the same event.
    assert_eq!(
        event,
        file_status::rule_event(&topics::file_status(&me), &payload)
    );
    // A message naming another camera in the rule's field names: the rule passes it opaque,
    // so the topic's camera it stays.
    let forged = br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"accepted","camera_id":"cam-2","mqtt_topic":"cam-2/file/status"}"#;
    let event = rule_event(&sql(r), &topics::file_status(&me), forged)
        .expect("rule SQL readable")
        .expect("the rule matches the status topic");
    let (camera, _) = file_status::parse_event(&event).expect("a status of cam-1");
    assert_eq!(camera, me);
    // Other camera topics do not reach it.
    for other in [
        topics::health(&me),
        topics::presence(&me),
        topics::plate_reads(&me),
    ] {
        assert!(
            rule_event(&sql(r), &other, b"{}")
                .expect("readable")
                .is_none(),
            "{other}"
        );
    }
}

#[test]
fn a_camera_sync_through_the_template_rule_is_an_event_file_status_answers() {
    let t = template();
    let r = rule(&t, topics::SYNC_RULE);
    assert_eq!(function_for_rule(&t, r), "FileStatusFunction");
    assert!(
        prop(r, &["TopicRulePayload", "ErrorAction"]).is_some(),
        "no error action"
    );
    let me = cam("cam-1");
    let event = rule_event(&sql(r), &topics::file_sync(&me), &fixture("file_sync.json"))
        .expect("rule SQL readable")
        .expect("the rule matches the sync topic");
    let camera = file_status::parse_sync_event(&event)
        .expect("file-status sees a sync")
        .expect("file-status accepts the rule's event");
    assert_eq!(camera, me);
    // A payload cannot name another camera: the rule takes only the topic.
    let spoof = rule_event(
        &sql(r),
        &topics::file_sync(&me),
        br#"{"v":1,"camera_id":"cam-2","mqtt_topic":"cam-2/file/sync"}"#,
    )
    .expect("readable")
    .expect("matches");
    assert_eq!(file_status::parse_sync_event(&spoof).unwrap().unwrap(), me);
    for other in [topics::file_status(&me), topics::health(&me)] {
        assert!(
            rule_event(&sql(r), &other, b"{}")
                .expect("readable")
                .is_none(),
            "{other}"
        );
    }
}

#[test]
fn a_lifecycle_event_through_the_template_rule_is_a_presence_file_status_records() {
    let t = template();
    let r = rule(&t, topics::PRESENCE_RULE);
    assert_eq!(function_for_rule(&t, r), "FileStatusFunction");
    assert!(
        prop(r, &["TopicRulePayload", "ErrorAction"]).is_some(),
        "no error action"
    );
    // A disconnect event as AWS IoT documents it (life-cycle-events.html).
    let payload = br#"{
        "clientId": "cam-1",
        "timestamp": 1573002340451,
        "eventType": "disconnected",
        "sessionIdentifier": "00000000-0000-0000-0000-000000000000",
        "principalIdentifier": "12345678901234567890123456789012",
        "clientInitiatedDisconnect": true,
        "disconnectReason": "CLIENT_INITIATED_DISCONNECT",
        "versionNumber": 2
    }"#;
    let topic = topics::presence_event(false, "cam-1");
    let event = rule_event(&sql(r), &topic, payload)
        .expect("rule SQL readable")
        .expect("the rule matches the lifecycle topic");
    assert!(file_status::is_lifecycle(&event));
    let (camera, presence) = file_status::parse_lifecycle_event(&event).expect("a presence");
    assert_eq!(camera, cam("cam-1"));
    assert_eq!(
        (presence.online, presence.at_ms, presence.version),
        (false, 1_573_002_340_451, 2)
    );
    // The stand-ins (the local broker's events) build the same event.
    assert_eq!(
        event,
        file_status::lifecycle_event("cam-1", false, 1_573_002_340_451, 2)
    );
    assert!(
        rule_event(&sql(r), &topics::presence(&cam("cam-1")), b"{}")
            .expect("readable")
            .is_none()
    );
    // file-status may record it and tell the organisation.
    let all = statements(&t);
    let p = policy_of(&all, "FileStatusRole");
    let vars = with_vars(&[]);
    assert!(grants(
        &p,
        "iot:Publish",
        &iot_arn("topic", &topics::org_notifications("acme")),
        &vars
    ));
}

#[test]
fn the_expiry_schedule_invokes_file_status_with_the_sweep_event_every_minute() {
    let t = template();
    let rules = resources(&t, "AWS::Events::Rule");
    assert_eq!(rules.len(), 1);
    let (id, r) = rules[0];
    assert_eq!(
        prop(r, &["ScheduleExpression"]).and_then(Value::as_str),
        Some("rate(1 minute)")
    );
    let target = &prop(r, &["Targets"])
        .and_then(Value::as_array)
        .expect("targets")[0];
    assert_eq!(
        target["Arn"]["Fn::GetAtt"][0].as_str(),
        Some("FileStatusFunction")
    );
    let input: Value =
        serde_json::from_str(target["Input"].as_str().expect("fixed input")).expect("JSON");
    assert!(file_status::is_sweep(&input), "{input}");
    let perm = resources(&t, "AWS::Lambda::Permission")
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| prop(p, &["SourceArn", "Fn::GetAtt"]).and_then(|v| v[0].as_str()) == Some(id))
        .expect("EventBridge may invoke file-status");
    assert_eq!(
        prop(perm, &["Principal"]).and_then(Value::as_str),
        Some("events.amazonaws.com")
    );
    // Its role may query the open-requests index.
    let all = statements(&t);
    let role = policy_of(&all, "FileStatusRole");
    assert!(role.iter().any(|s| {
        s.actions.iter().any(|a| a == "dynamodb:Query")
            && s.resources
                .iter()
                .any(|r| r == &format!("${{Table.Arn}}/index/{}", schema::GSI2))
    }));
}

/// The logical id a `!GetAtt X.Arn` / `!Ref X` names.
fn target(v: &Value, intrinsic: &str) -> Option<String> {
    match &v[intrinsic] {
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
        Value::String(s) => Some(s.split('.').next().unwrap_or(s).to_owned()),
        _ => None,
    }
}

#[test]
fn a_plate_batch_through_the_basic_ingest_rule_is_a_queue_message_plate_ingest_accepts() {
    let t = template();
    let r = rule(&t, topics::PLATE_RULE);
    assert!(
        prop(r, &["TopicRulePayload", "ErrorAction"]).is_some(),
        "no error action"
    );
    // The rule's only action: the plate-reads queue, the rule's JSON as the message body.
    let actions = prop(r, &["TopicRulePayload", "Actions"])
        .and_then(Value::as_array)
        .expect("rule has actions");
    assert_eq!(actions.len(), 1, "one action: {actions:?}");
    let sqs = &actions[0]["Sqs"];
    assert_eq!(
        target(&sqs["QueueUrl"], "Ref").as_deref(),
        Some("PlateReadsQueue")
    );
    assert_eq!(
        sqs["UseBase64"],
        Value::Bool(false),
        "the body must be the JSON event"
    );
    assert_eq!(
        target(&sqs["RoleArn"], "Fn::GetAtt").as_deref(),
        Some("PlateReadsRuleRole")
    );
    // The queue feeds plate-ingest.
    let mappings = resources(&t, "AWS::Lambda::EventSourceMapping");
    let m = mappings
        .iter()
        .map(|(_, m)| *m)
        .find(|m| {
            prop(m, &["EventSourceArn"])
                .and_then(|v| target(v, "Fn::GetAtt"))
                .as_deref()
                == Some("PlateReadsQueue")
        })
        .expect("an event source mapping from the plate-reads queue");
    assert_eq!(
        prop(m, &["FunctionName"])
            .and_then(|v| target(v, "Ref"))
            .as_deref(),
        Some("PlateIngestFunction")
    );

    let me = cam("cam-1");
    // The camera publishes to Basic Ingest; the rule sees the topic without its prefix.
    let published = topics::plate_reads_basic_ingest(topics::PLATE_RULE, &me);
    let seen = published
        .strip_prefix(&format!("$aws/rules/{}/", topics::PLATE_RULE))
        .expect("Basic Ingest topic of this rule");
    let payload = fixture("plate_read_batch.json");
    let event = rule_event(&sql(r), seen, &payload)
        .expect("rule SQL readable")
        .expect("the rule matches the plates topic");
    // The SQS action sends the rule's JSON as the body; plate-ingest reads the body back.
    let message = plate_ingest::SqsMessage {
        message_id: "m1".into(),
        body: event.to_string(),
    };
    let body: Value = serde_json::from_str(&message.body).expect("body is JSON");
    let now_ms = 1_764_086_402_000;
    let (camera, _) = plate_ingest::prepare_event(&body, now_ms, &Default::default())
        .expect("plate-ingest accepts the rule's message");
    assert_eq!(camera, me);
    assert!(
        rule_event(&sql(r), &topics::health(&me), b"{}")
            .expect("readable")
            .is_none()
    );
}

#[test]
fn the_plate_reads_queue_buffers_with_capped_consumers_partial_failures_and_an_alarmed_dead_letter_queue()
 {
    let t = template();
    let queue = resource(&t, "PlateReadsQueue").expect("plate-reads queue");
    let redrive = prop(queue, &["RedrivePolicy"]).expect("redrive policy");
    assert_eq!(
        target(&redrive["deadLetterTargetArn"], "Fn::GetAtt").as_deref(),
        Some("PlateReadsDeadLetterQueue")
    );
    let receives = redrive["maxReceiveCount"]
        .as_u64()
        .expect("maxReceiveCount");
    assert!((2..=10).contains(&receives), "maxReceiveCount {receives}");
    let dlq = resource(&t, "PlateReadsDeadLetterQueue").expect("dead-letter queue");
    let retention = |q: &Value| {
        prop(q, &["MessageRetentionPeriod"])
            .and_then(Value::as_u64)
            .expect("retention")
    };
    assert!(
        retention(dlq) > retention(queue),
        "the dead-letter queue keeps messages longer than the queue"
    );

    let (_, m) = resources(&t, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .find(|(_, m)| {
            prop(m, &["EventSourceArn"])
                .and_then(|v| target(v, "Fn::GetAtt"))
                .as_deref()
                == Some("PlateReadsQueue")
        })
        .expect("mapping");
    assert_eq!(
        texts(prop(m, &["FunctionResponseTypes"])),
        ["ReportBatchItemFailures"]
    );
    let batch = prop(m, &["BatchSize"])
        .and_then(Value::as_u64)
        .expect("batch size");
    // The cap: a parameter whose largest value keeps one camera's shards under 1,000 write
    // units/s each, with every consumer writing that camera's reads at the store's pace.
    let cap = prop(m, &["ScalingConfig", "MaximumConcurrency"]).expect("MaximumConcurrency");
    let param = target(cap, "Ref").expect("MaximumConcurrency is a parameter");
    let max = t["Parameters"][&param]["MaxValue"]
        .as_u64()
        .expect("MaxValue");
    let per_env = anpr_aws::plates::BATCH_WRITE_MAX as f64
        / anpr_aws::plates::DEFAULT_MIN_CALL_INTERVAL.as_secs_f64();
    // Reads land on a shard by hash: binomial, n = the reads of one second, p = 1/shards;
    // the busiest shard stays below the mean plus three standard deviations.
    let n = max as f64 * per_env;
    let p = 1.0 / f64::from(anpr_aws::plates::READ_SHARDS);
    let per_partition = n * p + 3.0 * (n * p * (1.0 - p)).sqrt();
    assert!(
        per_partition < 1000.0,
        "{max} consumers × {per_env} reads/s over {} shards: up to {per_partition:.0} units/s per partition",
        anpr_aws::plates::READ_SHARDS
    );
    assert!(
        t["Parameters"][&param]["MinValue"]
            .as_u64()
            .is_some_and(|v| v >= 2)
    );

    // A batch fits in the function's time at the store's pace, and the queue hides a message
    // for at least six times that (AWS's advice for an SQS event source).
    let f = resource(&t, "PlateIngestFunction").expect("function");
    let timeout = prop(f, &["Timeout"])
        .or_else(|| t["Globals"]["Function"].get("Timeout"))
        .and_then(Value::as_u64)
        .expect("timeout");
    let visibility = prop(queue, &["VisibilityTimeout"])
        .and_then(Value::as_u64)
        .expect("visibility");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s, timeout {timeout} s"
    );
    let batch_secs = batch as f64 * 1139.0 / per_env;
    assert!(
        batch_secs + plate_ingest::DEADLINE_RESERVE_MS as f64 / 1000.0 <= timeout as f64,
        "a batch of {batch} full messages takes {batch_secs} s"
    );
    assert!(
        prop(f, &["DeadLetterQueue"]).is_none(),
        "no async dead-letter queue: nothing invokes it asynchronously"
    );

    // The alarm: any visible message in the dead-letter queue.
    let (_, alarm) = resources(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .find(|(_, a)| {
            prop(a, &["Dimensions"])
                .and_then(Value::as_array)
                .is_some_and(|d| {
                    d.iter().any(|d| {
                        target(&d["Value"], "Fn::GetAtt").as_deref()
                            == Some("PlateReadsDeadLetterQueue")
                    })
                })
        })
        .expect("an alarm on the dead-letter queue");
    assert_eq!(
        prop(alarm, &["Namespace"]).and_then(Value::as_str),
        Some("AWS/SQS")
    );
    assert_eq!(
        prop(alarm, &["MetricName"]).and_then(Value::as_str),
        Some("ApproximateNumberOfMessagesVisible")
    );
    assert_eq!(
        prop(alarm, &["ComparisonOperator"]).and_then(Value::as_str),
        Some("GreaterThanThreshold")
    );
    assert_eq!(
        prop(alarm, &["Threshold"]).and_then(Value::as_f64),
        Some(0.0)
    );
    assert_eq!(
        prop(alarm, &["Dimensions"]).expect("dims")[0]["Name"],
        "QueueName"
    );
    // Someone is told: the alarm and its recovery go to the stack's SNS topic, which an
    // e-mail subscription (AlarmEmail) or the operator's own reaches.
    let (topic_id, _) = resources(&t, "AWS::SNS::Topic")
        .into_iter()
        .next()
        .expect("an alarm topic");
    for actions in ["AlarmActions", "OKActions"] {
        let refs: Vec<_> = prop(alarm, &[actions])
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("the alarm has no {actions}"))
            .iter()
            .map(|a| a["Ref"].as_str())
            .collect();
        assert_eq!(refs, [Some(topic_id)], "{actions}");
    }
    let (_, sub) = resources(&t, "AWS::SNS::Subscription")
        .into_iter()
        .next()
        .expect("an e-mail subscription");
    assert_eq!(
        prop(sub, &["TopicArn", "Ref"]).and_then(Value::as_str),
        Some(topic_id)
    );
    assert_eq!(
        prop(sub, &["Endpoint", "Ref"]).and_then(Value::as_str),
        Some("AlarmEmail")
    );
}

#[test]
fn only_the_plate_rule_sends_to_the_plate_queue_and_only_plate_ingest_consumes_it() {
    let t = template();
    let all = statements(&t);
    let on = |s: &Statement, id: &str| {
        s.resources
            .iter()
            .any(|r| r.contains(&format!("\"{id}\"")) || r.contains(&format!("${{{id}")))
    };
    let queues = ["PlateReadsQueue", "PlateReadsDeadLetterQueue"];
    let mut sqs_grants: Vec<(String, String, String)> = Vec::new();
    for s in all.iter().filter(|s| s.allows()) {
        for a in s
            .actions
            .iter()
            .filter(|a| a.to_ascii_lowercase().starts_with("sqs:"))
        {
            for q in queues.iter().filter(|q| on(s, q)) {
                sqs_grants.push((s.principal.clone(), a.clone(), (*q).to_owned()));
            }
        }
    }
    sqs_grants.sort();
    let want = |p: &str, a: &str| (p.to_owned(), a.to_owned(), "PlateReadsQueue".to_owned());
    let rule_role = sqs_grants
        .iter()
        .find(|g| g.0.starts_with("PlateReadsRuleRole"))
        .map(|g| g.0.clone())
        .expect("the rule role may send");
    let ingest_role = sqs_grants
        .iter()
        .find(|g| g.0.starts_with("PlateIngestRole"))
        .map(|g| g.0.clone())
        .expect("plate-ingest may consume");
    let mut expected = vec![
        want(&ingest_role, "sqs:DeleteMessage"),
        want(&ingest_role, "sqs:GetQueueAttributes"),
        want(&ingest_role, "sqs:ReceiveMessage"),
        want(&rule_role, "sqs:SendMessage"),
    ];
    expected.sort();
    assert_eq!(sqs_grants, expected, "who may do what on the plate queues");
    // The rule role grants nothing else.
    for s in all
        .iter()
        .filter(|s| s.principal.starts_with("PlateReadsRuleRole"))
    {
        assert_eq!(s.actions, ["sqs:SendMessage"], "{}", s.principal);
        assert!(
            s.resources
                .iter()
                .all(|r| r.contains("\"PlateReadsQueue\"")),
            "{:?}",
            s.resources
        );
    }
    // plate-ingest sends nowhere.
    assert!(
        !all.iter()
            .filter(|s| s.principal.starts_with("PlateIngestRole"))
            .any(|s| s.actions.iter().any(|a| a == "sqs:SendMessage")),
        "plate-ingest needs no SendMessage"
    );
}

#[test]
fn iot_may_invoke_each_rule_function_and_only_from_its_rule() {
    let t = template();
    let perms = resources(&t, "AWS::Lambda::Permission");
    for (rule_id, function) in [
        ("FileStatusRule", "FileStatusFunction"),
        ("FileSyncRule", "FileStatusFunction"),
    ] {
        let p = perms
            .iter()
            .map(|(_, p)| *p)
            .find(|p| {
                prop(p, &["FunctionName", "Fn::GetAtt"]).and_then(|v| v[0].as_str())
                    == Some(function)
                    && prop(p, &["SourceArn", "Fn::GetAtt"]).and_then(|v| v[0].as_str())
                        == Some(rule_id)
            })
            .unwrap_or_else(|| panic!("no invoke permission for {function}"));
        assert_eq!(
            prop(p, &["Principal"]).and_then(Value::as_str),
            Some("iot.amazonaws.com")
        );
        assert_eq!(
            prop(p, &["SourceArn", "Fn::GetAtt"]).and_then(|v| v[0].as_str()),
            Some(rule_id)
        );
        assert!(prop(p, &["SourceAccount"]).is_some());
    }
    // plate-ingest is invoked by its queue's event source mapping only.
    assert!(
        !perms.iter().any(|(_, p)| {
            prop(p, &["FunctionName", "Fn::GetAtt"]).and_then(|v| v[0].as_str())
                == Some("PlateIngestFunction")
        }),
        "nothing may invoke plate-ingest directly"
    );
}

#[test]
fn a_camera_may_publish_and_receive_its_own_topics_only() {
    let t = template();
    let all = statements(&t);
    let policy = policy_of(&all, "CameraPolicy");
    let me = cam("cam-1");
    let other = cam("cam-2");
    let vars = with_vars(&[("iot:Connection.Thing.ThingName", "cam-1")]);
    let publish = [
        topics::file_status(&me),
        topics::file_sync(&me),
        topics::health(&me),
        topics::presence(&me),
        topics::plate_reads_basic_ingest(topics::PLATE_RULE, &me),
        format!("{}/update", topics::shadow(&me, topics::CONFIG_SHADOW)),
        format!("{}/get", topics::shadow(&me, topics::CONFIG_SHADOW)),
    ];
    for topic in &publish {
        assert!(
            grants(&policy, "iot:Publish", &iot_arn("topic", topic), &vars),
            "publish {topic}"
        );
    }
    assert!(grants(
        &policy,
        "iot:RetainPublish",
        &iot_arn("topic", &topics::presence(&me)),
        &vars
    ));
    let request = topics::file_request(&me);
    assert!(grants(
        &policy,
        "iot:Subscribe",
        &iot_arn("topicfilter", &request),
        &vars
    ));
    assert!(grants(
        &policy,
        "iot:Receive",
        &iot_arn("topic", &request),
        &vars
    ));
    let delta = format!(
        "{}/update/delta",
        topics::shadow(&me, topics::CONFIG_SHADOW)
    );
    assert!(grants(
        &policy,
        "iot:Subscribe",
        &iot_arn("topicfilter", &delta),
        &vars
    ));
    assert!(grants(
        &policy,
        "iot:Receive",
        &iot_arn("topic", &delta),
        &vars
    ));
    assert!(grants(
        &policy,
        "iot:Connect",
        &iot_arn("client", "cam-1"),
        &vars
    ));

    // Nothing of another camera, and not the cloud's own topics.
    let theirs = [
        topics::file_status(&other),
        topics::file_request(&other),
        topics::plate_reads_basic_ingest(topics::PLATE_RULE, &other),
        format!("{}/update", topics::shadow(&other, topics::CONFIG_SHADOW)),
        topics::org_notifications("someone"),
    ];
    for topic in &theirs {
        for (action, kind) in [
            ("iot:Publish", "topic"),
            ("iot:Receive", "topic"),
            ("iot:Subscribe", "topicfilter"),
        ] {
            assert!(
                !grants(&policy, action, &iot_arn(kind, topic), &vars),
                "{action} {topic}"
            );
        }
    }
    assert!(!grants(
        &policy,
        "iot:Connect",
        &iot_arn("client", "cam-2"),
        &vars
    ));
    // A camera publishing to its own request topic would forge cloud requests.
    assert!(!grants(
        &policy,
        "iot:Publish",
        &iot_arn("topic", &request),
        &vars
    ));
}

#[test]
fn a_camera_connects_only_as_the_thing_its_certificate_is_attached_to() {
    let t = template();
    let all = statements(&t);
    let connect: Vec<_> = policy_of(&all, "CameraPolicy")
        .into_iter()
        .filter(|s| s.actions.iter().any(|a| a == "iot:Connect"))
        .collect();
    assert_eq!(connect.len(), 1);
    assert!(
        connect[0].conditional,
        "iot:Connection.Thing.IsAttached condition missing"
    );
    assert_eq!(
        connect[0].resources,
        [
            "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:client/${iot:Connection.Thing.ThingName}"
        ]
    );
}

#[test]
fn a_camera_uploads_under_its_own_media_prefix_only() {
    let t = template();
    let all = statements(&t);
    let role = policy_of(&all, "CameraUploadRole");
    let vars = with_vars(&[("credentials-iot:ThingName", "cam-1")]);
    let req = req_id();
    let file = FileName::parse("2026/clip.mp4").expect("valid file name");
    let mine = format!(
        "arn:aws:s3:::{BUCKET}/{}",
        topics::upload_key(&cam("cam-1"), &req, &file)
    );
    let theirs = format!(
        "arn:aws:s3:::{BUCKET}/{}",
        topics::upload_key(&cam("cam-2"), &req, &file)
    );
    for action in [
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ] {
        assert!(grants(&role, action, &mine, &vars), "{action} on own key");
        assert!(
            !grants(&role, action, &theirs, &vars),
            "{action} on another camera's key"
        );
    }
    assert!(!grants(&role, "s3:GetObject", &mine, &vars));
    assert!(!grants(&role, "s3:DeleteObject", &mine, &vars));
}

#[test]
fn the_camera_upload_role_has_exactly_the_camera_crates_policy() {
    let t = template();
    let all = statements(&t);
    let role = policy_of(&all, "CameraUploadRole");
    let path = repo_root().join("camera/policies/camera-s3-policy.json");
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("policy file"))
        .expect("policy JSON");
    let theirs = theirs["Statement"].as_array().expect("statements");
    assert_eq!(role.len(), theirs.len());
    for (mine, theirs) in role.iter().zip(theirs) {
        assert_eq!(mine.effect, theirs["Effect"]);
        assert_eq!(mine.actions, texts(theirs.get("Action")));
        let mine_res: Vec<_> = mine.resources.iter().map(|r| fill(r, VARS)).collect();
        let theirs_res: Vec<_> = texts(theirs.get("Resource"))
            .iter()
            .map(|r| fill(r, &[("MediaBucket", BUCKET)]))
            .collect();
        assert_eq!(mine_res, theirs_res);
    }
}

#[test]
fn the_role_alias_is_what_the_camera_policy_lets_cameras_assume() {
    let t = template();
    let alias = resource(&t, "CameraRoleAlias").expect("role alias");
    assert_eq!(
        prop(alias, &["RoleArn", "Fn::GetAtt"]).and_then(|v| v[0].as_str()),
        Some("CameraUploadRole")
    );
    let trust = prop(
        resource(&t, "CameraUploadRole").expect("role"),
        &["AssumeRolePolicyDocument"],
    )
    .expect("trust policy");
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "credentials.iot.amazonaws.com"
    );
    let all = statements(&t);
    let assume: Vec<_> = policy_of(&all, "CameraPolicy")
        .into_iter()
        .filter(|s| {
            s.actions
                .iter()
                .any(|a| a == "iot:AssumeRoleWithCertificate")
        })
        .collect();
    assert_eq!(assume.len(), 1);
    let stmt = &t["Resources"]["CameraPolicy"]["Properties"]["PolicyDocument"]["Statement"];
    let res = stmt
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["Action"] == "iot:AssumeRoleWithCertificate")
        })
        .map(|s| &s["Resource"]["Fn::GetAtt"]);
    assert_eq!(
        res,
        Some(&serde_json::json!(["CameraRoleAlias", "RoleAliasArn"]))
    );
}

#[test]
fn functions_publish_only_to_the_topics_the_code_builds() {
    let t = template();
    let all = statements(&t);
    let vars = with_vars(&[]);
    let api = policy_of(&all, "RequestApiRole");
    let request = iot_arn("topic", &topics::file_request(&cam("cam-1")));
    assert!(grants(&api, "iot:Publish", &request, &vars));
    assert!(!grants(
        &api,
        "iot:Publish",
        &iot_arn("topic", &topics::file_status(&cam("cam-1"))),
        &vars
    ));
    assert!(!grants(
        &api,
        "iot:Publish",
        &iot_arn("topic", &topics::org_notifications("acme")),
        &vars
    ));
    for f in ["UploadCompletedRole", "FileStatusRole"] {
        let p = policy_of(&all, f);
        let web = iot_arn("topic", &topics::org_notifications("acme"));
        assert!(
            grants(&p, "iot:Publish", &web, &vars),
            "{f} cannot notify the web UI"
        );
        // file-status answers a camera's sync with its open requests; upload-completed never
        // talks to cameras.
        assert_eq!(
            grants(&p, "iot:Publish", &request, &vars),
            f == "FileStatusRole",
            "{f} and camera requests"
        );
        assert!(
            !grants(
                &p,
                "iot:Publish",
                &iot_arn("topic", &topics::file_status(&cam("cam-1"))),
                &vars
            ),
            "{f} may speak for a camera"
        );
    }
    // Configuration: the named shadow `config` of any camera, never a classic shadow or
    // another named one.
    let shadow = iot_arn("thing", &format!("cam-1/{}", topics::CONFIG_SHADOW));
    for action in ["iot:UpdateThingShadow", "iot:GetThingShadow"] {
        assert!(grants(&api, action, &shadow, &vars), "{action}");
        assert!(!grants(&api, action, &iot_arn("thing", "cam-1"), &vars));
        assert!(!grants(
            &api,
            action,
            &iot_arn("thing", "cam-1/other"),
            &vars
        ));
    }
    let ingest = policy_of(&all, "PlateIngestRole");
    assert!(
        !ingest
            .iter()
            .any(|s| s.actions.iter().any(|a| a.starts_with("iot:")))
    );
}

#[test]
fn the_web_authorizer_lets_a_user_receive_exactly_the_notifications_the_functions_publish_to_their_organisation()
 {
    use anpr_core::memory::{
        MemoryCameraRegistry, MemoryPublisher, MemoryRequestStore, MemoryUrlSigner,
    };
    use anpr_core::status::{StatusConfig, StatusUpdates};
    use anpr_infra_tests::document_statements;
    // Realistic ID-token claims in which no two ids coincide: the pool's `sub`, a user name,
    // an e-mail, the organisation; ada and bob in one organisation, gil in another.
    let claims = |sub: &str, user: &str, org: &str, role: &str| -> serde_json::Map<String, Value> {
        serde_json::from_value(serde_json::json!({
            "sub": sub,
            "cognito:username": user,
            "email": format!("{user}@example.com"),
            "custom:org": org,
            "cognito:groups": [role],
        }))
        .unwrap()
    };
    let caller = |sub: &str, user: &str, org: &str, role: &str| {
        anpr_core::access::Caller::from_json_claims(&claims(sub, user, org, role)).unwrap()
    };
    let ada = caller(
        "7d3e9a41-5c2b-4f8e-9d10-6a7b8c9d0e1f",
        "ada",
        "acme-logistics",
        "viewer",
    );
    let bob = caller(
        "c0ffee00-1111-4222-8333-944455566677",
        "bob",
        "acme-logistics",
        "operator",
    );
    let gil = caller(
        "0badf00d-2222-4333-8444-a55566677788",
        "gil",
        "globex-7",
        "admin",
    );

    // What the functions publish: bob asks acme's camera for a file, the request expires
    // (file-status's sweep notifies), and the camera connects (the presence rule notifies).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cameras = MemoryCameraRegistry::default();
    cameras.register(anpr_core::Camera {
        camera_id: cam("cam-7f3a"),
        name: None,
        registered_at: 1,
        org: Some(bob.org.clone()),
        presence: None,
    });
    let store = MemoryRequestStore::default();
    let publisher = MemoryPublisher::default();
    let published = rt.block_on(async {
        let requests = anpr_core::FileRequests::new(
            store.clone(),
            cameras.clone(),
            MemoryPublisher::default(),
            anpr_core::RequestsConfig::default(),
        );
        let (rec, _) = requests
            .create(
                &bob,
                "cam-7f3a",
                anpr_core::NewFileRequest {
                    file: "clips/a.mp4".into(),
                    note: None,
                    idempotency_key: None,
                },
                1_000,
            )
            .await
            .expect("created");
        let status = StatusUpdates::new(
            store.clone(),
            publisher.clone(),
            MemoryUrlSigner::default(),
            StatusConfig::default(),
        );
        assert_eq!(status.expire_due(rec.expires_at + 1, 10).await.unwrap(), 1);
        anpr_core::presence::Presences::new(cameras.clone(), publisher.clone())
            .apply(
                &cam("cam-7f3a"),
                anpr_core::model::CameraPresence {
                    online: true,
                    at_ms: 5,
                    version: 1,
                },
            )
            .await
            .expect("presence");
        publisher.sent()
    });
    let topics_published: std::collections::BTreeSet<String> =
        published.iter().map(|m| m.topic.clone()).collect();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(topics_published.len(), 1, "{topics_published:?}");
    let acme_topic = topics_published.first().unwrap().clone();

    let scope = web_authorizer::policy::Scope {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
    };
    let vars = with_vars(&[]);
    for (user, receives) in [(&ada, true), (&bob, true), (&gil, false)] {
        let p = document_statements(
            "WebAuthorizer",
            &web_authorizer::policy::document(user, &scope),
        );
        let p: Vec<&Statement> = p.iter().collect();
        assert_eq!(
            grants(
                &p,
                "iot:Subscribe",
                &iot_arn("topicfilter", &acme_topic),
                &vars
            ),
            receives,
            "{} and {acme_topic}",
            user.sub
        );
        assert_eq!(
            grants(&p, "iot:Receive", &iot_arn("topic", &acme_topic), &vars),
            receives,
            "{} and {acme_topic}",
            user.sub
        );
        let level = web_authorizer::policy::user_level(&user.sub);
        assert!(grants(
            &p,
            "iot:Connect",
            &iot_arn("client", &format!("web-{level}-k3j9")),
            &vars
        ));
        let own = topics::org_notifications(user.org.as_str());
        for (action, arn) in [
            (
                "iot:Subscribe",
                iot_arn("topicfilter", "web/org/+/notifications"),
            ),
            ("iot:Subscribe", iot_arn("topicfilter", "web/#")),
            ("iot:Subscribe", iot_arn("topicfilter", "#")),
            ("iot:Publish", iot_arn("topic", &own)),
            ("iot:Publish", iot_arn("topic", &acme_topic)),
            (
                "iot:Subscribe",
                iot_arn("topicfilter", &topics::file_request(&cam("cam-7f3a"))),
            ),
            (
                "iot:Subscribe",
                iot_arn("topicfilter", &topics::presence(&cam("cam-7f3a"))),
            ),
            (
                "iot:Subscribe",
                iot_arn("topicfilter", topics::PRESENCE_EVENTS_FILTER),
            ),
            (
                "iot:Connect",
                iot_arn(
                    "client",
                    &format!(
                        "web-{}-k3j9",
                        web_authorizer::policy::user_level(if user.sub == ada.sub {
                            &bob.sub
                        } else {
                            &ada.sub
                        })
                    ),
                ),
            ),
            ("iot:Connect", iot_arn("client", "cam-7f3a")),
        ] {
            assert!(
                !grants(&p, action, &arn, &vars),
                "{}: {action} {arn}",
                user.sub
            );
        }
    }
}

#[test]
fn the_web_authorizer_is_wired_to_the_user_pool_and_iot_may_invoke_it() {
    let t = template();
    let a = resource(&t, "WebAuthorizer").expect("WebAuthorizer");
    assert_eq!(a["Type"], "AWS::IoT::Authorizer");
    // The authorizer reads the token from the event's `token` (web_authorizer::token_of).
    assert_eq!(
        prop(a, &["TokenKeyName"]).and_then(Value::as_str),
        Some("token")
    );
    assert_eq!(prop(a, &["SigningDisabled"]), Some(&Value::Bool(true)));
    let f = resource(&t, "WebAuthorizerFunction").expect("function");
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"], "web-authorizer");
    let env = prop(f, &["Environment", "Variables"])
        .and_then(Value::as_object)
        .expect("environment");
    let main_rs =
        std::fs::read_to_string(repo_root().join("functions/web-authorizer/src/main.rs")).unwrap();
    for (name, _) in env {
        assert!(main_rs.contains(&format!("\"{name}\"")), "{name} unused");
    }
    for name in [
        "ANPR_USER_POOL_ISSUER",
        "ANPR_APP_CLIENT_ID",
        "ANPR_ACCOUNT_ID",
    ] {
        assert!(env.contains_key(name), "{name} not set");
    }
    assert_eq!(
        text(&env["ANPR_USER_POOL_ISSUER"]).as_deref(),
        Some("https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}")
    );
    let perm = resource(&t, "WebAuthorizerInvokePermission").expect("permission");
    assert_eq!(
        prop(perm, &["Principal"]).and_then(Value::as_str),
        Some("iot.amazonaws.com")
    );
    // No identity pool any more: the token is the one identity.
    assert!(resources(&t, "AWS::Cognito::IdentityPool").is_empty());
}

#[test]
fn the_media_prefix_is_the_one_cameras_upload_under() {
    let t = template();
    let prefix = format!("{}/", topics::MEDIA_PREFIX);
    let key = topics::upload_key(
        &cam("cam-1"),
        &req_id(),
        &FileName::parse("a.jpg").expect("valid"),
    );
    assert!(key.starts_with(&prefix));
    let f = resource(&t, "UploadCompletedFunction").expect("function");
    let rules = prop(
        f,
        &[
            "Events",
            "MediaUploaded",
            "Properties",
            "Filter",
            "S3Key",
            "Rules",
        ],
    )
    .and_then(Value::as_array)
    .expect("S3 key filter");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["Name"], "prefix");
    assert_eq!(rules[0]["Value"], prefix.as_str());
    assert_eq!(
        prop(
            f,
            &["Events", "MediaUploaded", "Properties", "Bucket", "Ref"]
        )
        .and_then(Value::as_str),
        Some("MediaBucket")
    );
    let bucket = resource(&t, "MediaBucket").expect("bucket");
    let lifecycle = &prop(bucket, &["LifecycleConfiguration", "Rules"]).expect("lifecycle")[0];
    assert_eq!(lifecycle["Prefix"], prefix.as_str());
    assert_eq!(lifecycle["ExpirationInDays"]["Ref"], "MediaRetentionDays");
    // Functions that read media (presigned downloads) may read media only.
    let all = statements(&t);
    let get: Vec<_> = all
        .iter()
        .filter(|s| s.allows() && s.actions.iter().any(|a| a == "s3:GetObject"))
        .collect();
    assert!(!get.is_empty());
    for s in get {
        for r in &s.resources {
            assert_eq!(
                fill(r, VARS),
                format!("arn:aws:s3:::{BUCKET}/{prefix}*"),
                "{}",
                s.principal
            );
        }
    }
}

#[test]
fn the_table_has_the_keys_index_and_ttl_the_code_uses() {
    let t = template();
    let table = resource(&t, "Table").expect("table");
    let key = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .expect("key schema")
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap_or("").into(),
                    k["KeyType"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    };
    let hash_range = |h: &str, r: &str| {
        vec![
            (h.to_owned(), "HASH".to_owned()),
            (r.to_owned(), "RANGE".to_owned()),
        ]
    };
    assert_eq!(
        key(prop(table, &["KeySchema"]).expect("keys")),
        hash_range(schema::PK, schema::SK)
    );
    let gsis = prop(table, &["GlobalSecondaryIndexes"])
        .and_then(Value::as_array)
        .expect("indexes");
    assert_eq!(gsis.len(), 2);
    assert_eq!(gsis[0]["IndexName"], schema::GSI1);
    assert_eq!(
        key(&gsis[0]["KeySchema"]),
        hash_range(schema::GSI1PK, schema::GSI1SK)
    );
    assert_eq!(gsis[0]["Projection"]["ProjectionType"], "ALL");
    assert_eq!(gsis[1]["IndexName"], schema::GSI2);
    assert_eq!(
        key(&gsis[1]["KeySchema"]),
        hash_range(schema::GSI2PK, schema::GSI2SK)
    );
    assert_eq!(gsis[1]["Projection"]["ProjectionType"], "ALL");
    let mut attrs: Vec<_> = prop(table, &["AttributeDefinitions"])
        .and_then(Value::as_array)
        .expect("attributes")
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap_or(""),
                a["AttributeType"].as_str().unwrap_or(""),
            )
        })
        .collect();
    attrs.sort();
    let mut want = vec![
        (schema::GSI1PK, "S"),
        (schema::GSI1SK, "S"),
        (schema::GSI2PK, "S"),
        (schema::GSI2SK, "S"),
        (schema::PK, "S"),
        (schema::SK, "S"),
    ];
    want.sort();
    assert_eq!(attrs, want);
    assert_eq!(
        prop(table, &["TimeToLiveSpecification", "AttributeName"]),
        Some(&Value::from(schema::TTL_ATTR))
    );
    assert_eq!(
        prop(table, &["TimeToLiveSpecification", "Enabled"]),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        prop(table, &["BillingMode"]),
        Some(&Value::from("PAY_PER_REQUEST"))
    );
    assert_eq!(
        prop(
            table,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        ),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        prop(table, &["DeletionProtectionEnabled"]),
        Some(&serde_json::json!({"Fn::If": ["ProtectData", true, false]}))
    );
    // Functions reach the indexes through the table's ARN + `/index/{name}`.
    for s in statements(&t) {
        for r in s.resources.iter().filter(|r| r.contains("/index/")) {
            assert!(
                [schema::GSI1, schema::GSI2]
                    .iter()
                    .any(|i| r == &format!("${{Table.Arn}}/index/{i}")),
                "{}: {r}",
                s.principal
            );
        }
    }
}

/// Every `ENV_*` constant of `anpr_aws::config` and its value. A constant added there without
/// being added here fails [`every_env_var_a_function_names_is_set_for_it`].
const ENV_CONSTS: &[(&str, &str)] = &[
    ("ENV_TABLE", config::ENV_TABLE),
    ("ENV_IOT_ENDPOINT", config::ENV_IOT_ENDPOINT),
    ("ENV_BUCKET", config::ENV_BUCKET),
    ("ENV_REQUEST_EXPIRY", config::ENV_REQUEST_EXPIRY),
    ("ENV_RETENTION", config::ENV_RETENTION),
    ("ENV_READ_RETENTION", config::ENV_READ_RETENTION),
    ("ENV_URL_VALIDITY", config::ENV_URL_VALIDITY),
    ("ENV_AUDIT_RETENTION", config::ENV_AUDIT_RETENTION),
];

/// The function's crate directory under `functions/`, from its `Binary` build property.
fn functions() -> Vec<(String, String, Vec<String>)> {
    let t = template();
    resources(&t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no Metadata.BuildProperties.Binary"))
                .to_owned();
            let env = prop(f, &["Environment", "Variables"])
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            (id.to_owned(), binary, env)
        })
        .collect()
}

fn rust_sources(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn every_function_is_a_binary_of_the_workspace_built_for_arm64_lambda() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], serde_json::json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(
        globals["CodeUri"], "..",
        "the workspace root, relative to infra/"
    );
    for (id, f) in resources(&t, "AWS::Serverless::Function") {
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
    }
    for (id, binary, _) in functions() {
        let manifest = repo_root()
            .join("functions")
            .join(&binary)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{id}: binary {binary}: {} ({e})", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{binary}\"")),
            "{id}: {} builds no binary named {binary}",
            manifest.display()
        );
        let members =
            std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("root manifest");
        assert!(
            members.contains(&format!("\"functions/{binary}\"")),
            "{binary} is not a workspace member"
        );
    }
}

#[test]
fn every_env_var_a_function_names_is_set_for_it() {
    let known: Vec<&str> = ENV_CONSTS.iter().map(|(_, v)| *v).collect();
    let config_src = std::fs::read_to_string(repo_root().join("functions/aws/src/config.rs"))
        .expect("config.rs");
    for line in config_src
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const ENV_"))
    {
        let name = line
            .trim_start()
            .trim_start_matches("pub const ")
            .split(':')
            .next()
            .unwrap_or("");
        assert!(
            ENV_CONSTS.iter().any(|(n, _)| *n == name),
            "{name} is missing from ENV_CONSTS"
        );
    }
    for (id, binary, env) in functions() {
        let src = rust_sources(&repo_root().join("functions").join(&binary).join("src"));
        // The crate's own `const ENV_…: &str = "…";` names are known too.
        let own: Vec<String> = src
            .lines()
            .filter(|l| {
                l.trim_start().starts_with("pub const ENV_")
                    || l.trim_start().starts_with("const ENV_")
            })
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        for var in &env {
            assert!(
                known.contains(&var.as_str()) || own.contains(var) || var == "RUST_LOG",
                "{id}: {var} is read by no code"
            );
        }
        // FunctionConfig::from_env requires these two.
        if src.contains("FunctionConfig::from_env") {
            for required in [config::ENV_TABLE, config::ENV_IOT_ENDPOINT] {
                assert!(
                    env.iter().any(|v| v == required),
                    "{id}: {required} not set"
                );
            }
        }
        // Every ENV_* constant of anpr_aws::config the function's own crate names must be set.
        for (name, value) in ENV_CONSTS {
            if src.contains(name) {
                assert!(
                    env.iter().any(|v| v == value),
                    "{id}: the code reads {value} ({name}), the template does not set it"
                );
            }
        }
    }
}

#[test]
fn every_route_of_the_template_is_served_by_the_request_api() {
    use anpr_core::memory::{MemoryCameraRegistry, MemoryPublisher, MemoryRequestStore};
    use tower::ServiceExt;
    let t = template();
    let f = resource(&t, "RequestApiFunction").expect("request-api function");
    let events = prop(f, &["Events"])
        .and_then(Value::as_object)
        .expect("events");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let requests = anpr_core::FileRequests::new(
        MemoryRequestStore::default(),
        MemoryCameraRegistry::default(),
        MemoryPublisher::default(),
        anpr_core::RequestsConfig::default(),
    );
    // The router main.rs serves: file requests, plate reads and camera configuration.
    let main_rs = std::fs::read_to_string(repo_root().join("functions/request-api/src/main.rs"))
        .expect("request-api main.rs");
    assert!(
        main_rs.contains("request_api::app("),
        "request-api serves another router"
    );
    let router = request_api::app(request_api::Services {
        requests,
        reads: anpr_core::plates::MemoryPlateReadStore::default(),
        configs: anpr_core::CameraConfigs::new(
            MemoryCameraRegistry::default(),
            anpr_core::memory::MemoryShadows::default(),
        ),
        audit: anpr_core::audit::MemoryAuditLog::default(),
        downloads: request_api::Downloads {
            signer: anpr_core::memory::MemoryUrlSigner::default(),
            valid_for_secs: 60,
        },
    });
    assert!(!events.is_empty());
    for (name, e) in events {
        assert_eq!(e["Type"], "HttpApi", "{name}");
        let method = e["Properties"]["Method"].as_str().expect("method");
        let path = e["Properties"]["Path"].as_str().expect("path");
        let concrete = path
            .replace("{camera_id}", "cam-1")
            .replace("{request_id}", &req_id().to_string());
        let req = http::Request::builder()
            .method(method)
            .uri(&concrete)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .expect("request");
        let status = rt
            .block_on(router.clone().oneshot(req))
            .expect("infallible")
            .status();
        // Unknown routes answer 404/405 before any extractor; a known one refuses the missing
        // caller identity.
        assert_eq!(
            status,
            http::StatusCode::UNAUTHORIZED,
            "{name}: {method} {path} answered {status}"
        );
    }
    // And an unknown route is told apart (the check above can fail).
    let req = http::Request::builder()
        .uri("/no-such-route")
        .body(axum::body::Body::empty())
        .expect("request");
    let status = rt
        .block_on(router.oneshot(req))
        .expect("infallible")
        .status();
    assert_eq!(status, http::StatusCode::NOT_FOUND);
}
