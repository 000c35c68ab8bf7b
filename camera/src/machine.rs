//! The agent's decisions, pure: what to do with a file request payload, a duplicate, an
//! expiry, a resumed upload, a reconnect delay, a progress report. No I/O here: the agent loop
//! (`agent`) feeds these functions what it read and carries out what they return, so every
//! rule is unit-tested without a broker, a disk or S3.

use crate::journal::Phase;
use anpr_protocol::{FileName, FileRequest, FileStatusKind, ProtocolError, ReasonCode, RequestId};

/// A request payload that cannot be served as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The payload names a valid request id: answer it with `rejected` and this reason.
    Reject {
        /// The request id found in the payload.
        id: RequestId,
        /// Why.
        reason: ReasonCode,
        /// Detail for the log.
        detail: String,
    },
    /// No usable request id: nothing can be answered; log it (once per kind of error).
    Unanswerable {
        /// Detail for the log.
        detail: String,
    },
}

/// Parses a file request payload. On failure, tells whether it can still be answered (a valid
/// `id` was found) and with which reason code: a traversal or absolute name is
/// `forbidden_path`, anything else `bad_request`. Never panics, whatever the bytes.
pub fn parse_file_request(payload: &[u8]) -> Result<FileRequest, Refusal> {
    let err = match anpr_protocol::decode::<FileRequest>(payload) {
        Ok(req) => return Ok(req),
        Err(e) => e,
    };
    let detail = err.to_string().chars().take(200).collect::<String>();
    // Salvage the id, if the payload is a JSON object carrying a valid one.
    let value: Option<serde_json::Value> = match err {
        ProtocolError::TooLarge { .. } => None,
        _ => serde_json::from_slice(payload).ok(),
    };
    let obj = value.as_ref().and_then(serde_json::Value::as_object);
    let id = obj
        .and_then(|o| o.get("id"))
        .and_then(serde_json::Value::as_str)
        .and_then(|s| RequestId::parse(s).ok());
    let Some(id) = id else {
        return Err(Refusal::Unanswerable { detail });
    };
    let traversal = obj
        .and_then(|o| o.get("file"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|f| FileName::parse(f).is_err() && is_traversal(f));
    let reason = if traversal {
        ReasonCode::ForbiddenPath
    } else {
        ReasonCode::BadRequest
    };
    Err(Refusal::Reject { id, reason, detail })
}

/// A name that tries to leave the media directory: absolute, `..`, or backslash separators.
fn is_traversal(f: &str) -> bool {
    f.starts_with('/') || f.starts_with('\\') || f.split(['/', '\\']).any(|c| c == "..")
}

/// Most requests the camera holds unfinished (accepted or uploading) at once. A new request
/// beyond it is rejected `busy`: the job queue is bounded, so no one can queue unlimited
/// uploads over a metered link (the cloud has its own, lower, per-camera limit).
pub const MAX_OPEN_REQUESTS: usize = 32;

/// What to do with a well-formed request, given what the journal knows about its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// New and in time: journal it as accepted, answer `accepted`, then resolve and upload.
    Accept,
    /// New but past its expiry: journal and answer `expired`, upload nothing.
    Expire,
    /// Already finished: answer the final status again (the first answer may have been lost),
    /// upload nothing.
    Repeat(FileStatusKind),
    /// Already in hand (accepted or uploading): nothing to do; the upload under way answers.
    Ignore,
    /// New, but [`MAX_OPEN_REQUESTS`] are already in hand: answer `rejected` (`busy`), journal
    /// nothing (a later delivery may find room).
    Busy,
}

/// Decides on a request: duplicates never upload twice, expired requests never upload, and
/// no more than [`MAX_OPEN_REQUESTS`] are in hand (`open`: how many are now).
pub fn decide(known: Option<&Phase>, req: &FileRequest, now_secs: u64, open: usize) -> Decision {
    match known {
        Some(Phase::Done { status }) => Decision::Repeat(status.clone()),
        Some(Phase::Accepted | Phase::Uploading { .. }) => Decision::Ignore,
        None if now_secs > req.exp => Decision::Expire,
        None if open >= MAX_OPEN_REQUESTS => Decision::Busy,
        None => Decision::Accept,
    }
}

