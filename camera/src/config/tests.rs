use super::*;

/// The smallest valid file (also the base of other modules' tests).
pub(crate) const MINIMAL: &str = r#"
camera_id = "cam-1"
media_dir = "/var/lib/anpr/media"
state_dir = "/var/lib/anpr/state"
[mqtt]
host = "abc-ats.iot.eu-west-1.amazonaws.com"
ca_file = "/etc/anpr/ca.pem"
cert_file = "/etc/anpr/cert.pem"
key_file = "/etc/anpr/key.pem"
[upload]
bucket = "media"
region = "eu-west-1"
[credentials]
host = "abc.credentials.iot.eu-west-1.amazonaws.com"
role_alias = "anpr-camera"
"#;

#[test]
fn a_minimal_file_gets_the_thrifty_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        c.reconnect_policy(),
        crate::machine::ReconnectPolicy::default()
    );
    assert_eq!(c.mqtt.port, 8883);
    assert_eq!(c.mqtt.keep_alive_secs, 1200);
    assert_eq!(c.upload.part_size_bytes, 8 * 1024 * 1024);
    assert_eq!(c.upload.max_file_bytes, Some(DEFAULT_MAX_FILE_BYTES));
    assert_eq!(c.health.interval_secs, 6 * 3600);
    assert_eq!(c.plate_topic(), "$aws/rules/anpr_plate_reads/cam-1/plates");
}

const RECOGNIZER: &str = "\n[recognizer]\nwatch_dir = \"/var/lib/anpr/frames\"\n";

#[test]
fn without_a_recognizer_section_nothing_is_recognized_and_there_is_no_quota() {
    let c = Config::parse(MINIMAL).unwrap();
    assert!(c.recognizer.is_none());
    assert_eq!(c.media_quota_bytes, None);
}

#[test]
fn a_zero_media_quota_is_refused_naming_the_setting() {
    let text = MINIMAL.replacen("camera_id", "media_quota_bytes = 0\ncamera_id", 1);
    let e = Config::parse(&text).unwrap_err();
    assert!(e.to_string().contains("media_quota_bytes"), "{e}");
    let ok = MINIMAL.replacen("camera_id", "media_quota_bytes = 1000000\ncamera_id", 1);
    assert_eq!(
        Config::parse(&ok).unwrap().media_quota_bytes,
        Some(1_000_000)
    );
}

#[test]
fn a_recognizer_section_with_only_the_watch_dir_gets_the_defaults() {
    let c = Config::parse(&format!("{MINIMAL}{RECOGNIZER}")).unwrap();
    let r = c.recognizer.unwrap();
    assert_eq!(r.watch_dir, PathBuf::from("/var/lib/anpr/frames"));
    assert_eq!(r.models_dir, None);
    assert_eq!(r.threads, 1);
    assert_eq!(r.min_score, 0.2);
    assert_eq!(r.region.as_str(), "auto");
    assert_eq!(r.reader.name(), "ppocr");
    assert_eq!((r.group_gap_ms, r.group_window_ms), (2000, 30_000));
    assert_eq!(r.save, SaveMode::Crop);
    assert_eq!(r.idle_exit_secs, 60);
    assert_eq!((r.motion, r.max_backlog), (0.01, 50));
    assert_eq!(r.reread_below, None, "the recognizer's own");
    assert_eq!(r.second_detector, SecondDetector::Plate);
    assert_eq!(r.confirm_reader, ConfirmReader::Plate);
    assert!(r.faint_look);
    assert_eq!(r.detector.name(), "plate");
    assert_eq!(
        (r.detector_side, r.finer_side, r.finer_below),
        (960, 1120, 0.0),
        "one look, a finer one only at frames without a read"
    );
}

