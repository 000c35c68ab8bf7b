use super::*;
use crate::outbox::{Outbox, OutboxConfig, new_read_id};
use std::io::BufReader;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn read(p: &str) -> PlateRead {
    PlateRead {
        id: new_read_id(),
        t: 1_764_086_400_123,
        p: p.into(),
        c: 97,
        img: None,
        bb: Some([1, 2, 3, 4]),
    }
}

fn settings() -> FeedSettings {
    FeedSettings {
        min_score: 0.5,
        region: anpr_protocol::PlateRegion::Br,
        group_gap_ms: 500,
        group_window_ms: 4000,
        media_quota_bytes: Some(1_000_000),
    }
}

/// A sink that keeps what it is given, or refuses everything.
#[derive(Debug, Default)]
struct Kept {
    reads: Vec<PlateRead>,
    refuse: bool,
}

impl ReadSink for Kept {
    fn append(&mut self, read: PlateRead) -> Result<(), SinkError> {
        if self.refuse {
            return Err(SinkError::Refused("disk full".into()));
        }
        self.reads.push(read);
        Ok(())
    }
    fn finish(&mut self) {}
}

#[test]
fn every_message_is_one_line_and_reads_back_the_same() {
    let msgs = [
        ToFeed::Settings(settings()),
        ToFeed::Ack,
        ToFeed::Refused {
            error: "two\nlines".into(),
        },
        ToFeed::Stop,
        ToFeed::WantCounts,
    ];
    for m in msgs {
        let l = line(&m).unwrap();
        assert_eq!(l.iter().filter(|b| **b == b'\n').count(), 1, "{m:?}");
        assert_eq!(l.last(), Some(&b'\n'));
        assert_eq!(serde_json::from_slice::<ToFeed>(&l).unwrap(), m);
    }
    let r = FromFeed::Read {
        read: read("AB123CD"),
    };
    let l = line(&r).unwrap();
    assert_eq!(serde_json::from_slice::<FromFeed>(&l).unwrap(), r);
    assert!(
        String::from_utf8(l)
            .unwrap()
            .starts_with(r#"{"is":"read","read":{"#)
    );
    let c = FromFeed::Counts(FeedCounts {
        still: 3,
        dropped: 2,
        ..FeedCounts::default()
    });
    let l = line(&c).unwrap();
    assert_eq!(l, b"{\"is\":\"counts\",\"still\":3,\"dropped\":2}\n");
    assert_eq!(serde_json::from_slice::<FromFeed>(&l).unwrap(), c);
    assert_eq!(
        line(&ToFeed::WantCounts).unwrap(),
        b"{\"do\":\"want_counts\"}\n"
    );
}

#[test]
fn the_command_reader_routes_settings_answers_and_stop_and_skips_what_is_not_a_command() {
    let input = [
        r#"{"do":"settings","min_score":0.5,"region":"br","group_gap_ms":500,"group_window_ms":4000,"media_quota_bytes":1000000}"#,
        "not json",
        r#"{"do":"launch"}"#,
        "",
        r#"{"do":"ack"}"#,
        r#"{"do":"refused","error":"disk full"}"#,
        r#"{"do":"want_counts"}"#,
    ]
    .join("\n");
    let (settings_tx, settings_rx) = watch::channel(FeedSettings {
        region: anpr_protocol::PlateRegion::Auto,
        ..settings()
    });
    let (answers_tx, answers) = mpsc::channel();
    let (stop_tx, stop) = watch::channel(false);
    let wanted = AtomicBool::new(false);
    read_commands(
        input.as_bytes(),
        &settings_tx,
        &answers_tx,
        &wanted,
        &stop_tx,
    );
    assert_eq!(*settings_rx.borrow(), settings());
    assert_eq!(answers.try_recv(), Ok(Ok(())));
    assert_eq!(answers.try_recv(), Ok(Err("disk full".into())));
    assert!(answers.try_recv().is_err(), "nothing else was an answer");
    assert!(wanted.load(Ordering::SeqCst), "the agent takes the counts");
    // The end of the input is a stop: a feed whose agent died stops.
    assert!(*stop.borrow());
}

#[test]
fn a_stop_command_stops_the_feed_before_its_input_ends() {
    let (settings_tx, _s) = watch::channel(settings());
    let (answers_tx, _a) = mpsc::channel();
    let (stop_tx, mut stop) = watch::channel(false);
    let (r, mut w) = std::io::pipe().unwrap();
    let reader = std::thread::spawn(move || {
        let wanted = AtomicBool::new(false);
        read_commands(
            BufReader::new(r),
            &settings_tx,
            &answers_tx,
            &wanted,
            &stop_tx,
        );
    });
    w.write_all(b"{\"do\":\"stop\"}\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), stop.wait_for(|s| *s))
            .await
            .expect("stopped while the pipe is still open")
            .unwrap();
    });
    drop(w);
    reader.join().unwrap();
}