/// Decides on an entry found in the journal at start: unfinished work resumes (an upload
/// under way is finished even if the request has expired since, because its bytes are
/// already paid for, and the cloud may still accept it; a merely accepted one past its
/// expiry is answered `expired`).
pub fn recover(phase: &Phase, req: &FileRequest, now_secs: u64) -> Option<FileStatusKind> {
    match phase {
        Phase::Accepted if now_secs > req.exp => Some(FileStatusKind::Expired),
        _ => None,
    }
}

/// How a file of `size` bytes is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One PUT with its SHA-256.
    Single,
    /// Multipart with `parts` parts of `part_size` bytes (the last one shorter).
    Multipart {
        /// Bytes per part.
        part_size: u64,
        /// Number of parts.
        parts: u32,
    },
}

/// Chooses single or multipart. A resumed upload keeps the part size it started with.
pub fn plan(size: u64, threshold: u64, part_size: u64, resumed_part_size: Option<u64>) -> Plan {
    if size < threshold && resumed_part_size.is_none() {
        return Plan::Single;
    }
    let part_size = resumed_part_size.unwrap_or(part_size).max(1);
    let parts = size.div_ceil(part_size).max(1);
    Plan::Multipart {
        part_size,
        parts: u32::try_from(parts).unwrap_or(u32::MAX),
    }
}

/// The part numbers (1-based) still to send, given those already confirmed.
pub fn parts_to_send(parts: u32, done: &[i32]) -> Vec<i32> {
    (1..=parts)
        .filter_map(|n| i32::try_from(n).ok())
        .filter(|n| !done.contains(n))
        .collect()
}

/// Byte range `(offset, len)` of part `n` (1-based).
pub fn part_range(size: u64, part_size: u64, n: i32) -> (u64, u64) {
    let idx = u64::try_from(n.max(1) - 1).unwrap_or(0);
    let off = idx.saturating_mul(part_size).min(size);
    (off, part_size.min(size - off))
}

/// Emits a progress percentage only when it has advanced by at least `step` since the last
/// one reported (each status message costs money), never 100 (`uploaded` says that).
#[derive(Debug, Clone)]
pub struct ProgressGate {
    step: u8,
    last: u8,
}

impl ProgressGate {
    /// A gate reporting every `step` percent, starting from `already` percent done.
    pub fn new(step: u8, already: u8) -> Self {
        Self {
            step: step.max(1),
            last: already,
        }
    }

    /// The percentage to report after `done` of `total` bytes, if one is due.
    pub fn update(&mut self, done: u64, total: u64) -> Option<u8> {
        let pct = percent(done, total);
        if pct >= 100 || pct < self.last.saturating_add(self.step) {
            return None;
        }
        self.last = pct;
        Some(pct)
    }
}

/// `done` of `total` as 0..=100.
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    u8::try_from((u128::from(done.min(total)) * 100 / u128::from(total)).min(100)).unwrap_or(100)
}

