use super::*;
use serde_json::json;

use crate::config::tests::MINIMAL as FILE_TEXT;

fn file() -> Config {
    Config::parse(FILE_TEXT).unwrap()
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// When the document of shadow version `version` arrives: versions an hour apart, so
/// that connection changes in these tests are never too soon unless a test says so.
fn at(version: u64) -> u64 {
    1_700_000_000 + version * anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS
}

fn apply(
    st: &RemoteState,
    version: u64,
    delta: Value,
) -> (RemoteState, Config, bool, Map<String, Value>) {
    match on_delta(&file(), st, version, &map(delta), at(version)) {
        Step::Apply {
            next,
            cfg,
            reconnect,
            report,
        } => (next, *cfg, reconnect, report),
        other => panic!("not applied: {other:?}"),
    }
}

#[test]
fn a_partial_delta_changes_only_its_settings_and_reports_them() {
    let (st, cfg, reconnect, report) = apply(
        &RemoteState::default(),
        3,
        json!({"upload_max_bytes_per_sec": 50000}),
    );
    assert!(!reconnect);
    assert_eq!(cfg.upload.max_bytes_per_sec, Some(50000));
    assert_eq!(cfg.mqtt.keep_alive_secs, 1200, "untouched");
    assert_eq!(report, map(json!({"upload_max_bytes_per_sec": 50000})));
    let (st, cfg, _, _) = apply(&st, 5, json!({"health_interval_secs": 3600}));
    assert_eq!(
        cfg.upload.max_bytes_per_sec,
        Some(50000),
        "the earlier one stays"
    );
    assert_eq!(cfg.health.interval_secs, 3600);
    assert_eq!(st.version, 5);
    let (_, cfg, _, _) = apply(&st, 6, json!({"upload_max_bytes_per_sec": 0}));
    assert_eq!(cfg.upload.max_bytes_per_sec, None, "0 lifts the cap");
}

#[test]
fn a_stale_or_repeated_delta_is_ignored() {
    let (st, ..) = apply(&RemoteState::default(), 5, json!({"keep_alive_secs": 600}));
    for v in [5, 4] {
        let s = on_delta(
            &file(),
            &st,
            v,
            &map(json!({"keep_alive_secs": 300})),
            at(9),
        );
        assert!(
            matches!(s, Step::Ignore { report } if report.is_empty()),
            "version {v}"
        );
    }
}

#[test]
fn an_invalid_document_is_refused_with_its_reason_and_the_previous_configuration_stays() {
    let (st, ..) = apply(
        &RemoteState::default(),
        2,
        json!({"health_interval_secs": 3600}),
    );
    for (delta, setting) in [
        (json!({"keep_alive_secs": 5}), "keep_alive_secs"),
        (json!({"keep_alive_secs": "soon"}), "keep_alive_secs"),
        (json!({"colour": "red"}), "colour"),
        (json!({"mqtt_port": 443}), "mqtt.alpn"),
        (json!({"recognizer_region": "eu"}), "recognizer_region"),
    ] {
        match on_delta(&file(), &st, 3, &map(delta.clone()), at(3)) {
            Step::Refuse { next, report } => {
                assert_eq!(next.applied, st.applied, "{delta}");
                let e = &report[CONFIG_ERROR];
                assert_eq!(e["setting"], setting, "{delta}: {e}");
                assert_eq!(e["version"], 3);
                // The same values are not tried again, even under a newer version…
                assert!(
                    matches!(
                        on_delta(&file(), &next, 4, &map(delta.clone()), at(4)),
                        Step::Ignore { .. }
                    ),
                    "{delta}"
                );
                // …but a corrected value is, and clears the error.
                let (fixed, _, _, report) = match on_delta(
                    &file(),
                    &next,
                    5,
                    &map(json!({"keep_alive_secs": 900})),
                    at(5),
                ) {
                    Step::Apply {
                        next,
                        cfg,
                        reconnect,
                        report,
                    } => (next, cfg, reconnect, report),
                    other => panic!("{other:?}"),
                };
                if setting == "keep_alive_secs" {
                    assert!(fixed.error.is_none());
                    assert_eq!(report[CONFIG_ERROR], Value::Null);
                }
            }
            other => panic!("{delta}: {other:?}"),
        }
    }
}

#[test]
fn a_connection_change_is_a_trial_reported_only_when_confirmed() {
    let (st, cfg, reconnect, _) = apply(
        &RemoteState::default(),
        4,
        json!({"mqtt_port": 443, "mqtt_alpn": true}),
    );
    assert!(reconnect);
    assert_eq!(cfg.mqtt.port, 443);
    let t = st.trial.clone().unwrap();
    assert_eq!(t.previous, RemoteConfig::default());
    let (confirmed, report) = confirm(&st);
    assert!(confirmed.trial.is_none());
    assert_eq!(report, map(json!({"mqtt_port": 443, "mqtt_alpn": true})));
    assert_eq!(confirmed.applied.mqtt_port, Some(443));
}

#[test]
fn a_trial_that_cannot_connect_is_rolled_back_and_not_retried() {
    let (st, ..) = apply(&RemoteState::default(), 2, json!({"keep_alive_secs": 600}));
    let (st, ..) = apply(&st, 4, json!({"mqtt_port": 9999}));
    let (back, report) = rollback(&st, &file(), 300);
    assert_eq!(back.applied.mqtt_port, None);
    assert_eq!(
        back.applied.keep_alive_secs,
        Some(600),
        "earlier settings stay"
    );
    assert_eq!(overlay(&file(), &back.applied).unwrap().mqtt.port, 8883);
    assert_eq!(report["mqtt_port"], 8883);
    assert_eq!(report[CONFIG_ERROR]["rolled_back"], true);
    assert_eq!(report[CONFIG_ERROR]["version"], 4);
    // The shadow still desires 9999; a later document with another change applies that
    // change only.
    match on_delta(
        &file(),
        &back,
        9,
        &map(json!({"mqtt_port": 9999, "health_interval_secs": 120})),
        at(9),
    ) {
        Step::Apply { cfg, reconnect, .. } => {
            assert!(!reconnect);
            assert_eq!(cfg.mqtt.port, 8883);
            assert_eq!(cfg.health.interval_secs, 120);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_document_reports_what_the_shadow_lacks_and_applies_its_delta() {
    let doc: Document = serde_json::from_value(json!({
        "state": {
            "desired": {"keep_alive_secs": 600},
            "reported": {"keep_alive_secs": 1200, "mqtt_port": 8883},
            "delta": {"keep_alive_secs": 600}
        },
        "version": 7
    }))
    .unwrap();
    match on_document(&file(), &RemoteState::default(), &doc, at(7)) {
        Step::Apply {
            next,
            reconnect,
            report,
            ..
        } => {
            assert!(reconnect, "keep-alive is negotiated at connect");
            assert_eq!(next.version, 7);
            assert_eq!(report["keep_alive_secs"], 600);
            assert_eq!(
                report["health_interval_secs"], 21600,
                "missing in the shadow"
            );
            assert!(
                !report.contains_key("mqtt_port"),
                "already right in the shadow"
            );
        }
        other => panic!("{other:?}"),
    }
    let empty = Document::default();
    match on_document(&file(), &RemoteState::default(), &empty, at(1)) {
        Step::Ignore { report } => assert_eq!(report.len(), 8, "{report:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn recognizer_settings_apply_only_to_a_camera_with_a_recognizer_feed() {
    let delta = json!({"recognizer_min_confidence": 70, "recognizer_region": "eu",
                       "recognizer_group_gap_ms": 900, "media_quota_bytes": 300000000});
    assert!(matches!(
        on_delta(
            &file(),
            &RemoteState::default(),
            2,
            &map(delta.clone()),
            at(2)
        ),
        Step::Refuse { .. }
    ));
    let mut with_feed = file();
    with_feed.recognizer = Some(
        Config::parse(&format!(
            "{}\n[recognizer]\nwatch_dir = \"/var/lib/anpr/frames\"\n",
            FILE_TEXT
        ))
        .unwrap()
        .recognizer
        .unwrap(),
    );
    match on_delta(&with_feed, &RemoteState::default(), 2, &map(delta), at(2)) {
        Step::Apply { cfg, reconnect, .. } => {
            assert!(!reconnect);
            let r = cfg.recognizer.unwrap();
            assert!((r.min_score - 0.7).abs() < 1e-6);
            assert_eq!(r.region.as_str(), "eu");
            assert_eq!(r.group_gap_ms, 900);
            assert_eq!(cfg.media_quota_bytes, Some(300_000_000));
        }
        other => panic!("{other:?}"),
    }
    let shown = settable(&with_feed);
    assert_eq!(shown.recognizer_min_confidence, Some(20));
    assert_eq!(
        shown.recognizer_region,
        Some(anpr_protocol::PlateRegion::Auto)
    );
    assert_eq!(shown.media_quota_bytes, Some(0));
    assert_eq!(settable(&file()).recognizer_region, None);
}

#[test]
fn a_connection_change_sooner_than_the_bound_is_refused_naming_the_setting() {
    let hour = anpr_protocol::config::MIN_CONNECTION_CHANGE_INTERVAL_SECS;
    let t0 = 1_700_000_000;
    let first = on_delta(
        &file(),
        &RemoteState::default(),
        2,
        &map(json!({"keep_alive_secs": 600})),
        t0,
    );
    let Step::Apply { next: st, .. } = first else {
        panic!("the first change applies: {first:?}")
    };
    assert_eq!(st.connection_changed_at, Some(t0));
    // Ten minutes later a port change (written straight into the shadow, say) is refused
    // as a whole: the other setting it came with is not applied either.
    let soon = map(json!({"mqtt_port": 443, "mqtt_alpn": true, "health_interval_secs": 120}));
    match on_delta(&file(), &st, 3, &soon, t0 + 600) {
        Step::Refuse { next, report } => {
            let e = &report[CONFIG_ERROR];
            assert_eq!(e["setting"], "mqtt_port", "{e}");
            assert_eq!(e["version"], 3);
            let reason = e["reason"].as_str().unwrap();
            assert!(reason.contains(&(t0 + hour).to_string()), "{reason}");
            assert_eq!(next.applied, st.applied, "nothing applied");
            assert_eq!(next.connection_changed_at, Some(t0));
            assert!(
                next.refused.is_empty(),
                "early, not wrong: tried again later"
            );
            // A settings change that does not touch the connection still applies.
            match on_delta(
                &file(),
                &next,
                4,
                &map(json!({"health_interval_secs": 120})),
                t0 + 700,
            ) {
                Step::Apply { reconnect, .. } => assert!(!reconnect),
                other => panic!("{other:?}"),
            }
            // The same values again, once the hour (less the slack) has passed, apply.
            let later = t0 + hour - anpr_protocol::config::CONNECTION_CHANGE_SLACK_SECS;
            match on_delta(&file(), &next, 5, &soon, later) {
                Step::Apply {
                    next,
                    reconnect,
                    report,
                    ..
                } => {
                    assert!(reconnect);
                    assert_eq!(next.connection_changed_at, Some(later));
                    assert_eq!(report[CONFIG_ERROR], Value::Null, "error cleared");
                }
                other => panic!("{other:?}"),
            }
            // One second sooner still refused.
            assert!(matches!(
                on_delta(&file(), &next, 5, &soon, later - 1),
                Step::Refuse { .. }
            ));
        }
        other => panic!("too soon, yet: {other:?}"),
    }
    // Re-sending the value the camera already runs is no change, whenever it comes.
    assert!(matches!(
        on_delta(
            &file(),
            &st,
            6,
            &map(json!({"keep_alive_secs": 600})),
            t0 + 1
        ),
        Step::Apply {
            reconnect: false,
            ..
        }
    ));
    // With the bound off (the file's `remote.min_connection_change_secs = 0`) nothing is
    // too soon.
    let mut unbounded = file();
    unbounded.remote.min_connection_change_secs = 0;
    assert!(matches!(
        on_delta(&unbounded, &st, 3, &soon, t0 + 1),
        Step::Apply {
            reconnect: true,
            ..
        }
    ));
}

#[test]
fn the_state_is_saved_atomically_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(dir.path());
    assert_eq!(store.load().unwrap(), RemoteState::default());
    let (st, ..) = apply(&RemoteState::default(), 4, json!({"mqtt_port": 9999}));
    store.save(&st).unwrap();
    assert_eq!(store.load().unwrap(), st);
    assert!(!dir.path().join("remote-config.json.tmp").exists());
    std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
    assert!(matches!(store.load(), Err(RemoteError::Corrupt { .. })));
    store.quarantine().unwrap();
    assert_eq!(store.load().unwrap(), RemoteState::default());
}
