//! Remote configuration end to end: the agent in this process against Mosquitto configured
//! like AWS IoT Core, with the device shadow service's topics answered by the shadow
//! stand-in (`anpr_test_support::shadow`, the same document rules as the cloud's in-memory
//! adapter). The cloud changes `desired`; the camera applies, persists and reports.

mod common;

use anpr_camera::config::RemoteSection;
use anpr_camera::remote::{RemoteState, RemoteStore};
use anpr_test_support::shadow::ShadowService;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const SHADOW: &str = "config";

fn persisted(stack: &Stack) -> RemoteState {
    RemoteStore::new(stack.state.path()).load().unwrap()
}

fn reported(s: &anpr_test_support::shadow::Shadow, key: &str) -> Value {
    s.reported.get(key).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_camera_is_offline_are_applied_when_it_connects() {
    let stack = Stack::new("cfg-off").await;
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();

    // Desired before the camera ever connected: it fetches the shadow on its first session.
    shadows
        .desire(&cam, SHADOW, json!({"upload_max_bytes_per_sec": 100000}))
        .await;
    let agent = Running::start(stack.config());
    let s = shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "upload_max_bytes_per_sec") == json!(100000)
        })
        .await;
    assert_eq!(
        reported(&s, "keep_alive_secs"),
        json!(30),
        "it also reports what it runs"
    );
    assert_eq!(
        persisted(&stack).applied.upload_max_bytes_per_sec,
        Some(100000)
    );
    agent.stop().await;

    // Changed while it is offline: the delta waits in its persistent session.
    shadows
        .desire(&cam, SHADOW, json!({"health_interval_secs": 3600}))
        .await;
    let agent = Running::start(stack.config());
    let s = shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "health_interval_secs") == json!(3600)
        })
        .await;
    assert!(
        anpr_test_support::shadow::delta(&s.desired, &s.reported).is_empty(),
        "nothing pending: {s:?}"
    );
    let st = persisted(&stack);
    assert_eq!(st.applied.health_interval_secs, Some(3600));
    assert_eq!(
        st.applied.upload_max_bytes_per_sec,
        Some(100000),
        "a partial update keeps the earlier settings"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_desired_document_is_refused_with_its_reason_and_the_previous_one_stays() {
    let stack = Stack::new("cfg-bad").await;
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;
    let before = persisted(&stack);

    // The shadow service, like AWS's, does not know our rules: the camera is the last check.
    let v = shadows
        .desire(&cam, SHADOW, json!({"keep_alive_secs": 5}))
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            s.reported.contains_key("config_error")
        })
        .await;
    let err = reported(&s, "config_error");
    assert_eq!(err["setting"], "keep_alive_secs", "{err}");
    assert_eq!(err["version"], v);
    assert!(
        err["reason"].as_str().unwrap().contains("30..=1200"),
        "{err}"
    );
    assert_eq!(reported(&s, "keep_alive_secs"), json!(30));
    assert_eq!(persisted(&stack).applied, before.applied, "nothing applied");

    // An unknown setting (a newer cloud) is refused by name as well.
    shadows
        .desire(&cam, SHADOW, json!({"keep_alive_secs": 5, "colour": "red"}))
        .await;
    shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "config_error")["setting"] == "colour"
        })
        .await;

    // A corrected document is applied and clears the error.
    shadows
        .desire(
            &cam,
            SHADOW,
            json!({"keep_alive_secs": null, "colour": null, "health_interval_secs": 600}),
        )
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "health_interval_secs") == json!(600)
                && !s.reported.contains_key("config_error")
        })
        .await;
    assert_eq!(reported(&s, "keep_alive_secs"), json!(30));
    assert!(agent.is_running());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_delta_delivered_late_does_not_undo_a_newer_one() {
    let stack = Stack::new("cfg-ver").await;
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let mut cloud = stack.cloud().await;
    stack.media_file("present.jpg", 10);
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;
    let v = shadows
        .desire(&cam, SHADOW, json!({"health_interval_secs": 900}))
        .await;
    shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "health_interval_secs") == json!(900)
        })
        .await;
    // An older delta (e.g. re-delivered from a queue after a newer get) arrives now.
    let stale = json!({"version": v - 1, "state": {"health_interval_secs": 7200}});
    cloud
        .client
        .publish(
            format!("$aws/things/{cam}/shadow/name/{SHADOW}/update/delta"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&stale).unwrap(),
        )
        .await
        .unwrap();
    // A request published after it on the same connection reaches the agent after it (one
    // session, in order); its answer proves the stale delta was handled by then.
    let after = "01AFTERSTALE00000000000000";
    cloud.request(after, "present.jpg").await;
    cloud.wait_status(after, 20, is_uploaded).await;
    let s = shadows.document(&cam, SHADOW).unwrap();
    assert_eq!(reported(&s, "health_interval_secs"), json!(900));
    assert_eq!(persisted(&stack).applied.health_interval_secs, Some(900));
    assert_eq!(persisted(&stack).version, v);
    // A conditional update with the wrong version is refused by the shadow, nothing changes.
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_cannot_reach_the_broker_is_rolled_back() {
    let mut stack = Stack::new("cfg-rb").await;
    // Two connection changes a moment apart: the hourly bound is off here (tested below).
    stack.remote = RemoteSection {
        rollback_secs: 3,
        min_connection_change_secs: 0,
        ..RemoteSection::default()
    };
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let port = stack.mqtt_proxy.port;
    let mut cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;

    // A port nothing listens on.
    let dead = anpr_test_support::free_port();
    let v = shadows
        .desire(&cam, SHADOW, json!({"mqtt_port": dead}))
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            reported(s, "config_error")["rolled_back"] == json!(true)
        })
        .await;
    let err = reported(&s, "config_error");
    assert_eq!(err["version"], v, "{err}");
    assert_eq!(err["setting"], "mqtt_port", "{err}");
    assert_eq!(
        reported(&s, "mqtt_port"),
        json!(port),
        "back on the old port"
    );
    let st = persisted(&stack);
    assert_eq!(st.applied.mqtt_port, None);
    assert!(st.trial.is_none());
    // The camera is back in service: its health report reaches the cloud.
    cloud.wait_health(20).await;
    assert!(agent.is_running());

    // A working port change is confirmed by the connection and stays.
    let v2 = shadows
        .desire(&cam, SHADOW, json!({"mqtt_port": stack.broker.port}))
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            reported(s, "mqtt_port") == json!(stack.broker.port)
        })
        .await;
    assert!(
        reported(&s, "config_error").is_null(),
        "the error is cleared: {s:?}"
    );
    let st = persisted(&stack);
    assert_eq!(st.applied.mqtt_port, Some(stack.broker.port));
    assert_eq!(st.version, v2);
    assert!(st.trial.is_none());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_connection_trial_still_rolls_it_back() {
    let mut stack = Stack::new("cfg-rs").await;
    stack.remote = RemoteSection {
        rollback_secs: 4,
        ..RemoteSection::default()
    };
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let port = stack.mqtt_proxy.port;
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;
    let dead = anpr_test_support::free_port();
    shadows
        .desire(&cam, SHADOW, json!({"mqtt_port": dead}))
        .await;
    // The trial is persisted before the agent reconnects; then the power goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while persisted(&stack).trial.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trial not persisted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.stop().await;
    assert_eq!(persisted(&stack).applied.mqtt_port, Some(dead));

    // Restarted on the unreachable port, the agent still goes back within its deadline.
    let agent = Running::start(stack.config());
    let s = shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            reported(s, "config_error")["rolled_back"] == json!(true)
        })
        .await;
    assert_eq!(reported(&s, "mqtt_port"), json!(port));
    assert_eq!(persisted(&stack).applied.mqtt_port, None);
    agent.stop().await;
}

