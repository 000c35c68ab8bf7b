//! Decoding never panics and says what is wrong.

use anpr_protocol::*;

fn status(s: &str) -> Result<FileStatus, ProtocolError> {
    decode::<FileStatus>(s.as_bytes())
}

#[test]
fn unknown_fields_are_tolerated() {
    let s = status(r#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"accepted","new_field":[1,2]}"#)
        .unwrap();
    assert_eq!(s.kind, FileStatusKind::Accepted);
}

#[test]
fn an_unknown_status_kind_is_reported_with_its_name() {
    match status(r#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"teleported"}"#) {
        Err(ProtocolError::UnknownKind { field: "s", kind }) => assert_eq!(kind, "teleported"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_reason_code_decodes_as_other() {
    let s =
        status(r#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"failed","reason":"cosmic_ray"}"#)
            .unwrap();
    assert_eq!(
        s.kind,
        FileStatusKind::Failed {
            reason: ReasonCode::Other
        }
    );
}

#[test]
fn a_newer_schema_version_is_refused() {
    assert!(matches!(
        status(r#"{"v":2,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"accepted"}"#),
        Err(ProtocolError::UnsupportedVersion { found: 2, .. })
    ));
    assert!(matches!(
        status(r#"{"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"accepted"}"#),
        Err(ProtocolError::MissingVersion)
    ));
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    let long = format!(r#"{{"v":1,"id":"{}","s":"accepted"}}"#, "A".repeat(100_000));
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"{\"v\":\"1\"}".to_vec(),
        br#"{"v":1,"id":5,"s":"accepted"}"#.to_vec(),
        br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"uploading","pct":"x"}"#.to_vec(),
        br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"uploading","pct":101}"#.to_vec(),
        br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","s":"uploading","pct":-1}"#.to_vec(),
        vec![b'{', 0xff, 0xfe, b'}'],
        long.into_bytes(),
        vec![b' '; MAX_MQTT_PAYLOAD + 1],
        b"{\"v\":1,\"id\":\"../x\",\"s\":\"accepted\"}".to_vec(),
        b"{\"v\":99999999999999999999999}".to_vec(),
    ];
    for c in cases {
        assert!(
            decode::<FileStatus>(&c).is_err(),
            "{:?}",
            String::from_utf8_lossy(&c)
        );
        assert!(decode::<FileRequest>(&c).is_err());
        assert!(decode::<PlateReadBatch>(&c).is_err());
    }
}

#[test]
fn a_request_naming_a_path_outside_the_media_directory_is_refused() {
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "./a",
        "a\\..\\b",
        "a\u{0}b",
        "a\nb",
        "\u{202e}gpj.exe",
        "a\u{200b}b",
        "a\u{2215}..",
        "\u{ff0e}\u{ff0e}/x",
        " a",
        "a/ ",
    ] {
        let json =
            serde_json::json!({"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","file":bad,"at":1,"exp":2});
        let err = decode::<FileRequest>(json.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, ProtocolError::Malformed(_)),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn file_names_in_any_script_with_spaces_are_accepted() {
    for ok in [
        "clips/a.mp4",
        "Ölkännchen/vidéo 1.mp4",
        "カメラ/映像.mp4",
        "a+b@c=(1)[2]~.jpg",
    ] {
        FileName::parse(ok).unwrap();
    }
    assert!(FileName::parse(&"a".repeat(FileName::MAX_LEN + 1)).is_err());
    assert!(FileName::parse(&format!("{}/b", "a".repeat(256))).is_err());
}

#[test]
fn an_expiry_before_the_request_time_is_refused() {
    let json = br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","file":"a","at":10,"exp":5}"#;
    assert!(
        matches!(decode::<FileRequest>(json), Err(ProtocolError::Invalid(v)) if v.field == "exp")
    );
}

#[test]
fn camera_ids_are_kept_to_a_topic_and_key_safe_alphabet() {
    for ok in ["123456", "cam-a_1", &"x".repeat(64)] {
        CameraId::parse(ok).unwrap();
    }
    for bad in ["", "a/b", "a+b", "#", "$aws", "a b", "é", &"x".repeat(65)] {
        assert_eq!(
            CameraId::parse(bad).unwrap_err().field,
            "camera_id",
            "{bad:?}"
        );
    }
}

#[test]
fn plate_text_is_normalised_the_same_way_everywhere() {
    assert_eq!(normalize_plate("ab-123 cd").unwrap(), "AB123CD");
    assert_eq!(normalize_plate(" 7c.id 930 ").unwrap(), "7CID930");
    assert!(normalize_plate("--").is_err());
    assert!(normalize_plate("AB<script>").is_err());
    assert!(normalize_plate(&"A".repeat(17)).is_err());
}

#[test]
fn a_batch_with_some_bad_reads_keeps_the_good_ones() {
    let json = br#"{"v":1,"r":[{"id":"a1","t":1,"p":"AB1","c":90},{"id":"../","t":1,"p":"X","c":1},{"id":"a2","t":"x","p":"X","c":1},{"id":"a3","t":2,"p":"CD2","c":200},{"id":"a4","t":3,"p":"EF3","c":50}]}"#;
    let (ok, bad) = PlateReadBatch::decode_lenient(json).unwrap();
    assert_eq!(
        ok.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a4"]
    );
    assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn topics_put_the_camera_id_first_and_parse_back() {
    let cam = CameraId::parse("123456").unwrap();
    assert_eq!(topics::file_request(&cam), "123456/file/request");
    assert_eq!(topics::file_status(&cam), "123456/file/status");
    assert_eq!(
        topics::plate_reads_basic_ingest("r", &cam),
        "$aws/rules/r/123456/plates"
    );
    let (c, rest) = topics::parse_camera_topic("$aws/rules/r/123456/plates").unwrap();
    assert_eq!((c.as_str(), rest), ("123456", "plates"));
    assert!(topics::parse_camera_topic("nolevel").is_err());
    assert_eq!(
        topics::org_notifications("a/b+#"),
        "web/org/a_b__/notifications"
    );
}

#[test]
fn upload_keys_carry_camera_and_request_and_parse_back() {
    let cam = CameraId::parse("123456").unwrap();
    let file = FileName::parse("clips/a b+c.mp4").unwrap();
    let key = topics::upload_key(
        &cam,
        &RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2R").unwrap(),
        &file,
    );
    assert_eq!(
        key,
        "media/123456/01JDQ2Y7ZK8M3W5T0G9H4N6P2R/clips/a b+c.mp4"
    );
    let (c, r, f) = topics::parse_upload_key(&key).unwrap();
    assert_eq!(
        (c.as_str(), r.as_str(), f),
        ("123456", "01JDQ2Y7ZK8M3W5T0G9H4N6P2R", "clips/a b+c.mp4")
    );
    for bad in [
        "other/123456/01J/x",
        "media/12 34/01J/x",
        "media/123456/01J",
        "media/123456/01J/",
    ] {
        assert!(topics::parse_upload_key(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_upload_key_whose_file_part_no_camera_could_write_is_refused() {
    // Found by `scripts/fuzz` (decode_messages): the file part was not checked.
    for key in [
        "media/mia/ma/\"\"K",
        "media/cam-1/01JDQ2Y7ZK8M3W5T0G9H4N6P2R/../x.mp4",
        "media/cam-1/01JDQ2Y7ZK8M3W5T0G9H4N6P2R/a//b.mp4",
        "media/cam-1/01JDQ2Y7ZK8M3W5T0G9H4N6P2R/a\u{7}.mp4",
    ] {
        assert!(
            anpr_protocol::topics::parse_upload_key(key).is_err(),
            "{key:?} was accepted"
        );
    }
}