#[test]
fn a_read_is_handed_over_only_once_the_agent_answers() {
    let (answers_tx, answers) = mpsc::channel();
    let mut out = Vec::new();
    {
        let mut sink = LinkSink::new(&mut out, answers, Arc::default());
        answers_tx.send(Ok(())).unwrap();
        sink.append(read("AB123CD")).unwrap();
        answers_tx.send(Err("disk full".into())).unwrap();
        match sink.append(read("XY999ZZ")) {
            Err(SinkError::Refused(e)) => assert_eq!(e, "disk full"),
            other => panic!("{other:?}"),
        }
        drop(answers_tx);
        // No answer will come: the agent is gone, the feed must keep the frames.
        assert!(matches!(
            sink.append(read("GONE000")),
            Err(SinkError::Gone(_))
        ));
    }
    let lines: Vec<FromFeed> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let plates: Vec<_> = lines
        .iter()
        .map(|m| match m {
            FromFeed::Read { read } => read.p.as_str(),
            FromFeed::Counts(c) => panic!("counts to an agent that did not ask: {c:?}"),
        })
        .collect();
    assert_eq!(plates, ["AB123CD", "XY999ZZ", "GONE000"]);
}

/// An older agent answers every line it does not know with `refused`, which the feed would
/// take for the answer to its next read: counts go only to an agent that asked for them.
#[test]
fn the_counts_go_out_only_once_the_agent_asked_and_are_never_waited_on() {
    let (answers_tx, answers) = mpsc::channel::<Result<(), String>>();
    let wanted = Arc::new(AtomicBool::new(false));
    let mut out = Vec::new();
    let counts = FeedCounts {
        still: 7,
        ..FeedCounts::default()
    };
    {
        let mut sink = LinkSink::new(&mut out, answers, wanted.clone());
        assert!(!sink.counts(counts), "not asked: kept by the feed");
        wanted.store(true, Ordering::SeqCst);
        // No answer is waited for (none will come): it returns at once.
        assert!(sink.counts(counts));
    }
    drop(answers_tx);
    assert_eq!(out, line(&FromFeed::Counts(counts)).unwrap());
    // A sink with nobody to tell (the outbox itself, in the agent's process) never takes them.
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default()).unwrap();
    let mut handle: OutboxHandle = Arc::new(Mutex::new(ob));
    assert!(!handle.counts(counts));
}

#[test]
fn the_agent_adds_up_the_counts_without_answering_them_until_the_health_report_takes_them() {
    let counts = |still, dropped| {
        String::from_utf8(
            line(&FromFeed::Counts(FeedCounts {
                still,
                dropped,
                ..FeedCounts::default()
            }))
            .unwrap(),
        )
        .unwrap()
    };
    let read_line = String::from_utf8(
        line(&FromFeed::Read {
            read: read("AB123CD"),
        })
        .unwrap(),
    )
    .unwrap();
    let input = [counts(5, 0), read_line, counts(2, 3)].concat();
    let counters = LinkCounters::default();
    let mut sink = Kept::default();
    let mut answers = Vec::new();
    serve(input.as_bytes(), &counters, &mut sink, |a| answers.push(a));
    assert_eq!(answers, [ToFeed::Ack], "the read answered, the counts not");
    assert_eq!(sink.reads.len(), 1);
    assert_eq!(counters.malformed.load(Ordering::Relaxed), 0);
    let tally = counters.feed.clone();
    assert_eq!(
        tally.take(),
        FeedCounts {
            still: 7,
            dropped: 3,
            ..FeedCounts::default()
        }
    );
    assert!(tally.take().is_zero(), "taken by the report");
    tally.add(FeedCounts {
        corrupt: 1,
        failed: u64::MAX,
        ..FeedCounts::default()
    });
    tally.add(FeedCounts {
        failed: 1,
        ..FeedCounts::default()
    });
    let t = tally.take();
    assert_eq!(
        (t.corrupt, t.failed),
        (1, u64::MAX),
        "saturating, never wrapping"
    );
}

