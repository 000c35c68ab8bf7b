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
        Some(Phase::Done { status, .. }) => Decision::Repeat(status.clone()),
        Some(Phase::Accepted | Phase::Uploading { .. }) => Decision::Ignore,
        None if now_secs > req.exp => Decision::Expire,
        None if open >= MAX_OPEN_REQUESTS => Decision::Busy,
        None => Decision::Accept,
    }
}

/// Decides on an unfinished entry found in the journal at start, and on each one the worker
/// is about to serve: a merely accepted one past its expiry is answered `expired` and no
/// upload starts (it may have waited behind other uploads); an upload under way is finished
/// even if the request has expired since (its bytes are already paid for; the cloud makes it
/// `ready` if S3 created the object before the deadline, else `expired`).
pub fn recover(phase: &Phase, req: &FileRequest, now_secs: u64) -> Option<FileStatusKind> {
    match phase {
        Phase::Accepted if now_secs > req.exp => Some(FileStatusKind::Expired),
        _ => None,
    }
}

/// The identity of an open file for resuming its upload: device, inode, size and
/// modification time in nanoseconds. A file replaced (a new inode) or rewritten in place (a
/// new mtime) since the checkpoint has another identity, even at the same size.
pub fn file_identity(dev: u64, ino: u64, size: u64, mtime_ns: i128) -> String {
    format!("{dev}:{ino}:{size}:{mtime_ns}")
}

/// Whether a multipart checkpoint may be resumed: recorded for a file of this identity (and
/// so of this size). An old checkpoint without an identity starts over.
pub fn can_resume(recorded: Option<&str>, current: &str) -> bool {
    recorded == Some(current)
}

/// After a failed attempt: whether to start the upload afresh (a new multipart upload) rather
/// than resume it. S3 refused the resumed upload (`AccessDenied`: say a store that binds an
/// upload to the credentials that created it, and the credentials changed since): resuming
/// again would be refused again, so it starts over, once per request; a refusal after that
/// counts as a failed attempt.
pub fn start_afresh(resumed: bool, refused: bool, restarted_once: bool) -> bool {
    resumed && refused && !restarted_once
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
/// in `[0, base]` with `base = min(initial * 2^attempt, max)`. `unit` is a random number in
/// `[0, 1)` supplied by the caller, so this stays pure.
pub fn backoff_ms(initial_ms: u64, max_ms: u64, attempt: u32, unit: f64) -> u64 {
    let base = initial_ms
        .saturating_mul(1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX))
        .min(max_ms);
    jitter_ms(base, unit)
}

/// Uniform in `[0, max_ms]` from `unit` in `[0, 1)`.
pub fn jitter_ms(max_ms: u64, unit: f64) -> u64 {
    // Truncation is the intent: a delay in whole milliseconds.
    ((max_ms as f64) * unit.clamp(0.0, 1.0)) as u64
}

/// The reconnect rules of one camera, fleet-safe under an account-wide connect quota (AWS IoT
/// Core: 500 CONNECT/s per account, 1 per second per client id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// First back-off ceiling, ms; doubles after each failure.
    pub initial_ms: u64,
    /// Largest back-off ceiling, ms.
    pub max_ms: u64,
    /// A connection that stayed up this long resets the back-off; a shorter one does not.
    pub stable_ms: u64,
    /// Least wait after a refusal that means "not allowed" or "slow down", or after a drop
    /// that follows CONNACK within `immediate_drop_ms` (never more than `max_ms`); the
    /// jittered back-off comes on top.
    pub refused_ms: u64,
    /// A drop this soon after CONNACK counts as a refusal (duplicate client id, policy).
    pub immediate_drop_ms: u64,
    /// Least time between two CONNECTs.
    pub min_interval_ms: u64,
    /// The first CONNECT of a process waits a uniform delay in `[0, boot_jitter_ms]`, so a
    /// fleet powered on together does not connect in lockstep.
    pub boot_jitter_ms: u64,
}

/// How the link went down, or why it never came up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDown {
    /// The attempt failed (network, TLS, timeout, or a refusal not listed under `SlowDown`).
    Failed,
    /// The broker said "not allowed" or "slow down" (CONNACK or DISCONNECT: not authorized,
    /// banned, quota exceeded, connection rate exceeded, server busy or unavailable).
    SlowDown,
    /// The connection was up (CONNACK success) and was lost.
    Dropped,
}

