//! Errors the agent cannot act on: logged with their source chain, counted, and the last one
//! kept short for the next health report (`errs`, `err`). Shared by the loop and the upload
//! worker.

use std::error::Error;
use std::fmt;
use std::sync::Mutex;

/// Longest `err` text in a health report, in characters.
const SHORT: usize = 120;

/// An error and its sources, displayed `outer: cause: root cause` (a source the error
/// already prints is not repeated).
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            // Many errors already print their source (`"I/O: {0}"`): not twice.
            let text = s.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            source = s.source();
        }
        Ok(())
    }
}

/// The errors since the last health report.
#[derive(Debug, Default)]
pub struct Faults {
    since_report: Mutex<Noted>,
}

#[derive(Debug, Default)]
struct Noted {
    count: u64,
    last: Option<String>,
}

impl Faults {
    /// Counts `what` and keeps it (shortened) as the last error. Logging is the caller's.
    pub fn note(&self, what: impl fmt::Display) {
        self.keep(what, 1);
    }

    /// Keeps `what` (shortened) as the last error without counting it: something the loop
    /// acted on (a lost link) that the next health report still explains.
    pub fn remember(&self, what: impl fmt::Display) {
        self.keep(what, 0);
    }

    /// Keeps `what` (shortened) as the last error and adds `count` to the errors counted.
    fn keep(&self, what: impl fmt::Display, count: u64) {
        if let Ok(mut n) = self.since_report.lock() {
            n.count = n.count.saturating_add(count);
            n.last = Some(what.to_string().chars().take(SHORT).collect());
        }
    }

    /// Logs `err` with its source chain under `message` at error level, and counts it.
    pub fn error(&self, message: &str, err: &(dyn Error + '_)) {
        let chain = Chain(err);
        tracing::error!(error = %chain, "{message}");
        self.note(chain);
    }

    /// Logs `err` with its source chain under `message` at warning level, and counts it.
    pub fn warn(&self, message: &str, err: &(dyn Error + '_)) {
        let chain = Chain(err);
        tracing::warn!(error = %chain, "{message}");
        self.note(chain);
    }

    /// The count and the last error since the previous call, for a health report.
    pub fn take(&self) -> (u64, Option<String>) {
        self.since_report
            .lock()
            .map(|mut n| (std::mem::take(&mut n.count), n.last.take()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("journal write failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_is_shown_with_its_sources() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(Chain(&e).to_string(), "journal write failed: disk full");
        let io = rumqttc::v5::ConnectionError::Io(std::io::Error::other("reset"));
        assert_eq!(Chain(&io).to_string(), "I/O: reset", "not repeated");
    }

    #[test]
    fn errors_are_counted_until_the_next_report_which_keeps_the_last_one_short() {
        let f = Faults::default();
        assert_eq!(f.take(), (0, None));
        f.note("first");
        f.error("context", &Outer(std::io::Error::other("x".repeat(500))));
        let (count, last) = f.take();
        assert_eq!(count, 2);
        let last = last.unwrap();
        assert!(last.starts_with("journal write failed: xxx"), "{last}");
        assert_eq!(last.chars().count(), SHORT);
        assert_eq!(f.take(), (0, None), "reset by the report");
    }

    #[test]
    fn a_lost_link_explains_the_next_report_without_counting_as_an_error() {
        let f = Faults::default();
        f.remember("mqtt: I/O: reset");
        assert_eq!(f.take(), (0, Some("mqtt: I/O: reset".to_owned())));
        f.note("journal write failed");
        f.remember("mqtt: I/O: reset");
        assert_eq!(f.take(), (1, Some("mqtt: I/O: reset".to_owned())));
    }
}
