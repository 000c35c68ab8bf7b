use super::*;

const NOW: u64 = 1_764_086_400_000;

fn read(i: u64) -> PlateRead {
    PlateRead {
        id: ReadId::parse(&format!("r{i:06}")).unwrap(),
        t: NOW + i,
        p: format!("AB{i:04}"),
        c: 90,
        img: None,
        bb: None,
    }
}

fn cfg() -> OutboxConfig {
    OutboxConfig {
        max_bytes: 64 * 1024,
        segment_bytes: 4 * 1024,
        batch_max_reads: 10,
        batch_max_age_ms: 1000,
        batch_max_bytes: MAX_MQTT_PAYLOAD,
        sync: SyncPolicy::EveryAppend,
    }
}

fn ids(b: &Batch) -> Vec<String> {
    let batch: PlateReadBatch = anpr_protocol::decode(&b.payload).unwrap();
    batch.r.into_iter().map(|r| r.id.to_string()).collect()
}

#[test]
fn read_ids_are_twelve_url_safe_characters_and_distinct() {
    let a: std::collections::HashSet<String> =
        (0..10_000).map(|_| new_read_id().to_string()).collect();
    assert_eq!(a.len(), 10_000);
    assert!(a.iter().all(|s| s.len() == 12));
}

#[test]
fn a_batch_is_due_by_count_or_by_age_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    for i in 0..3 {
        ob.append(read(i)).unwrap();
    }
    assert!(
        ob.next_batch(NOW + 500).is_none(),
        "3 young reads are not due"
    );
    let b = ob.next_batch(NOW + 1000).expect("due by age");
    assert_eq!(ids(&b), ["r000000", "r000001", "r000002"]);
    for i in 3..25 {
        ob.append(read(i)).unwrap();
    }
    let b2 = ob.next_batch(NOW).expect("due by count");
    assert_eq!(b2.count, 10);
    let b3 = ob.next_batch(NOW).expect("due by count");
    assert_eq!(ids(&b3)[0], "r000013");
    assert!(ob.next_batch(NOW).is_none(), "2 young reads left");
    assert_eq!(ob.depth(), 25);
}

#[test]
fn a_batch_leaves_only_when_acked_and_older_batches_are_acked_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    for i in 0..20 {
        ob.append(read(i)).unwrap();
    }
    let b1 = ob.next_batch(NOW).unwrap();
    let b2 = ob.next_batch(NOW).unwrap();
    ob.ack(b2.seq).unwrap();
    assert_eq!(ob.depth(), 20, "b1 is not acked yet");
    drop(ob);
    // Crash: both batches come back (b2 too, the position never passed b1).
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(ob.depth(), 20);
    let again = ob.next_batch(NOW).unwrap();
    assert_eq!(ids(&again), ids(&b1));
    ob.ack(again.seq).unwrap();
    assert_eq!(ob.depth(), 10);
    let b2again = ob.next_batch(NOW).unwrap();
    assert_eq!(ids(&b2again), ids(&b2));
    ob.ack(b2again.seq).unwrap();
    ob.ack(b2again.seq).unwrap();
    assert_eq!(ob.depth(), 0);
    assert!(matches!(ob.ack(9999), Err(OutboxError::UnknownBatch(9999))));
    drop(ob);
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(ob.depth(), 0);
    assert!(ob.next_batch(NOW + 10_000).is_none());
    ob.append(read(100)).unwrap();
    let b = ob.next_batch(NOW + 10_000).unwrap();
    assert_eq!(ids(&b), ["r000100"]);
}

#[test]
fn batches_never_exceed_the_byte_limit_and_carry_exactly_the_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.batch_max_bytes = 1024;
    c.batch_max_reads = 1000;
    let mut ob = Outbox::open(dir.path(), c).unwrap();
    let mut all = Vec::new();
    for i in 0..200 {
        ob.append(read(i)).unwrap();
        all.push(read(i));
    }
    let mut got = Vec::new();
    while let Some(b) = ob.next_batch(NOW) {
        assert!(b.payload.len() <= 1024, "{}", b.payload.len());
        let batch: PlateReadBatch = anpr_protocol::decode(&b.payload).unwrap();
        assert_eq!(b.payload, encode(&batch).unwrap());
        got.extend(batch.r);
        ob.ack(b.seq).unwrap();
    }
    // The last partial batch is due by age only.
    if let Some(b) = ob.next_batch(NOW + 10_000) {
        let batch: PlateReadBatch = anpr_protocol::decode(&b.payload).unwrap();
        got.extend(batch.r);
    }
    assert_eq!(got, all);
}

