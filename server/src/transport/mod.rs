//! Connection hygiene below the gRPC services: what one misbehaving peer
//! must not be able to do to everyone else.
//!
//! - [`accept`]: caps on connections in total and per peer IP (over-cap
//!   connections are accepted and closed at once), TCP options, and an
//!   accept loop that backs off instead of spinning when descriptors run
//!   out.
//! - [`conn`]: the wrapper around each accepted socket that enforces the
//!   handshake deadline and the end of the shutdown grace period, neither
//!   of which hyper enforces by itself.
//! - [`status_codes`]: the two status codes tonic answers by itself that
//!   gRPC's table codes differently.
//! - [`tls`]: the TLS configuration (server certificate, mutual TLS) and
//!   its reload.
//!
//! The HTTP/2 settings (keepalive pings, concurrent streams per connection,
//! message sizes) are tonic's own and set in [`crate::server`].

pub mod accept;
pub mod conn;
pub mod status_codes;
pub mod tls;

/// Descriptors kept out of the connection budget: libvirt connections,
/// the listener, logs, files opened by calls (uploads, screenshots), and
/// the one descriptor accept needs to close an over-cap connection.
pub const FD_RESERVE: u64 = 256;

/// Raises this process's soft open-file limit to its hard limit, and
/// returns the soft limit now in force (or why it could not be read).
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The connection cap actually enforced: `configured`, or fewer if the
/// open-file limit leaves room for fewer (with [`FD_RESERVE`] kept aside).
pub fn connection_budget(configured: usize) -> usize {
    let soft = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _hard)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; using max_connections as is");
            return configured;
        }
    };
    let room = usize::try_from(soft.saturating_sub(FD_RESERVE))
        .unwrap_or(usize::MAX)
        .max(1);
    if room < configured {
        tracing::warn!(
            max_connections = configured,
            open_file_limit = soft,
            enforced = room,
            "max_connections lowered to what the open-file limit leaves room for"
        );
    }
    configured.min(room)
}
