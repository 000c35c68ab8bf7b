//! The wall clock, read one way everywhere: Unix seconds and milliseconds. A clock before
//! 1970 reads 0; one past what `u64` milliseconds hold reads `u64::MAX`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
