//! The file request life cycle: every state change, allowed or refused, decided here and only
//! here.
//!
//! ```text
//! requested ─► accepted ─► uploading ─► ready
//!     │            │           │
//!     └────────────┴───────────┴─► failed | rejected | expired
//! ```
//! - A state never moves backwards: a late `uploading` after `ready` is refused.
//! - Terminal states (`ready`, `failed`, `rejected`, `expired`) are never left, except that
//!   `ready` wins over `failed`: S3's event proves the object exists even if the camera
//!   reported a failure on a later retry.
//! - Repeating the current state is a duplicate (no change), except `uploading` with more
//!   progress, which updates the percentage.
//! - Expiry is a hard deadline: a request not terminal once the cloud clock is past its
//!   `expires_at` is `expired` ([`past_expiry`]), whatever event comes next — a camera status,
//!   S3's event for an object created after the deadline, the sweep, or a read. So a request
//!   seen `expired` never becomes anything else (no flip-flop); an object uploaded after the
//!   deadline stays in the bucket unannounced until the bucket's retention removes it.

use anpr_protocol::RequestState;

/// What applying an event to a state means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to the new state (or update progress in the same state).
    Apply,
    /// Nothing new: the same event again.
    Duplicate,
    /// Not allowed from the current state; the record is left alone.
    Refuse,
}

fn rank(s: RequestState) -> u8 {
    use RequestState::*;
    match s {
        Requested => 0,
        Accepted => 1,
        Uploading => 2,
        Ready | Failed | Rejected | Expired => 3,
    }
}

/// Decides whether a record in `from` (with `from_progress`) may move to `to`
/// (with `to_progress`).
pub fn decide(
    from: RequestState,
    from_progress: Option<u8>,
    to: RequestState,
    to_progress: Option<u8>,
) -> Decision {
    use RequestState::*;
    if from == to {
        return match (from, from_progress, to_progress) {
            (Uploading, old, Some(new)) if new > old.unwrap_or(0) => Decision::Apply,
            _ => Decision::Duplicate,
        };
    }
    if from == Failed && to == Ready {
        return Decision::Apply;
    }
    if from.is_terminal() {
        return Decision::Refuse;
    }
    if to == Requested {
        return Decision::Refuse;
    }
    if rank(to) > rank(from) {
        Decision::Apply
    } else {
        Decision::Refuse
    }
}

/// Whether a request in `state` with `expires_at` is past its expiry at `now` (all Unix
/// seconds) and so must be `expired`: not terminal and `now > expires_at` (the camera's rule
/// too).
pub fn past_expiry(state: RequestState, expires_at: u64, now: u64) -> bool {
    !state.is_terminal() && now > expires_at
}

/// Orders two S3 event `sequencer` values of the same object key, as S3 documents: left-pad the
/// shorter hexadecimal string with zeros, then compare. `None` (a stand-in or an event type
/// without a sequencer) is older than any value.
pub fn compare_sequencers(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => {
            let (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
            let width = a.len().max(b.len());
            format!("{a:0>width$}").cmp(&format!("{b:0>width$}"))
        }
    }
}

