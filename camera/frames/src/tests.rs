use super::*;
use anpr_recognizer::BBox;

fn ff(name: &str, size: u64, mtime_ms: u64) -> FrameFile {
    FrameFile {
        name: name.into(),
        size,
        mtime_ns: u128::from(mtime_ms) * 1_000_000,
    }
}

fn names(v: &[FrameFile]) -> Vec<&str> {
    v.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn only_jpeg_frames_are_taken_never_temporary_or_hidden_files() {
    for ok in ["a.jpg", "B.JPG", "c.jpeg", "2026-11-25T10:00:00.123.jpg"] {
        assert!(is_frame_name(ok), "{ok}");
    }
    for no in ["a.jpg.tmp", "a.tmp", ".a.jpg", "a.png", "a.jpg.part", "jpg"] {
        assert!(!is_frame_name(no), "{no}");
    }
}

#[test]
fn a_frame_still_being_written_waits_until_it_stops_changing() {
    let mut w = Watch::default();
    let none = HashSet::new();
    // Written just now, growing.
    assert!(
        w.observe(vec![ff("a.jpg", 10, 1000)], 1000, &none)
            .is_empty()
    );
    assert!(
        w.observe(vec![ff("a.jpg", 20, 1200)], 1200, &none)
            .is_empty()
    );
    assert!(
        w.observe(vec![ff("a.jpg", 20, 1200)], 1400, &none)
            .is_empty()
    );
    // Unchanged for SETTLE_MS since 1200.
    let r = w.observe(vec![ff("a.jpg", 20, 1200)], 1200 + SETTLE_MS, &none);
    assert_eq!(names(&r), ["a.jpg"]);
}

#[test]
fn an_empty_file_is_never_taken_and_an_old_one_is_taken_at_once() {
    let mut w = Watch::default();
    let none = HashSet::new();
    let r = w.observe(
        vec![ff("empty.jpg", 0, 0), ff("old.jpg", 5, 0)],
        60_000,
        &none,
    );
    assert_eq!(names(&r), ["old.jpg"]);
}

#[test]
fn a_frame_with_a_clock_skewed_future_mtime_is_taken_once_it_stops_changing() {
    let mut w = Watch::default();
    let none = HashSet::new();
    let future = 10_000_000;
    assert!(
        w.observe(vec![ff("f.jpg", 5, future)], 1000, &none)
            .is_empty()
    );
    let r = w.observe(vec![ff("f.jpg", 5, future)], 1000 + SETTLE_MS, &none);
    assert_eq!(names(&r), ["f.jpg"]);
}

#[test]
fn frames_are_taken_in_mtime_then_name_order_and_taken_ones_are_skipped() {
    let mut w = Watch::default();
    let taken = HashSet::from(["held.jpg".to_owned()]);
    let r = w.observe(
        vec![
            ff("c.jpg", 5, 300),
            ff("b.jpg", 5, 100),
            ff("a.jpg", 5, 300),
            ff("held.jpg", 5, 50),
            ff("z.jpg.tmp", 5, 10),
        ],
        60_000,
        &taken,
    );
    assert_eq!(names(&r), ["b.jpg", "a.jpg", "c.jpg"]);
}

fn read(text: &str, confidence: f32) -> PlateRead {
    PlateRead {
        text: text.into(),
        confidence,
        bbox: BBox::new(100.4, 50.6, 80.0, 20.0),
        char_confidences: vec![confidence; text.len()],
        format: None,
        raw_text: text.into(),
        confirmed: false,
    }
}

fn held(name: &str, at_ms: u64) -> HeldFrame {
    HeldFrame {
        file: ff(name, 5, at_ms),
        at_ms,
        reads: vec![read("ABC1234", 0.9)],
    }
}

#[test]
fn held_frames_are_released_once_no_open_group_can_need_them() {
    let mut h = vec![held("a", 100), held("b", 200), held("c", 300)];
    assert!(release(&mut h, Some(100)).is_empty());
    let gone = release(&mut h, Some(300));
    assert_eq!(gone.len(), 2);
    assert_eq!(h.len(), 1);
    assert_eq!(release(&mut h, None).len(), 1);
    assert!(h.is_empty());
}

#[test]
fn the_grouper_and_release_together_keep_a_passage_s_frames_until_its_read_is_out() {
    // The decisions the feed makes, without the files: three frames of one car, then
    // silence.
    let mut g = TemporalGrouper::new(1000, 30_000);
    let mut h = Vec::new();
    let mut out = Vec::new();
    for (name, t, c) in [("1.jpg", 0, 0.6), ("2.jpg", 200, 0.9), ("3.jpg", 400, 0.7)] {
        let reads = vec![read("ABC1234", c)];
        out.extend(g.push(t, &reads));
        h.push(HeldFrame {
            file: ff(name, 5, t),
            at_ms: t,
            reads,
        });
        assert!(
            release(&mut h, g.oldest_open_ms()).is_empty(),
            "kept while open"
        );
    }
    out.extend(g.close_due(2000));
    assert_eq!(out.len(), 1, "one read per passage");
    let best = h
        .iter()
        .find(|f| out[0].is_best_of(f.at_ms, &f.reads))
        .map(|f| f.file.name.clone());
    assert_eq!(
        best.as_deref(),
        Some("2.jpg"),
        "the best frame is still held"
    );
    assert_eq!(release(&mut h, g.oldest_open_ms()).len(), 3);
}

#[test]
fn the_read_id_depends_on_the_best_frame_and_text_only() {
    let a = read_id(&ff("a.jpg", 5, 100), "ABC1234");
    assert_eq!(a, read_id(&ff("a.jpg", 5, 100), "ABC1234"));
    assert_eq!(a.as_str().len(), 12);
    assert_ne!(a, read_id(&ff("a.jpg", 5, 101), "ABC1234"));
    assert_ne!(a, read_id(&ff("b.jpg", 5, 100), "ABC1234"));
    assert_ne!(a, read_id(&ff("a.jpg", 5, 100), "ABC1235"));
}

#[test]
fn a_saved_image_has_a_name_a_file_request_can_ask_for() {
    let id = read_id(&ff("a.jpg", 5, 100), "ABC1234");
    let n = media_name(1_764_086_400_123, "ABC1234", &id).unwrap();
    assert_eq!(n.as_str(), format!("reads/1764086400123-ABC1234-{id}.jpg"));
    let wire = format!(r#""{n}""#);
    let back: FileName = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, n);
    // Odd text never makes an invalid name.
    let odd = media_name(1, "../Ä b/", &id).unwrap();
    assert_eq!(odd.as_str(), format!("reads/1-b-{id}.jpg"));
    assert!(media_name(1, "", &id).is_some());
}

#[test]
fn the_crop_is_the_plate_with_a_margin_clipped_to_the_frame() {
    let b = BBox::new(100.0, 50.0, 80.0, 20.0);
    assert_eq!(crop_rect(&b, 640, 480), Some([90, 40, 100, 40]));
    let edge = BBox::new(-5.0, 470.0, 30.0, 20.0);
    assert_eq!(crop_rect(&edge, 640, 480), Some([0, 460, 35, 20]));
    assert_eq!(crop_rect(&BBox::new(700.0, 10.0, 5.0, 5.0), 640, 480), None);
    assert_eq!(
        crop_rect(&BBox::new(f32::NAN, 0.0, 5.0, 5.0), 640, 480),
        None
    );
}

#[test]
fn the_wire_read_has_the_best_read_its_time_percent_and_whole_pixel_box() {
    let g = GroupedRead {
        best: read("ABC1234", 0.876),
        best_at_ms: 1234,
        first_seen_ms: 1000,
        last_seen_ms: 1500,
        count: 3,
        voters: 3,
    };
    let id = ReadId::parse("abc").unwrap();
    let img = FileName::parse("reads/x.jpg").ok();
    let w = to_wire(&g, id.clone(), img.clone());
    assert_eq!(
        w,
        WireRead {
            id,
            t: 1234,
            p: "ABC1234".into(),
            c: 88,
            img,
            bb: Some([100, 51, 80, 20]),
        }
    );
}

/// A region or reader the recognizer does not know cannot reach it: the configuration's
/// types are the recognizer's, and the file's parser refuses other names
/// (`config::tests::bad_recognizer_settings_are_refused_naming_the_setting`).
#[test]
fn the_recognizer_gets_the_settings_of_the_section() {
    let mut s = RecognizerSection {
        models_dir: Some("/m".into()),
        threads: 2,
        min_score: 0.4,
        region: anpr_recognizer::PlateRegion::Br,
        reader: anpr_recognizer::ReaderKind::Plate,
        detector: anpr_recognizer::DetectorKind::Plate,
        group_gap_ms: 1,
        group_window_ms: 2,
        ..RecognizerSection::new("/f")
    };
    let rc = recognizer_config(&s);
    assert_eq!(
        (rc.threads, rc.min_score, rc.region, rc.models_dir),
        (
            2,
            0.4,
            anpr_recognizer::PlateRegion::Br,
            PathBuf::from("/m")
        )
    );
    assert_eq!(rc.reader, anpr_recognizer::ReaderKind::Plate);
    assert_eq!(rc.detector, anpr_recognizer::DetectorKind::Plate);
    assert_eq!(
        rc.reread_below_score,
        anpr_recognizer::RecognizerConfig::default().reread_below_score,
        "absent: the recognizer's own"
    );
    assert!(!rc.reread_each_crop, "once per passage, not every crop");
    s.reread_below = Some(0.0);
    assert_eq!(recognizer_config(&s).reread_below_score, 0.0);
    s.reader = anpr_recognizer::ReaderKind::Ppocr;
    s.detector = anpr_recognizer::DetectorKind::Ppocr;
    let rc = recognizer_config(&s);
    assert_eq!(
        (rc.reader, rc.detector),
        (
            anpr_recognizer::ReaderKind::Ppocr,
            anpr_recognizer::DetectorKind::Ppocr
        )
    );
    assert_eq!(
        rc.second_detector,
        anpr_recognizer::RecognizerConfig::default().second_detector,
        "by default, the recognizer's own"
    );
    assert_eq!(
        rc.second_detector(),
        Some(anpr_recognizer::DetectorKind::Plate)
    );
    s.second_detector = anpr_camera::config::SecondDetector::None;
    assert_eq!(recognizer_config(&s).second_detector(), None);
    assert_eq!(
        rc.confirm_reader(),
        Some(anpr_recognizer::ReaderKind::Plate),
        "by default, the recognizer's own"
    );
    s.confirm_reader = anpr_camera::config::ConfirmReader::None;
    assert_eq!(recognizer_config(&s).confirm_reader(), None);
    assert!(rc.faint_look, "on by default, as the recognizer's");
    s.faint_look = false;
    assert!(!recognizer_config(&s).faint_look);
    let own = anpr_recognizer::RecognizerConfig::default();
    assert_eq!(
        (rc.detector_max_side, rc.detector_retry_max_side),
        (own.detector_max_side, own.detector_retry_max_side),
        "by default, the recognizer's own looks"
    );
    assert_eq!(rc.finer_below_score, own.finer_below_score);
    (s.detector_side, s.finer_side, s.finer_below) = (640, 960, 0.5);
    let two_looks = recognizer_config(&s);
    assert_eq!(
        (
            two_looks.detector_max_side,
            two_looks.detector_retry_max_side,
            two_looks.finer_below_score
        ),
        (640, 960, 0.5)
    );
}

#[test]
fn the_region_of_interest_is_clamped_to_the_frame_and_the_whole_frame_without_one() {
    assert_eq!(roi_rect(None, 1280, 720), Some([0, 0, 1280, 720]));
    assert_eq!(
        roi_rect(Some([0, 360, 1280, 360]), 1280, 720),
        Some([0, 360, 1280, 360])
    );
    // A lane set for a bigger frame is cut at the frame's edge.
    assert_eq!(
        roi_rect(Some([640, 600, 1000, 1000]), 1280, 720),
        Some([640, 600, 640, 120])
    );
    // Outside the frame (a camera whose resolution changed): nothing to read.
    assert_eq!(roi_rect(Some([1280, 0, 10, 10]), 1280, 720), None);
    assert_eq!(roi_rect(Some([0, 800, 10, 10]), 1280, 720), None);
    assert_eq!(
        roi_rect(Some([u32::MAX, 0, u32::MAX, 10]), 1280, 720),
        None,
        "no overflow"
    );
}

#[test]
fn a_read_of_the_region_is_placed_back_in_frame_pixels() {
    let r = in_frame(read("AB123CD", 0.9), 0, 360);
    assert_eq!((r.bbox.x, r.bbox.y), (100.4, 410.6));
    assert_eq!((r.bbox.w, r.bbox.h), (80.0, 20.0));
    assert_eq!(r.text, "AB123CD");
}

fn frames(n: u64) -> Vec<FrameFile> {
    // Captured at 5 frames/s.
    (0..n)
        .map(|i| ff(&format!("{i:03}.jpg"), 5, i * 200))
        .collect()
}

#[test]
fn a_backlog_within_the_limit_or_without_one_is_read_whole() {
    for (n, max) in [(0, 5), (5, 5), (3, 5), (500, 0)] {
        let (read, dropped) = thin(frames(n), max);
        assert_eq!(
            (read.len() as u64, dropped.len()),
            (n, 0),
            "{n} frames, max {max}"
        );
    }
}

#[test]
fn a_backlog_beyond_the_limit_keeps_the_newest_and_every_other_older_frame_oldest_first() {
    let (read, dropped) = thin(frames(14), 10);
    // 4 over: every 2nd of them kept, from the oldest; the newest 10 all read.
    assert_eq!(names(&dropped), ["001.jpg", "003.jpg"]);
    assert_eq!(read.len(), 12);
    assert_eq!(names(&read[..3]), ["000.jpg", "002.jpg", "004.jpg"]);
    assert_eq!(read.last().unwrap().name, "013.jpg");
    let mut order = read.clone();
    order.sort_by_key(|f| f.mtime_ns);
    assert_eq!(order, read, "still in capture order");
    // One over: it is the sample.
    let (read, dropped) = thin(frames(11), 10);
    assert_eq!((read.len(), dropped.len()), (11, 0));
}

#[test]
fn however_far_behind_a_round_reads_at_most_twice_the_limit_and_samples_the_whole_excess() {
    for n in [21, 60, 199, 1000, 18_000] {
        let (read, dropped) = thin(frames(n), 10);
        assert_eq!(read.len() + dropped.len(), n as usize);
        assert!(read.len() <= 20, "{n}: {} read", read.len());
        assert!(
            dropped.len() >= (n as usize - 10) / 2,
            "{n}: at least one in two"
        );
        // The sample spans the excess evenly: no two kept frames of the excess further apart
        // than k frames, and the oldest frame is one of them.
        let excess = n as usize - 10;
        let k = excess.div_ceil(10).max(2) as u64;
        assert_eq!(read[0].name, "000.jpg");
        let sample: Vec<u64> = read
            .iter()
            .map(|f| f.mtime_ms() / 200)
            .filter(|i| *i < excess as u64)
            .collect();
        assert!(
            sample.windows(2).all(|w| w[1] - w[0] == k),
            "{n}: {sample:?}"
        );
        assert!(
            excess as u64 - 1 - sample.last().unwrap() < k,
            "{n}: up to the newest"
        );
    }
}

#[test]
fn a_frame_held_for_an_open_passage_is_neither_counted_in_the_backlog_nor_dropped() {
    // Six frames in the directory, two of them already read and held (their passage is open):
    // with a limit of 4, the four ready ones are all read.
    let mut w = Watch::default();
    let taken = HashSet::from(["000.jpg".to_owned(), "001.jpg".to_owned()]);
    let ready = w.observe(frames(6), 60_000, &taken);
    let (read, dropped) = thin(ready, 4);
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(names(&read), ["002.jpg", "003.jpg", "004.jpg", "005.jpg"]);
}

#[test]
fn the_counts_of_the_stats_are_those_of_frames_not_read() {
    let s = FeedStats {
        frames: 9,
        still: 4,
        dropped: 3,
        corrupt: 2,
        failed: 1,
        ..FeedStats::default()
    };
    assert_eq!(
        s.counts(),
        FeedCounts {
            still: 4,
            dropped: 3,
            corrupt: 2,
            failed: 1
        }
    );
}