#[test]
fn every_recognizer_setting_is_read() {
    let text = format!(
        "{MINIMAL}{RECOGNIZER}models_dir = \"/opt/models\"\nthreads = 2\nmin_score = 0.5\n\
         region = \"br\"\nreader = \"plate\"\ngroup_gap_ms = 500\ngroup_window_ms = 4000\nsave = \"frame\"\n\
         idle_exit_secs = 0\nroi = [0, 360, 1280, 360]\nmotion = 0.0\nmax_backlog = 0\n\
         reread_below = 0.5\nsecond_detector = \"none\"\nconfirm_reader = \"none\"\n\
         faint_look = false\ndetector = \"ppocr\"\ndetector_side = 640\nfiner_side = 960\n\
         finer_below = 0.5\n"
    );
    let r = Config::parse(&text).unwrap().recognizer.unwrap();
    assert_eq!(r.models_dir, Some(PathBuf::from("/opt/models")));
    assert_eq!((r.threads, r.min_score), (2, 0.5));
    assert_eq!(r.region.as_str(), "br");
    assert_eq!(r.reader.name(), "plate");
    assert_eq!((r.group_gap_ms, r.group_window_ms), (500, 4000));
    assert_eq!(r.save, SaveMode::Frame);
    assert_eq!(r.idle_exit_secs, 0);
    assert_eq!(r.roi, Some([0, 360, 1280, 360]));
    assert_eq!((r.motion, r.max_backlog), (0.0, 0), "both off");
    assert_eq!(r.reread_below, Some(0.5));
    assert_eq!(r.second_detector, SecondDetector::None);
    assert_eq!(r.second_detector.kind(), None);
    assert_eq!(r.confirm_reader.kind(), None);
    assert!(!r.faint_look);
    assert_eq!(r.detector.name(), "ppocr");
    assert_eq!(
        (r.detector_side, r.finer_side, r.finer_below),
        (640, 960, 0.5),
        "a first look and a finer one at weak frames"
    );
    // The command line and the measurement example take the file's names.
    assert_eq!("none".parse(), Ok(SecondDetector::None));
    assert_eq!("plate".parse(), Ok(SecondDetector::Plate));
    let e = "yolo".parse::<SecondDetector>().unwrap_err();
    assert!(e.contains("yolo") && e.contains("ppocr"), "{e}");
    assert_eq!("ppocr".parse(), Ok(ConfirmReader::Ppocr));
    let e = "yolo".parse::<ConfirmReader>().unwrap_err();
    assert!(e.contains("confirm reader") && e.contains("plate"), "{e}");
    let none = format!("{MINIMAL}{RECOGNIZER}save = \"none\"\n");
    assert_eq!(
        Config::parse(&none).unwrap().recognizer.unwrap().save,
        SaveMode::None
    );
}

/// The file takes every region and reader the recognizer knows (one definition,
/// `anpr_protocol::{PlateRegion, ReaderKind, DetectorKind}`), by its name, and only in
/// lowercase.
#[test]
fn every_region_and_reader_the_recognizer_knows_is_accepted_by_name() {
    for region in PlateRegion::ALL {
        let text = format!("{MINIMAL}{RECOGNIZER}region = \"{region}\"\n");
        let r = Config::parse(&text).unwrap().recognizer.unwrap();
        assert_eq!(r.region, region);
    }
    for reader in ReaderKind::ALL {
        let text = format!("{MINIMAL}{RECOGNIZER}reader = \"{reader}\"\n");
        let r = Config::parse(&text).unwrap().recognizer.unwrap();
        assert_eq!(r.reader, reader);
    }
    for detector in DetectorKind::ALL {
        let text = format!("{MINIMAL}{RECOGNIZER}detector = \"{detector}\"\n");
        let r = Config::parse(&text).unwrap().recognizer.unwrap();
        assert_eq!(r.detector, detector);
    }
    let e = Config::parse(&format!("{MINIMAL}{RECOGNIZER}detector = \"yolo\"\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown detector \"yolo\": one of ppocr, plate"),
        "{e}"
    );
    let e = Config::parse(&format!("{MINIMAL}{RECOGNIZER}region = \"EU\"\n")).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown region \"EU\": one of auto, us, eu, br"),
        "{e}"
    );
}

