//! One module per proto service: validate the request, run the operation
//! through the host's pool, convert the answer. No libvirt calls here.

pub mod agent;
pub mod blockjob;
#[cfg(test)]
mod confine_tests;
pub mod console;
pub mod domain;
pub mod events;
pub mod host;
pub mod migrate;
pub mod network;
pub mod paging;
pub mod resolve;
pub mod snapshot;
pub mod storage;
pub mod tunables;

use std::time::Duration;

use tokio::time::Instant;
use tonic::Request;

use crate::error::Error;

/// Wraps a reply.
pub(crate) fn ok<T>(v: T) -> Result<tonic::Response<T>, tonic::Status> {
    Ok(tonic::Response::new(v))
}

/// The longest a caller's deadline is shortened by, so that the server's own
/// `DEADLINE_EXCEEDED` reaches the client before transport-level timers
/// (which report a bare `CANCELLED`) fire.
const DEADLINE_MARGIN_MAX: Duration = Duration::from_millis(200);

/// The deadline a request carries in its `grpc-timeout` header, brought
/// forward by a tenth (at most 200 ms) so that our answer arrives in time.
pub fn deadline<T>(req: &Request<T>) -> Option<Instant> {
    let raw = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let timeout = parse_grpc_timeout(raw)?;
    let margin = (timeout / 10).min(DEADLINE_MARGIN_MAX);
    Some(Instant::now() + timeout - margin)
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H M S m u n).
fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let v: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(v.checked_mul(3600)?),
        "M" => Duration::from_secs(v.checked_mul(60)?),
        "S" => Duration::from_secs(v),
        "m" => Duration::from_millis(v),
        "u" => Duration::from_micros(v),
        "n" => Duration::from_nanos(v),
        _ => return None,
    })
}

/// How long a client stream may go without a message by default (the
/// config's `stream_idle_timeout_secs`).
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(30);

/// The next message of a client stream (`None` when the client finished).
///
/// A client that sends nothing for `idle` gets `ABORTED`: the server gave
/// up on the transfer, and the remedy is to run it again (ABORTED's
/// meaning), whereas `DEADLINE_EXCEEDED` would be read as the client's own
/// deadline. That deadline, when it comes first, still answers
/// `DEADLINE_EXCEEDED`.
pub async fn next_message<T>(
    inbound: &mut tonic::Streaming<T>,
    idle: Duration,
    deadline: Option<Instant>,
) -> Result<Option<T>, tonic::Status> {
    let idle_at = Instant::now() + idle;
    match deadline {
        Some(d) if d <= idle_at => tokio::time::timeout_at(d, inbound.message())
            .await
            .map_err(|_| Error::deadline("the client's next message"))?,
        _ => tokio::time::timeout_at(idle_at, inbound.message())
            .await
            .map_err(|_| stream_idle_status(idle))?,
    }
}

/// The status of a client stream that stalled.
pub fn stream_idle_status(idle: Duration) -> tonic::Status {
    Error::StreamIdle(idle).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }
}
