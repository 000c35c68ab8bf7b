//! Counters shared by the cameras and the cloud, percentiles, and /proc readings.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Fleet-wide counters (relaxed atomics: read for progress and the summary).
#[derive(Debug, Default)]
pub struct Counters {
    /// Sessions connected now.
    pub connected: AtomicI64,
    /// CONNACKs received (first connects and reconnects).
    pub connacks: AtomicU64,
    /// Connect attempts the limiter refused.
    pub refused: AtomicU64,
    /// Connections lost.
    pub disconnects: AtomicU64,
    /// Cameras whose file-request subscription the broker granted (each counted once).
    pub subscribed: AtomicU64,
    /// Plate reads appended to the cameras' outboxes.
    pub reads_generated: AtomicU64,
    /// Plate batches published.
    pub batches_sent: AtomicU64,
    /// Plate batches acknowledged (PUBACK) and removed from an outbox.
    pub batches_acked: AtomicU64,
    /// Reads written by the ingest rule (redeliveries included).
    pub reads_written: AtomicU64,
    /// Batches the ingest rule handled.
    pub batches_ingested: AtomicU64,
    /// File requests published by the cloud.
    pub requests_sent: AtomicU64,
    /// Distinct file requests the cameras received.
    pub requests_received: AtomicU64,
    /// File requests a camera received again (QoS 1 redelivery), acknowledged only.
    pub requests_redelivered: AtomicU64,
    /// `accepted` statuses the cloud received.
    pub accepted: AtomicU64,
    /// Requests whose object is in S3 with the announced size.
    pub ready: AtomicU64,
    /// Requests that failed on the camera or whose object was not found.
    pub failed: AtomicU64,
}

impl Counters {
    /// Current value of a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    /// Sessions connected now.
    pub fn connected_now(&self) -> u64 {
        self.connected.load(Ordering::Relaxed).max(0) as u64
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `samples` in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

/// A process's resident set (`VmRSS`) in KiB and CPU time (user + system) from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// utime + stime, seconds (USER_HZ = 100).
    pub cpu_secs: f64,
}

/// Reads `/proc/{pid}/status` and `/proc/{pid}/stat` (`pid = "self"` for this process).
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ProcSample {
        rss_kib,
        cpu_secs: ticks / 100.0,
    })
}

/// The pid of this process's child named `name` (the broker it started), if any.
pub fn child_pid(name: &str) -> Option<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().into_string().ok()?;
        pid.parse::<u32>().ok()?;
        let status = std::fs::read_to_string(e.path().join("status")).ok()?;
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .map(str::to_owned)
        };
        (field("Name:")? == name && field("PPid:")? == me).then_some(pid)
    })
}

/// The soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let s = ms(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]);
        assert_eq!(percentile_ms(&s, 50.0), Some(5.0));
        assert_eq!(percentile_ms(&s, 99.0), Some(10.0));
        assert_eq!(percentile_ms(&s, 0.0), Some(1.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn reads_this_process() {
        let s = proc_sample("self").expect("/proc/self");
        assert!(s.rss_kib > 0);
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert_eq!(child_pid("no-such-process-name"), None);
    }
}
