//! Wall-clock time as Unix timestamps, for values that leave the process (`created` fields,
//! persisted rest-until times, log entries). Durations and deadlines use `tokio::time` instead, so
//! tests can pause them (ARCHITECTURE rule 6).

use std::time::{SystemTime, UNIX_EPOCH};

fn since_epoch() -> std::time::Duration {
    // A clock set before 1970 reads as 1970: nothing here is worth failing a request for.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    since_epoch().as_secs()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}