#[test]
fn bad_recognizer_settings_are_refused_naming_the_setting() {
    let cases = [
        (
            "watch_dir = \"/var/lib/anpr/media\"",
            "recognizer.watch_dir",
        ),
        (
            "watch_dir = \"/var/lib/anpr/media/in\"",
            "recognizer.watch_dir",
        ),
        ("watch_dir = \"/var/lib/anpr\"", "recognizer.watch_dir"),
        ("watch_dir = \"/f\"\nroi = [0, 0, 0, 10]", "recognizer.roi"),
        ("watch_dir = \"/f\"\nmotion = 1.5", "recognizer.motion"),
        ("watch_dir = \"/f\"\nmotion = -0.01", "recognizer.motion"),
        ("watch_dir = \"/f\"\nmotion = nan", "recognizer.motion"),
        (
            "watch_dir = \"/f\"\nreread_below = 1.5",
            "recognizer.reread_below",
        ),
        (
            "watch_dir = \"/f\"\nreread_below = -0.1",
            "recognizer.reread_below",
        ),
        ("watch_dir = \"/f\"\nmax_backlog = -1", "max_backlog"),
        (
            "watch_dir = \"/f\"\ndetector_side = 100",
            "recognizer.detector_side",
        ),
        (
            "watch_dir = \"/f\"\ndetector_side = 4000",
            "recognizer.detector_side",
        ),
        (
            "watch_dir = \"/f\"\ndetector_side = 960\nfiner_side = 640",
            "recognizer.finer_side",
        ),
        (
            "watch_dir = \"/f\"\nfiner_side = 640",
            "recognizer.finer_side",
        ),
        (
            "watch_dir = \"/f\"\nfiner_side = 2000",
            "recognizer.finer_side",
        ),
        ("watch_dir = \"/f\"\nfiner_side = -1", "finer_side"),
        (
            "watch_dir = \"/f\"\nfiner_below = 1.5",
            "recognizer.finer_below",
        ),
        (
            "watch_dir = \"/f\"\nfiner_below = -0.1",
            "recognizer.finer_below",
        ),
        ("watch_dir = \"/f\"\nroi = [0, 0, 10]", "roi"),
        ("watch_dir = \"/f\"\nroi = [-1, 0, 10, 10]", "roi"),
        (
            "watch_dir = \"/var/lib/anpr/state/f\"",
            "recognizer.watch_dir",
        ),
        ("watch_dir = \"/f\"\nthreads = 0", "recognizer.threads"),
        ("watch_dir = \"/f\"\nthreads = 64", "recognizer.threads"),
        (
            "watch_dir = \"/f\"\nmin_score = 1.5",
            "recognizer.min_score",
        ),
        (
            "watch_dir = \"/f\"\nmin_score = -0.1",
            "recognizer.min_score",
        ),
        (
            "watch_dir = \"/f\"\nmin_score = nan",
            "recognizer.min_score",
        ),
        ("watch_dir = \"/f\"\nregion = \"mars\"", "recognizer.region"),
        (
            "watch_dir = \"/f\"\nreader = \"tesseract\"",
            "recognizer.reader",
        ),
        (
            "watch_dir = \"/f\"\ngroup_gap_ms = 0",
            "recognizer.group_gap_ms",
        ),
        (
            "watch_dir = \"/f\"\ngroup_gap_ms = 5000\ngroup_window_ms = 1000",
            "recognizer.group_window_ms",
        ),
        ("watch_dir = \"/f\"\nsave = \"video\"", "save"),
        ("watch_dir = \"/f\"\nbogus = 1", "bogus"),
        ("threads = 1", "watch_dir"),
    ];
    for (lines, setting) in cases {
        let e = Config::parse(&format!("{MINIMAL}\n[recognizer]\n{lines}\n")).unwrap_err();
        assert!(e.to_string().contains(setting), "{lines}: {e}");
    }
}

/// A key or certificate the media directory holds could be requested by anyone who may
/// request files: refused at load, as written or through a symlinked path.
#[test]
fn a_key_or_certificate_inside_the_media_directory_is_refused() {
    for (from, to, setting) in [
        (
            "key_file = \"/etc/anpr/key.pem\"",
            "key_file = \"/var/lib/anpr/media/keys/key.pem\"",
            "mqtt.key_file",
        ),
        (
            "cert_file = \"/etc/anpr/cert.pem\"",
            "cert_file = \"/var/lib/anpr/media/cert.pem\"",
            "mqtt.cert_file",
        ),
    ] {
        assert!(MINIMAL.contains(from));
        let e = Config::parse(&MINIMAL.replace(from, to)).unwrap_err();
        assert!(e.to_string().contains(setting), "{e}");
    }
    // The same directory reached through a symlink.
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    std::fs::write(media.join("key.pem"), "k").unwrap();
    std::os::unix::fs::symlink(&media, dir.path().join("alias")).unwrap();
    let text = MINIMAL
        .replace("/var/lib/anpr/media", &media.display().to_string())
        .replace(
            "/etc/anpr/key.pem",
            &dir.path().join("alias/key.pem").display().to_string(),
        );
    let e = Config::parse(&text).unwrap_err();
    assert!(e.to_string().contains("mqtt.key_file"), "{e}");
}