/// Desires `mqtt_port = bad` and checks the agent in `stack` rolls it back within its
/// deadline and serves again on the old port.
async fn rolls_back(stack: &Stack, shadows: &ShadowService, bad: u16) {
    let cam = stack.cam.cn.clone();
    let v = shadows
        .desire(&cam, SHADOW, json!({"mqtt_port": bad}))
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            let e = reported(s, "config_error");
            e["rolled_back"] == json!(true) && e["version"] == json!(v)
        })
        .await;
    assert_eq!(reported(&s, "mqtt_port"), json!(stack.mqtt_proxy.port));
    let st = persisted(stack);
    assert_eq!(st.applied.mqtt_port, None);
    assert!(st.trial.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_silently_drops_or_fails_tls_is_rolled_back() {
    let mut stack = Stack::new("cfg-sil").await;
    // Two connection changes a moment apart: the hourly bound is off here (tested below).
    stack.remote = RemoteSection {
        rollback_secs: 3,
        min_connection_change_secs: 0,
        ..RemoteSection::default()
    };
    let shadows = ShadowService::start(&stack.broker).await;
    let mut cloud = stack.cloud().await;
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&stack.cam.cn, SHADOW, 20, |s| !s.reported.is_empty())
        .await;

    // Accepts the connection, then answers nothing (a firewall that drops): the TLS handshake
    // hangs, only the trial's deadline ends it.
    let silent = anpr_test_support::proxy::Proxy::to_port(stack.broker.port);
    silent.set_silent(true);
    rolls_back(&stack, &shadows, silent.port).await;
    assert!(silent.connections() >= 1, "the agent tried the silent port");
    cloud.wait_health(20).await;

    // Something that is not the broker: plain HTTP (moto), the TLS handshake fails.
    let http = anpr_test_support::moto::url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("moto port");
    rolls_back(&stack, &shadows, http).await;
    cloud.wait_health(20).await;
    assert!(agent.is_running());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_killed_with_sigkill_during_a_connection_trial_rolls_it_back_after_restart() {
    let mut stack = Stack::new("cfg-k9").await;
    stack.remote = RemoteSection {
        rollback_secs: 4,
        ..RemoteSection::default()
    };
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let bin = env!("CARGO_BIN_EXE_anpr-camera");
    let mut agent = spawn_agent(&stack, bin, "first.log", "info", &[]);
    shadows
        .wait_for(&cam, SHADOW, 30, |s| !s.reported.is_empty())
        .await;
    let dead = anpr_test_support::free_port();
    shadows
        .desire(&cam, SHADOW, json!({"mqtt_port": dead}))
        .await;
    // The trial is persisted before the agent reconnects; then the power goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while persisted(&stack).trial.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "trial not persisted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill().unwrap(); // SIGKILL in the middle of the trial
    agent.wait().unwrap();
    assert_eq!(persisted(&stack).applied.mqtt_port, Some(dead));

    let mut agent = spawn_agent(&stack, bin, "second.log", "info", &[]);
    let s = shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            reported(s, "config_error")["rolled_back"] == json!(true)
        })
        .await;
    assert_eq!(reported(&s, "mqtt_port"), json!(stack.mqtt_proxy.port));
    assert_eq!(persisted(&stack).applied.mqtt_port, None);
    let exit = sigterm_and_wait(&mut agent, 30).await;
    assert!(exit.success(), "{exit:?}");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_values_are_refused_by_the_camera_with_the_protocols_bounds() {
    let stack = Stack::new("cfg-bounds").await;
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;
    let before = persisted(&stack);
    // Written straight to the shadow (as a cloud without the checks would): the camera is the
    // last line and refuses each, naming the setting and the bound.
    for (doc, setting, bound) in [
        (
            json!({"upload_max_bytes_per_sec": 1}),
            "upload_max_bytes_per_sec",
            "at least 32768",
        ),
        (
            json!({"upload_max_bytes_per_sec": null, "media_quota_bytes": 1}),
            "media_quota_bytes",
            "at least 268435456",
        ),
        (
            json!({"media_quota_bytes": null, "recognizer_min_confidence": 100}),
            "recognizer_min_confidence",
            "0..=95",
        ),
    ] {
        let v = shadows.desire(&cam, SHADOW, doc.clone()).await;
        let s = shadows
            .wait_for(&cam, SHADOW, 20, |s| {
                reported(s, "config_error")["version"] == json!(v)
            })
            .await;
        let err = reported(&s, "config_error");
        assert_eq!(err["setting"], setting, "{doc}: {err}");
        assert!(err["reason"].as_str().unwrap().contains(bound), "{err}");
    }
    assert_eq!(persisted(&stack).applied, before.applied, "nothing applied");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_change_sooner_than_an_hour_after_the_last_is_refused_and_reported() {
    let stack = Stack::new("cfg-rate").await;
    let shadows = ShadowService::start(&stack.broker).await;
    let cam = stack.cam.cn.clone();
    let agent = Running::start(stack.config());
    shadows
        .wait_for(&cam, SHADOW, 20, |s| !s.reported.is_empty())
        .await;
    // A connection change: applied by reconnecting, confirmed by the connection.
    shadows
        .desire(&cam, SHADOW, json!({"keep_alive_secs": 600}))
        .await;
    shadows
        .wait_for(&cam, SHADOW, 30, |s| {
            reported(s, "keep_alive_secs") == json!(600)
        })
        .await;
    let before = persisted(&stack);
    assert!(before.connection_changed_at.is_some());
    // Another one a moment later, written straight into the shadow (no cloud check): the
    // camera refuses it, naming the setting and when the next change is allowed.
    let v = shadows
        .desire(&cam, SHADOW, json!({"keep_alive_secs": 900}))
        .await;
    let s = shadows
        .wait_for(&cam, SHADOW, 20, |s| {
            reported(s, "config_error")["version"] == json!(v)
        })
        .await;
    let err = reported(&s, "config_error");
    assert_eq!(err["setting"], "keep_alive_secs", "{err}");
    let reason = err["reason"].as_str().unwrap();
    assert!(reason.contains("at most once every 3600 s"), "{reason}");
    let next = before.connection_changed_at.unwrap() + 3600;
    assert!(reason.contains(&next.to_string()), "{reason}");
    assert_eq!(reported(&s, "keep_alive_secs"), json!(600), "still running");
    let st = persisted(&stack);
    assert_eq!(st.applied, before.applied, "nothing applied");
    assert_eq!(st.connection_changed_at, before.connection_changed_at);
    assert!(agent.is_running());
    agent.stop().await;
}
