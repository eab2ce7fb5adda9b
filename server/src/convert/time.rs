//! Times and spans as the API writes them: `google.protobuf.Timestamp` for
//! points in time, `google.protobuf.Duration` for spans, converted here once
//! for every service.

use std::time::{Duration, SystemTime};

use crate::error::Error;

/// A point in time as a Timestamp (the Unix epoch for a clock set before it).
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Whole seconds since the Unix epoch (libvirt's `time_t` fields) as a
/// Timestamp.
pub fn unix_seconds(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// A span as a Duration.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A request's Duration in `field` as a span: `INVALID_ARGUMENT` when it is
/// negative or not normalized (nanos outside 0..1e9, or of the other sign).
pub fn span(field: &str, d: &prost_types::Duration) -> Result<Duration, Error> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(Error::invalid(field, "nanos must be below 1e9"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

/// [`span`], and between `min` and `max` (inclusive; `range` names them
/// for the message, e.g. "1 ms and 1 hour").
pub fn span_within(
    field: &str,
    d: &prost_types::Duration,
    min: Duration,
    max: Duration,
    range: &str,
) -> Result<Duration, Error> {
    let d = span(field, d)?;
    if d < min || d > max {
        return Err(Error::invalid(field, format!("must be between {range}")));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let d = Duration::from_millis(1500);
        assert_eq!(span("t", &duration(d)).unwrap(), d);
        let neg = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert!(span("t", &neg).is_err());
        let bad = prost_types::Duration {
            seconds: 0,
            nanos: 1_000_000_000,
        };
        assert!(span("t", &bad).is_err());
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_000);
        assert_eq!(timestamp(t).seconds, 1);
        assert_eq!(timestamp(t).nanos, 500_000_000);
        assert_eq!(unix_seconds(7).seconds, 7);
    }
}
