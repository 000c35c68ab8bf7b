use super::*;
use crate::outbox::{Outbox, OutboxConfig, new_read_id};
use std::io::BufReader;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::atomic::Ordering;
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
    ]
    .join("\n");
    let (settings_tx, settings_rx) = watch::channel(FeedSettings {
        region: anpr_protocol::PlateRegion::Auto,
        ..settings()
    });
    let (answers_tx, answers) = mpsc::channel();
    let (stop_tx, stop) = watch::channel(false);
    read_commands(input.as_bytes(), &settings_tx, &answers_tx, &stop_tx);
    assert_eq!(*settings_rx.borrow(), settings());
    assert_eq!(answers.try_recv(), Ok(Ok(())));
    assert_eq!(answers.try_recv(), Ok(Err("disk full".into())));
    assert!(answers.try_recv().is_err(), "nothing else was an answer");
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
        read_commands(BufReader::new(r), &settings_tx, &answers_tx, &stop_tx);
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
        let mut sink = LinkSink::new(&mut out, answers);
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
        .map(|FromFeed::Read { read }| read.p.as_str())
        .collect();
    assert_eq!(plates, ["AB123CD", "XY999ZZ", "GONE000"]);
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
    let mut sink = LinkSink::new(Broken, answers);
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