#[test]
fn a_broken_pipe_to_the_agent_is_gone_not_refused() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl std::fmt::Debug for Broken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Broken")
        }
    }
    let (_tx, answers) = mpsc::channel();
    let mut sink = LinkSink::new(Broken, answers, Arc::default());
    assert!(matches!(
        sink.append(read("AB123CD")),
        Err(SinkError::Gone(_))
    ));
}

#[test]
fn the_agent_queues_each_read_and_answers_each_line_even_one_that_is_not_a_read() {
    let input = [
        String::from_utf8(
            line(&FromFeed::Read {
                read: read("AB123CD"),
            })
            .unwrap(),
        )
        .unwrap(),
        "{\"is\":\"video\"}\n".into(),
        "garbage\n".into(),
        String::from_utf8(
            line(&FromFeed::Read {
                read: read("XY999ZZ"),
            })
            .unwrap(),
        )
        .unwrap(),
    ]
    .concat();
    let counters = LinkCounters::default();
    let mut sink = Kept::default();
    let mut answers = Vec::new();
    serve(input.as_bytes(), &counters, &mut sink, |a| answers.push(a));
    let plates: Vec<_> = sink.reads.iter().map(|r| r.p.as_str()).collect();
    assert_eq!(plates, ["AB123CD", "XY999ZZ"]);
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers[0], ToFeed::Ack);
    assert!(matches!(answers[1], ToFeed::Refused { .. }));
    assert!(matches!(answers[2], ToFeed::Refused { .. }));
    assert_eq!(answers[3], ToFeed::Ack);
    assert_eq!(counters.reads.load(Ordering::Relaxed), 2);
    assert_eq!(counters.malformed.load(Ordering::Relaxed), 2);

    let mut full = Kept {
        refuse: true,
        ..Kept::default()
    };
    let mut answers = Vec::new();
    let one = line(&FromFeed::Read {
        read: read("AB123CD"),
    })
    .unwrap();
    serve(&one[..], &counters, &mut full, |a| answers.push(a));
    assert_eq!(
        answers,
        [ToFeed::Refused {
            error: "the outbox refused the read: disk full".into()
        }]
    );
    assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
}

#[test]
fn a_read_queued_through_the_outbox_sink_is_on_disk_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default()).unwrap();
    let mut handle: OutboxHandle = Arc::new(Mutex::new(ob));
    handle.append(read("AB123CD")).unwrap();
    handle.finish();
    drop(handle);
    let again = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default()).unwrap();
    assert_eq!(again.depth(), 1);
}

#[test]
fn a_feed_that_keeps_dying_is_restarted_later_and_later_up_to_a_minute() {
    let mut b = Backoff::default();
    let quick = Duration::from_millis(10);
    let delays: Vec<u64> = (0..8).map(|_| b.after_death(quick).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    // One that ran for a minute starts over.
    assert_eq!(b.after_death(Duration::from_secs(60)).as_secs(), 1);
    b.after_death(quick);
    b.reset();
    assert_eq!(b.after_death(quick).as_secs(), 1);
}

#[test]
fn an_exit_status_says_whether_to_wait_for_frames_give_up_or_restart() {
    let code = |c: i32| std::process::ExitStatus::from_raw(c << 8);
    assert_eq!(Ending::of(code(0)), Ending::Idle);
    assert_eq!(Ending::of(code(EXIT_CANNOT_START)), Ending::CannotStart);
    assert_eq!(Ending::of(code(1)), Ending::Died);
    assert_eq!(Ending::of(code(101)), Ending::Died, "a panic");
    // Killed by SIGKILL (no exit code).
    assert_eq!(
        Ending::of(std::process::ExitStatus::from_raw(9)),
        Ending::Died
    );
}

#[test]
fn the_feed_program_is_looked_for_next_to_the_agent() {
    assert_eq!(
        program_next_to(Path::new("/usr/bin/anpr-camera")),
        Path::new("/usr/bin/anpr-frames")
    );
}