/// Exponential back-off with full jitter, capped: the `attempt`-th delay (0-based) is uniform
/// in `[base/2, base]` with `base = min(initial * 2^attempt, max)`. `unit` is a random number
/// in `[0, 1)` supplied by the caller, so this stays pure.
pub fn backoff_ms(initial_ms: u64, max_ms: u64, attempt: u32, unit: f64) -> u64 {
    let base = initial_ms
        .saturating_mul(1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX))
        .min(max_ms);
    let half = base / 2;
    let span = base - half;
    // Truncation is the intent: a delay in whole milliseconds.
    half + ((span as f64) * unit.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::DonePart;

    fn req(exp: u64) -> FileRequest {
        FileRequest {
            id: RequestId::parse("01JDQ2Y7ZK8M3W5T0G9H4N6P2R").unwrap(),
            file: FileName::parse("clips/a.mp4").unwrap(),
            at: 100,
            exp,
        }
    }

    #[test]
    fn a_new_request_in_time_is_accepted() {
        assert_eq!(decide(None, &req(200), 150, 0), Decision::Accept);
    }

    #[test]
    fn a_new_request_beyond_the_open_limit_is_busy_but_duplicates_are_still_answered() {
        let n = MAX_OPEN_REQUESTS;
        assert_eq!(decide(None, &req(200), 150, n - 1), Decision::Accept);
        assert_eq!(decide(None, &req(200), 150, n), Decision::Busy);
        assert_eq!(
            decide(Some(&Phase::Accepted), &req(200), 150, n),
            Decision::Ignore
        );
    }

    #[test]
    fn a_request_past_its_expiry_is_expired_not_uploaded() {
        assert_eq!(decide(None, &req(200), 201, 0), Decision::Expire);
    }

    #[test]
    fn a_duplicate_of_a_finished_request_repeats_its_status_and_uploads_nothing() {
        let done = Phase::Done {
            status: FileStatusKind::Uploaded { size: 9 },
        };
        assert_eq!(
            decide(Some(&done), &req(200), 150, 0),
            Decision::Repeat(FileStatusKind::Uploaded { size: 9 })
        );
        // Even once it has expired: the journal wins over the clock.
        assert_eq!(
            decide(Some(&done), &req(200), 999, 0),
            Decision::Repeat(FileStatusKind::Uploaded { size: 9 })
        );
    }

    #[test]
    fn a_duplicate_of_a_request_in_hand_is_a_no_op() {
        let up = Phase::Uploading {
            multipart: None,
            size: 10,
        };
        assert_eq!(
            decide(Some(&Phase::Accepted), &req(200), 150, 0),
            Decision::Ignore
        );
        assert_eq!(decide(Some(&up), &req(200), 150, 0), Decision::Ignore);
    }

    #[test]
    fn at_start_an_accepted_request_past_expiry_is_expired_and_an_upload_under_way_resumes() {
        assert_eq!(
            recover(&Phase::Accepted, &req(200), 300),
            Some(FileStatusKind::Expired)
        );
        assert_eq!(recover(&Phase::Accepted, &req(200), 150), None);
        let up = Phase::Uploading {
            multipart: None,
            size: 10,
        };
        assert_eq!(recover(&up, &req(200), 300), None);
    }

    #[test]
    fn small_files_go_in_one_put_and_large_ones_in_parts() {
        let mib = 1024 * 1024;
        assert_eq!(plan(mib, 8 * mib, 8 * mib, None), Plan::Single);
        assert_eq!(
            plan(50 * mib, 8 * mib, 8 * mib, None),
            Plan::Multipart {
                part_size: 8 * mib,
                parts: 7
            }
        );
        // A resumed upload keeps its part size even if the configuration changed since.
        assert_eq!(
            plan(50 * mib, 8 * mib, 16 * mib, Some(5 * mib)),
            Plan::Multipart {
                part_size: 5 * mib,
                parts: 10
            }
        );
    }

    #[test]
    fn a_resume_sends_only_the_parts_not_confirmed() {
        let done: Vec<DonePart> = [1, 2, 4]
            .iter()
            .map(|&n| DonePart {
                n,
                etag: format!("e{n}"),
                sha256: String::new(),
            })
            .collect();
        let nums: Vec<i32> = done.iter().map(|p| p.n).collect();
        assert_eq!(parts_to_send(5, &nums), vec![3, 5]);
        assert_eq!(part_range(12, 5, 1), (0, 5));
        assert_eq!(part_range(12, 5, 3), (10, 2));
    }

    #[test]
    fn progress_is_reported_every_step_and_never_per_chunk() {
        let mut g = ProgressGate::new(25, 0);
        let reported: Vec<u8> = (0..=100u64).filter_map(|d| g.update(d, 100)).collect();
        assert_eq!(reported, vec![25, 50, 75]);
        let mut g = ProgressGate::new(25, 60);
        assert_eq!(g.update(70, 100), None);
        assert_eq!(g.update(85, 100), Some(85));
    }

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff_ms(1000, 300_000, 0, 1.0), 1000);
        assert_eq!(backoff_ms(1000, 300_000, 0, 0.0), 500);
        assert_eq!(backoff_ms(1000, 300_000, 3, 1.0), 8000);
        assert_eq!(backoff_ms(1000, 300_000, 30, 1.0), 300_000);
        assert_eq!(backoff_ms(1000, 300_000, 200, 0.5), 225_000);
        let d = backoff_ms(1000, 300_000, 2, 0.25);
        assert!((2000..=4000).contains(&d), "{d}");
    }

    #[test]
    fn a_traversal_name_is_rejected_as_forbidden_and_a_bad_type_as_bad_request() {
        let id = "01JDQ2Y7ZK8M3W5T0G9H4N6P2R";
        let p = format!(r#"{{"v":1,"id":"{id}","file":"../etc/passwd","at":1,"exp":2}}"#);
        match parse_file_request(p.as_bytes()) {
            Err(Refusal::Reject { reason, .. }) => assert_eq!(reason, ReasonCode::ForbiddenPath),
            other => panic!("{other:?}"),
        }
        let p = format!(r#"{{"v":1,"id":"{id}","file":"/etc/passwd","at":1,"exp":2}}"#);
        assert!(matches!(
            parse_file_request(p.as_bytes()),
            Err(Refusal::Reject {
                reason: ReasonCode::ForbiddenPath,
                ..
            })
        ));
        let p = format!(r#"{{"v":1,"id":"{id}","file":"a.mp4","at":"soon","exp":2}}"#);
        assert!(matches!(
            parse_file_request(p.as_bytes()),
            Err(Refusal::Reject {
                reason: ReasonCode::BadRequest,
                ..
            })
        ));
        assert!(matches!(
            parse_file_request(b"\xff\xfe{not json"),
            Err(Refusal::Unanswerable { .. })
        ));
        assert!(matches!(
            parse_file_request(br#"{"v":1,"id":"../x","file":"a"}"#),
            Err(Refusal::Unanswerable { .. })
        ));
    }

    /// Deterministic random-bytes run over the parser (the fallback for `cargo fuzz`, which is
    /// not installed here): random bytes, and random mutations of a valid request, never panic
    /// and a refusal always carries a valid id or none.
    #[test]
    fn the_request_parser_survives_200000_random_and_mutated_payloads() {
        let valid =
            br#"{"v":1,"id":"01JDQ2Y7ZK8M3W5T0G9H4N6P2R","file":"clips/a b.mp4","at":1,"exp":2}"#;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut ok, mut rejected, mut unanswerable) = (0u32, 0u32, 0u32);
        for i in 0..200_000u32 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let len = usize::try_from(next() % 160).unwrap();
                (0..len).map(|_| next().to_le_bytes()[0]).collect()
            } else {
                let mut b = valid.to_vec();
                for _ in 0..=(next() % 4) {
                    let at = usize::try_from(next()).unwrap() % b.len();
                    match next() % 3 {
                        0 => b[at] = next().to_le_bytes()[0],
                        1 => {
                            b.remove(at);
                        }
                        _ => b.insert(at, next().to_le_bytes()[0]),
                    }
                }
                b
            };
            match parse_file_request(&bytes) {
                Ok(r) => {
                    ok += 1;
                    assert!(FileName::parse(r.file.as_str()).is_ok());
                }
                Err(Refusal::Reject { id, .. }) => {
                    rejected += 1;
                    assert!(RequestId::parse(id.as_str()).is_ok());
                }
                Err(Refusal::Unanswerable { .. }) => unanswerable += 1,
            }
        }
        // The mutations reach every outcome (the run is not vacuous).
        assert!(
            ok > 0 && rejected > 0 && unanswerable > 0,
            "{ok} {rejected} {unanswerable}"
        );
    }
}
