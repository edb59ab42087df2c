//! The wall clock: the one place this crate reads the current time as Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix milliseconds (0 before the epoch, saturating far after it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