/// The reconnect state of one camera. Times are milliseconds on any monotonic clock the
/// caller chooses; the caller supplies the random numbers, so it is pure.
#[derive(Debug, Clone)]
pub struct Reconnect {
    policy: ReconnectPolicy,
    failures: u32,
    last_connect_ms: Option<u64>,
    up_since_ms: Option<u64>,
}

impl Reconnect {
    /// No failure yet, no CONNECT yet.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            last_connect_ms: None,
            up_since_ms: None,
        }
    }

    /// The delay before the first CONNECT of the process (the boot jitter).
    pub fn boot(&mut self, now_ms: u64, unit: f64) -> u64 {
        let d = jitter_ms(self.policy.boot_jitter_ms, unit);
        self.last_connect_ms = Some(now_ms + d);
        d
    }

    /// CONNACK success at `now_ms`.
    pub fn connected(&mut self, now_ms: u64) {
        self.up_since_ms = Some(now_ms);
    }

    /// A deliberate reconnect (new settings) at `now_ms`: the delay that keeps the minimum
    /// interval since the last CONNECT. The back-off is untouched.
    pub fn redial(&mut self, now_ms: u64) -> u64 {
        self.up_since_ms = None;
        self.schedule(now_ms, 0)
    }

    /// The link went down (or the attempt failed) at `now_ms`: the delay before the next
    /// CONNECT. Full jitter; the back-off resets only if the connection had stayed up for
    /// `stable_ms`; a slow-down refusal or an immediate drop waits at least `refused_ms`
    /// (capped at `max_ms`);
    /// never two CONNECTs closer than `min_interval_ms`.
    pub fn down(&mut self, now_ms: u64, why: LinkDown, unit: f64) -> u64 {
        let p = self.policy;
        let up_for = self.up_since_ms.take().map(|t| now_ms.saturating_sub(t));
        if up_for.is_some_and(|u| u >= p.stable_ms) {
            self.failures = 0;
        }
        let slow = match why {
            LinkDown::SlowDown => true,
            LinkDown::Dropped => up_for.is_none_or(|u| u < p.immediate_drop_ms),
            LinkDown::Failed => false,
        };
        let mut d = backoff_ms(p.initial_ms, p.max_ms, self.failures, unit);
        if slow {
            d = d.saturating_add(p.refused_ms.min(p.max_ms));
        }
        self.failures = self.failures.saturating_add(1);
        self.schedule(now_ms, d)
    }

    /// Failures since the last stable connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn schedule(&mut self, now_ms: u64, delay_ms: u64) -> u64 {
        let mut at = now_ms.saturating_add(delay_ms);
        if let Some(last) = self.last_connect_ms {
            at = at.max(last.saturating_add(self.policy.min_interval_ms));
        }
        self.last_connect_ms = Some(at);
        at - now_ms
    }
}