#[test]
fn when_full_the_oldest_reads_are_dropped_and_counted_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let c = OutboxConfig {
        max_bytes: 8 * 1024,
        segment_bytes: 1024,
        sync: SyncPolicy::OnDemand,
        ..cfg()
    };
    let mut ob = Outbox::open(dir.path(), c.clone()).unwrap();
    let n = 1000;
    for i in 0..n {
        ob.append(read(i)).unwrap();
    }
    assert!(ob.disk_bytes() <= 8 * 1024);
    assert!(ob.dropped() > 0);
    assert_eq!(
        ob.depth() + ob.dropped(),
        n,
        "every read is queued or counted"
    );
    // The queue holds the newest reads, in order.
    let mut got = Vec::new();
    while let Some(b) = ob.next_batch(NOW + 10_000_000) {
        got.extend(ids(&b));
    }
    assert_eq!(got.last().unwrap(), &format!("r{:06}", n - 1));
    assert_eq!(got.len() as u64, ob.depth());
    let dropped = ob.dropped();
    drop(ob);
    let ob = Outbox::open(dir.path(), c).unwrap();
    assert_eq!(ob.dropped(), dropped);
}

#[test]
fn a_torn_tail_is_cut_at_open_and_earlier_reads_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    for i in 0..5 {
        ob.append(read(i)).unwrap();
    }
    drop(ob);
    let seg = segment_path(dir.path(), 0);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(br#"{"id":"r000005","t":17640"#).unwrap();
    drop(f);
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(ob.depth(), 5);
    ob.append(read(6)).unwrap();
    let b = ob.next_batch(NOW + 10_000).unwrap();
    assert_eq!(
        ids(&b),
        [
            "r000000", "r000001", "r000002", "r000003", "r000004", "r000006"
        ]
    );
}

/// Overwrites line `n` (0-based) of segment 0 with garbage of the same length.
fn corrupt_line(dir: &Path, n: usize) {
    let seg = segment_path(dir, 0);
    let mut data = std::fs::read(&seg).unwrap();
    let start = data
        .split(|&b| b == b'\n')
        .take(n)
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let end = start + data[start..].iter().position(|&b| b == b'\n').unwrap();
    data[start..end].fill(b'#');
    std::fs::write(&seg, data).unwrap();
}

#[test]
fn a_corrupt_middle_line_keeps_the_reads_after_it_and_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    for i in 0..8 {
        ob.append(read(i)).unwrap();
    }
    drop(ob);
    corrupt_line(dir.path(), 3);
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(ob.depth(), 7, "the seven good reads are queued");
    ob.append(read(8)).unwrap();
    let b = ob.next_batch(NOW + 10_000).unwrap();
    assert_eq!(
        ids(&b),
        [
            "r000000", "r000001", "r000002", "r000004", "r000005", "r000006", "r000007", "r000008"
        ]
    );
    assert_eq!(b.count, 8);
    // A new session hands the same batch out again: the bad line is not counted twice.
    ob.reset_in_flight();
    let again = ob.next_batch(NOW + 10_000).unwrap();
    assert_eq!(ids(&again), ids(&b));
    assert_eq!(ob.dropped(), 0, "counted when the position passes it");
    ob.ack(again.seq).unwrap();
    assert_eq!((ob.depth(), ob.dropped()), (0, 1));
    drop(ob);
    let ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(
        (ob.depth(), ob.dropped()),
        (0, 1),
        "counted once, persisted"
    );
}

#[test]
fn a_corrupt_state_file_resends_everything_on_disk_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    for i in 0..15 {
        ob.append(read(i)).unwrap();
    }
    let b = ob.next_batch(NOW).unwrap();
    ob.ack(b.seq).unwrap();
    assert_eq!(ob.depth(), 5);
    drop(ob);
    std::fs::write(dir.path().join(STATE_FILE), b"{\"head\":1\x00\x00").unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!(ob.state_losses(), 1, "the recovery is counted");
    assert!(dir.path().join(CORRUPT_STATE_FILE).exists(), "kept aside");
    // Conservative: the acknowledged reads still on disk are sent again, none is skipped.
    assert_eq!(ob.depth(), 15);
    let mut got = Vec::new();
    while let Some(b) = ob.next_batch(NOW + 10_000) {
        got.extend(ids(&b));
        ob.ack(b.seq).unwrap();
    }
    let all: Vec<String> = (0..15).map(|i| format!("r{i:06}")).collect();
    assert_eq!(got, all);
    drop(ob);
    let ob = Outbox::open(dir.path(), cfg()).unwrap();
    assert_eq!((ob.depth(), ob.state_losses()), (0, 1), "persisted");
}

#[test]
fn an_impossibly_large_read_is_refused_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut ob = Outbox::open(dir.path(), cfg()).unwrap();
    let mut r = read(1);
    r.p = "X".repeat(MAX_MQTT_PAYLOAD);
    assert!(matches!(
        ob.append(r),
        Err(OutboxError::ReadTooLarge { .. })
    ));
    assert_eq!(ob.depth(), 0);
}