#[test]
fn an_unknown_setting_is_refused_naming_it() {
    let e = Config::parse(&format!("{MINIMAL}\nbogus = 1\n")).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn port_443_without_alpn_is_refused_with_the_fix() {
    let text = MINIMAL.replace("[mqtt]\n", "[mqtt]\nport = 443\n");
    let e = Config::parse(&text).unwrap_err();
    assert!(e.to_string().contains("mqtt.alpn"), "{e}");
    let ok = MINIMAL.replace("[mqtt]\n", "[mqtt]\nport = 443\nalpn = true\n");
    assert!(Config::parse(&ok).is_ok());
}

#[test]
fn out_of_range_values_are_refused_naming_the_setting() {
    let cases = [
        (
            "[mqtt]\n",
            "[mqtt]\nkeep_alive_secs = 5000\n",
            "mqtt.keep_alive_secs",
        ),
        (
            "[upload]\n",
            "[upload]\npart_size_bytes = 1000\n",
            "upload.part_size_bytes",
        ),
        (
            "[upload]\n",
            "[upload]\nprogress_step_pct = 0\n",
            "upload.progress_step_pct",
        ),
        (
            "camera_id = \"cam-1\"",
            "camera_id = \"cam/1\"",
            "camera_id",
        ),
    ];
    for (from, to, setting) in cases {
        let e = Config::parse(&MINIMAL.replace(from, to)).unwrap_err();
        assert!(e.to_string().contains(setting), "{setting}: {e}");
    }
}

#[test]
fn relative_paths_are_resolved_once_against_the_current_directory() {
    let text = MINIMAL
        .replace("\"/var/lib/anpr/media\"", "\"data/media\"")
        .replace("\"/etc/anpr/key.pem\"", "\"../keys/key.pem\"");
    let cwd = std::env::current_dir().unwrap();
    let c = Config::parse(&text).unwrap();
    assert_eq!(c.media_dir, cwd.join("data/media"));
    assert_eq!(c.mqtt.key_file, cwd.join("../keys/key.pem"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/anpr/state"));
    assert!(c.paths().iter().all(|(_, p)| p.is_absolute()));

    let mut built = c.clone();
    built.media_dir = PathBuf::from("media");
    let e = built.validate().unwrap_err();
    assert!(e.to_string().contains("media_dir"), "{e}");
    built.resolve_paths(Path::new("/srv/cam"));
    assert_eq!(built.media_dir, PathBuf::from("/srv/cam/media"));
    built.validate().unwrap();
}

/// The required settings of [`MINIMAL`], in code.
fn minimal_builder() -> ConfigBuilder {
    Config::builder(
        CameraId::parse("cam-1").unwrap(),
        "/var/lib/anpr/media",
        "/var/lib/anpr/state",
    )
    .mqtt(MqttSection::new(
        "abc-ats.iot.eu-west-1.amazonaws.com",
        "/etc/anpr/ca.pem",
        "/etc/anpr/cert.pem",
        "/etc/anpr/key.pem",
    ))
    .upload(UploadSection::new("media", "eu-west-1"))
    .credentials(CredentialsSection::new(
        "abc.credentials.iot.eu-west-1.amazonaws.com",
        "anpr-camera",
    ))
}

/// Every setting given, none at its default.
fn every_setting() -> Config {
    let recognizer = RecognizerSection {
        models_dir: Some("/opt/anpr/models".into()),
        threads: 3,
        min_score: 0.45,
        region: PlateRegion::Br,
        reader: ReaderKind::Plate,
        detector: DetectorKind::Plate,
        group_gap_ms: 1500,
        group_window_ms: 20_000,
        save: SaveMode::Frame,
        idle_exit_secs: 0,
        roi: Some([0, 360, 1280, 360]),
        motion: 0.03,
        max_backlog: 200,
        ..RecognizerSection::new("/var/lib/anpr/frames")
    };
    let m = minimal_builder().build().unwrap();
    minimal_builder()
        .mqtt(MqttSection {
            port: 443,
            alpn: true,
            keep_alive_secs: 600,
            session_expiry_secs: 3600,
            reconnect_initial_ms: 500,
            reconnect_max_secs: 120,
            reconnect_stable_secs: 30,
            reconnect_refused_secs: 90,
            connect_min_interval_ms: 1500,
            boot_jitter_secs: 10,
            plate_topic: Some("cam-1/plates".into()),
            ..m.mqtt
        })
        .upload(UploadSection {
            endpoint_url: Some("https://s3.example.test:9000".into()),
            force_path_style: true,
            ca_file: Some("/etc/anpr/s3-ca.pem".into()),
            multipart_threshold_bytes: 16 * 1024 * 1024,
            part_size_bytes: 6 * 1024 * 1024,
            max_bytes_per_sec: Some(262_144),
            max_file_bytes: Some(1 << 30),
            progress_step_pct: 10,
            retry_initial_secs: 2,
            retry_max_secs: 60,
            max_attempts: 7,
            ..m.upload
        })
        .credentials(CredentialsSection {
            port: 8443,
            ca_file: Some("/etc/anpr/creds-ca.pem".into()),
            ..m.credentials
        })
        .health(HealthSection {
            interval_secs: 3600,
        })
        .outbox(OutboxSection {
            batch_max_reads: 50,
            batch_max_age_secs: 5,
            drain_start_max_secs: 0,
        })
        .remote(RemoteSection {
            enabled: false,
            rollback_secs: 60,
            min_connection_change_secs: 0,
        })
        .media_quota_bytes(Some(2_000_000_000))
        .recognizer(Some(recognizer))
        .build()
        .unwrap()
}

/// The builder's defaults are the file's: one set of defaults.
#[test]
fn the_builder_with_the_required_settings_gives_what_the_minimal_file_gives() {
    assert_eq!(
        minimal_builder().build().unwrap(),
        Config::parse(MINIMAL).unwrap()
    );
    assert_eq!(
        RecognizerSection::new("/var/lib/anpr/frames"),
        toml::from_str::<RecognizerSection>("watch_dir = \"/var/lib/anpr/frames\"").unwrap()
    );
}

#[test]
fn the_builder_checks_what_the_parser_checks_and_names_a_missing_section() {
    let camera = || CameraId::parse("cam-1").unwrap();
    let e = Config::builder(camera(), "/m", "/s")
        .upload(UploadSection::new("b", "r"))
        .credentials(CredentialsSection::new("h", "a"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("`mqtt`"), "{e}");
    let e = minimal_builder()
        .outbox(OutboxSection {
            batch_max_reads: 0,
            ..OutboxSection::default()
        })
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("outbox.batch_max_reads"), "{e}");
    // Relative paths are resolved as in a file.
    let c = Config::builder(camera(), "media", "/s")
        .mqtt(MqttSection::new("h", "/ca", "/cert", "/key"))
        .upload(UploadSection::new("b", "r"))
        .credentials(CredentialsSection::new("h", "a"))
        .build()
        .unwrap();
    assert_eq!(c.media_dir, std::env::current_dir().unwrap().join("media"));
}

#[test]
fn a_config_written_as_its_file_reads_back_the_same() {
    let full = every_setting();
    assert!(full.recognizer.is_some());
    for c in [Config::parse(MINIMAL).unwrap(), full] {
        let text = c.to_toml().unwrap();
        assert_eq!(Config::parse(&text).unwrap(), c, "{text}");
    }
    // Every setting is written, defaults included.
    let text = Config::parse(MINIMAL).unwrap().to_toml().unwrap();
    for line in ["keep_alive_secs = 1200", "[outbox]", "enabled = true"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    // A score as written by a person, not as the f64 of an f32.
    let text = every_setting().to_toml().unwrap();
    assert!(text.contains("\nmin_score = 0.45\n"), "{text}");
}
