//! What a camera does per day, and the same compressed into simulated seconds.

use serde::Serialize;

/// Seconds in a day.
pub const DAY_SECS: f64 = 86_400.0;

/// A camera's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Connected, nothing to do: keep-alives only.
    Idle,
    /// 1 file request and 200 plate reads a day.
    Quiet,
    /// 20 file requests and 5,000 plate reads a day.
    Busy,
}

impl Profile {
    /// File requests per camera per day.
    pub fn requests_per_day(self) -> f64 {
        match self {
            Self::Idle => 0.0,
            Self::Quiet => 1.0,
            Self::Busy => 20.0,
        }
    }

    /// Plate reads per camera per day.
    pub fn reads_per_day(self) -> f64 {
        match self {
            Self::Idle => 0.0,
            Self::Quiet => 200.0,
            Self::Busy => 5_000.0,
        }
    }

    /// Plate reads per camera per wall-clock second when a day lasts `DAY_SECS / compress`.
    pub fn reads_per_sec(self, compress: f64) -> f64 {
        self.reads_per_day() * compress / DAY_SECS
    }

    /// File requests per wall-clock second for `cameras` cameras.
    pub fn fleet_requests_per_sec(self, cameras: usize, compress: f64) -> f64 {
        self.requests_per_day() * cameras as f64 * compress / DAY_SECS
    }
}

/// A compressed duration in milliseconds (at least 1): the outbox's 30 s batch age at
/// 100× compression is 300 ms, so batches hold as many reads as they would in real time.
pub fn compressed_ms(real_ms: u64, compress: f64) -> u64 {
    ((real_ms as f64 / compress.max(1.0)).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_scale_with_compression() {
        assert_eq!(Profile::Idle.reads_per_sec(1000.0), 0.0);
        assert!((Profile::Busy.reads_per_sec(86.4) - 5.0).abs() < 1e-9);
        assert!((Profile::Quiet.fleet_requests_per_sec(1000, 86.4) - 1.0).abs() < 1e-9);
        assert_eq!(compressed_ms(30_000, 100.0), 300);
        assert_eq!(compressed_ms(30_000, 0.5), 30_000);
        assert_eq!(compressed_ms(1, 1e6), 1);
    }
}