/// What an S3 object-created event means for a request already in `from` that last applied
/// the object event with `stored` sequencer.
///
/// - Not yet `ready`: the life cycle decides ([`decide`] with `ready`).
/// - Already `ready`: the same sequencer (or none on both) is a [`Decision::Duplicate`]; an
///   older one is refused (out of order: it must not overwrite the newer object's size and
///   checksum); a newer one means the object was written again and its size and checksum are
///   updated ([`Decision::Apply`], staying `ready`).
pub fn decide_object(
    from: RequestState,
    from_progress: Option<u8>,
    stored: Option<&str>,
    incoming: Option<&str>,
) -> Decision {
    if from != RequestState::Ready {
        return decide(from, from_progress, RequestState::Ready, None);
    }
    match compare_sequencers(incoming, stored) {
        std::cmp::Ordering::Greater => Decision::Apply,
        std::cmp::Ordering::Equal => Decision::Duplicate,
        std::cmp::Ordering::Less => Decision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestState::*;

    const ALL: [RequestState; 7] = [
        Requested, Accepted, Uploading, Ready, Failed, Rejected, Expired,
    ];

    #[test]
    fn only_an_open_request_past_its_deadline_is_due_to_expire() {
        for s in ALL {
            assert_eq!(past_expiry(s, 100, 101), !s.is_terminal(), "{s:?}");
            assert!(
                !past_expiry(s, 100, 100),
                "{s:?}: the deadline itself is in time"
            );
        }
    }

    #[test]
    fn the_happy_path_is_allowed_step_by_step() {
        assert_eq!(decide(Requested, None, Accepted, None), Decision::Apply);
        assert_eq!(decide(Accepted, None, Uploading, Some(10)), Decision::Apply);
        assert_eq!(
            decide(Uploading, Some(10), Uploading, Some(60)),
            Decision::Apply
        );
        assert_eq!(decide(Uploading, Some(60), Ready, None), Decision::Apply);
    }

    #[test]
    fn ready_may_arrive_before_the_camera_reports_anything() {
        assert_eq!(decide(Requested, None, Ready, None), Decision::Apply);
    }

    #[test]
    fn progress_never_goes_backwards() {
        assert_eq!(
            decide(Uploading, Some(60), Uploading, Some(40)),
            Decision::Duplicate
        );
        assert_eq!(
            decide(Uploading, Some(60), Accepted, None),
            Decision::Refuse
        );
    }

    #[test]
    fn terminal_states_are_never_left_except_failed_to_ready() {
        for from in [Ready, Failed, Rejected, Expired] {
            for to in ALL {
                let d = decide(from, None, to, None);
                if from == to {
                    assert_eq!(d, Decision::Duplicate, "{from:?}->{to:?}");
                } else if from == Failed && to == Ready {
                    assert_eq!(d, Decision::Apply);
                } else {
                    assert_eq!(d, Decision::Refuse, "{from:?}->{to:?}");
                }
            }
        }
    }

    #[test]
    fn nothing_moves_back_to_requested() {
        for from in ALL {
            if from != Requested {
                assert_eq!(decide(from, None, Requested, None), Decision::Refuse);
            }
        }
    }

    #[test]
    fn any_live_state_may_fail_reject_or_expire() {
        for from in [Requested, Accepted, Uploading] {
            for to in [Failed, Rejected, Expired, Ready] {
                assert_eq!(
                    decide(from, None, to, None),
                    Decision::Apply,
                    "{from:?}->{to:?}"
                );
            }
        }
    }
    #[test]
    fn sequencers_compare_as_left_padded_hex() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_sequencers(Some("0A"), Some("9")), Greater);
        assert_eq!(
            compare_sequencers(Some("0055B988B5C2B3F0C6"), Some("55B988B5C2B3F0C6")),
            Equal
        );
        assert_eq!(
            compare_sequencers(Some("0055B988B5C2B3F0C7"), Some("0055B988B5C2B3F0C6")),
            Greater
        );
        assert_eq!(compare_sequencers(Some("ff"), Some("FE")), Greater);
        assert_eq!(compare_sequencers(None, Some("00")), Less);
        assert_eq!(compare_sequencers(None, None), Equal);
    }

    #[test]
    fn an_object_event_on_a_ready_request_is_ordered_by_sequencer() {
        let s = Some("0055B988B5C2B3F0C6");
        assert_eq!(decide_object(Ready, None, s, s), Decision::Duplicate);
        assert_eq!(
            decide_object(Ready, None, s, Some("0055B988B5C2B3F0C5")),
            Decision::Refuse
        );
        assert_eq!(
            decide_object(Ready, None, s, Some("0055B988B5C2B3F0C7")),
            Decision::Apply
        );
        assert_eq!(decide_object(Ready, None, None, None), Decision::Duplicate);
    }

    #[test]
    fn an_object_event_on_a_live_or_failed_request_makes_it_ready() {
        for from in [Requested, Accepted, Uploading, Failed] {
            assert_eq!(
                decide_object(from, Some(40), None, Some("01")),
                Decision::Apply,
                "{from:?}"
            );
        }
        for from in [Rejected, Expired] {
            assert_eq!(
                decide_object(from, None, None, Some("01")),
                Decision::Refuse,
                "{from:?}"
            );
        }
    }
}