/// After a reconnect, the outbox backlog starts draining after a uniform delay in
/// `[0, max_ms]` (then one batch per outbox tick, each after the previous one's PUBACK), so
/// a fleet coming back together does not send its backlogs in the same second.
pub fn drain_start_ms(max_ms: u64, unit: f64) -> u64 {
    jitter_ms(max_ms, unit)
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
            answered: false,
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
    fn a_checkpoint_resumes_only_for_the_same_file_not_a_same_size_replacement() {
        let first = file_identity(2049, 131, 10_000_000, 1_700_000_000_000_000_000);
        assert!(can_resume(Some(&first), &first));
        // Replaced by another file of the same size: new inode, or rewritten in place.
        let replaced = file_identity(2049, 132, 10_000_000, 1_700_000_000_000_000_000);
        let rewritten = file_identity(2049, 131, 10_000_000, 1_700_000_005_000_000_000);
        assert!(!can_resume(Some(&first), &replaced));
        assert!(!can_resume(Some(&first), &rewritten));
        assert!(
            !can_resume(None, &first),
            "a checkpoint without identity starts over"
        );
    }

    #[test]
    fn a_refused_resumed_upload_starts_afresh_once_then_counts_as_a_failure() {
        assert!(start_afresh(true, true, false));
        assert!(!start_afresh(true, true, true), "only once");
        assert!(
            !start_afresh(false, true, false),
            "a fresh upload refused is a failure"
        );
        assert!(!start_afresh(true, false, false), "other errors resume");
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
    fn back_off_doubles_with_full_jitter_and_is_capped() {
        assert_eq!(backoff_ms(1000, 300_000, 0, 1.0), 1000);
        assert_eq!(backoff_ms(1000, 300_000, 0, 0.0), 0);
        assert_eq!(backoff_ms(1000, 300_000, 3, 1.0), 8000);
        assert_eq!(backoff_ms(1000, 300_000, 30, 1.0), 300_000);
        assert_eq!(backoff_ms(1000, 300_000, 200, 0.5), 150_000);
        let d = backoff_ms(1000, 300_000, 2, 0.25);
        assert_eq!(d, 1000);
    }

    const POLICY: ReconnectPolicy = ReconnectPolicy {
        initial_ms: 1000,
        max_ms: 300_000,
        stable_ms: 60_000,
        refused_ms: 60_000,
        immediate_drop_ms: 10_000,
        min_interval_ms: 2000,
        boot_jitter_ms: 30_000,
    };

    #[test]
    fn the_first_connect_waits_a_random_boot_delay() {
        let mut r = Reconnect::new(POLICY);
        assert_eq!(r.boot(5000, 0.0), 0);
        let mut r = Reconnect::new(POLICY);
        assert_eq!(r.boot(5000, 0.5), 15_000);
        // A failure just after boot still respects the interval since that first CONNECT.
        assert_eq!(r.down(20_000, LinkDown::Failed, 0.0), 2000);
    }

    #[test]
    fn the_back_off_resets_only_after_a_connection_stayed_up() {
        let mut r = Reconnect::new(POLICY);
        r.boot(0, 0.0);
        let mut now = 0;
        for _ in 0..5 {
            now += r.down(now, LinkDown::Failed, 0.999);
        }
        assert_eq!(r.failures(), 5);
        // Up for 30 s then lost: not stable, the back-off keeps growing.
        r.connected(now);
        now += 30_000;
        let d = r.down(now, LinkDown::Dropped, 0.999);
        assert_eq!(d, 31_968, "2^5 s ceiling, full jitter at 0.999");
        assert_eq!(r.failures(), 6);
        now += d;
        // Up for 60 s then lost: stable, back to the first ceiling.
        r.connected(now);
        now += 60_000;
        assert_eq!(r.down(now, LinkDown::Dropped, 0.999), 999);
        assert_eq!(r.failures(), 1);
    }

    #[test]
    fn a_slow_down_refusal_waits_long_and_a_plain_failure_does_not() {
        let mut r = Reconnect::new(POLICY);
        r.boot(0, 0.0);
        assert_eq!(r.down(10_000, LinkDown::SlowDown, 0.0), 60_000);
        let mut r = Reconnect::new(POLICY);
        r.boot(0, 0.0);
        assert_eq!(r.down(10_000, LinkDown::Failed, 0.0), 0);
        // Jitter on top of the minimum: refused cameras do not all come back together.
        let mut r = Reconnect::new(POLICY);
        r.boot(0, 0.0);
        assert_eq!(r.down(10_000, LinkDown::SlowDown, 0.5), 60_500);
    }

    /// A broker that accepts the CONNECT then drops the connection at once (duplicate client
    /// id, policy refusal) must not be hammered: every CONNECT is at least the minimum
    /// interval and the refusal wait after the previous one, whatever the random numbers.
    #[test]
    fn a_post_connack_drop_loop_never_reconnects_faster_than_the_minimum_interval() {
        let mut r = Reconnect::new(POLICY);
        let mut now = r.boot(0, 0.0);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut connects = vec![now];
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            r.connected(now + 50);
            let d = r.down(now + 300, LinkDown::Dropped, unit);
            now += 300 + d;
            connects.push(now);
        }
        let gaps: Vec<u64> = connects.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g >= POLICY.min_interval_ms));
        assert!(gaps.iter().all(|&g| g >= POLICY.refused_ms), "{gaps:?}");
        // The old rule (reset on CONNACK, retry in 0.5-1 s) would connect 500 times in
        // under 500 s; here it takes more than 500 minutes.
        assert!(now > 500 * 60_000);
    }

    #[test]
    fn a_redial_keeps_the_minimum_interval_since_the_last_connect() {
        let mut r = Reconnect::new(POLICY);
        r.boot(1000, 0.0);
        r.connected(1100);
        assert_eq!(r.redial(1500), 1500);
        assert_eq!(r.redial(10_000), 0);
    }

    #[test]
    fn the_backlog_drain_starts_at_a_random_point_within_its_window() {
        assert_eq!(drain_start_ms(30_000, 0.0), 0);
        assert_eq!(drain_start_ms(30_000, 0.5), 15_000);
        assert!(drain_start_ms(30_000, 0.999_999) <= 30_000);
        assert_eq!(drain_start_ms(0, 0.7), 0);
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
