//! The accept loop: caps on connections, socket options, and no spinning.
//!
//! Every connection holds a [`Permit`] for as long as it is open: one place
//! counts connections in total and per peer IP address. A connection over
//! either cap is still accepted and then closed at once, so the listen
//! backlog never fills with peers the server will not serve and the
//! legitimate ones behind them get through. The caps stay below the
//! open-file limit ([`super::connection_budget`]), so accept itself keeps
//! working; if it fails anyway for lack of descriptors or memory (EMFILE,
//! ENFILE, ENOBUFS, ENOMEM), the loop logs and backs off briefly instead of
//! retrying in a busy loop.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use futures::Stream;
use tokio::{
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    sync::{mpsc, watch},
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

use super::{conn::Conn, tls::Tls};

/// Connections from a Unix socket share one place under the per-peer cap.
const UNIX_PEER: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// TLS handshakes finished but not yet taken by the server.
const HANDSHAKES_QUEUED: usize = 64;

/// How long accept pauses after running out of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about refused connections per this interval.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection caps and their counters.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_connections_per_ip` are open from this peer.
    PerIp,
}

impl ConnLimits {
    /// Caps of `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnLimits {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counters stay consistent even if a holder panicked: every
        // critical section is a few integer updates.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit for one more connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Permit {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Connections open now (in total, from `ip`).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.lock();
        (open.total, open.per_ip.get(&ip).copied().unwrap_or(0))
    }
}

/// One open connection's place under the caps; released when dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Socket and timing settings of accepted connections.
#[derive(Debug, Clone)]
pub struct AcceptSettings {
    /// See [`Conn::new`].
    pub handshake_timeout: Duration,
    /// `SO_KEEPALIVE` idle time, if on.
    pub tcp_keepalive: Option<Duration>,
    /// Turns true when every connection must close (end of shutdown grace).
    pub close: watch::Receiver<bool>,
}

struct Acceptor {
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    settings: AcceptSettings,
    refused: u64,
    refusal_logged: Option<Instant>,
}

/// Accepted connections as tonic wants them. Never yields an error: accept
/// failures are handled here (logged, backed off), so tonic never sees one.
pub fn incoming(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    settings: AcceptSettings,
) -> impl Stream<Item = io::Result<Conn>> {
    let acceptor = Acceptor::new(listener, limits, settings);
    futures::stream::unfold(acceptor, |mut a| async move {
        let conn = a.next().await;
        Some((Ok(conn), a))
    })
}

/// Accepted TLS sessions as tonic wants them. Handshakes run in tasks of
/// their own (a slow or silent client never holds up the others) and are
/// bounded by the handshake timeout, which then goes on for the HTTP/2
/// preface with what is left of it. Each handshake takes the TLS
/// configuration in force when it starts (see [`Tls::reload`]). A failed
/// handshake (wrong CA, expired certificate, no client certificate under
/// mutual TLS, not TLS at all) closes the socket; tonic never sees it.
pub fn incoming_tls(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    settings: AcceptSettings,
    tls: Arc<Tls>,
) -> impl Stream<Item = io::Result<Conn<TlsStream<TcpStream>>>> {
    let (tx, rx) = mpsc::channel(HANDSHAKES_QUEUED);
    let mut acceptor = Acceptor::new(listener, limits, settings);
    tokio::spawn(async move {
        loop {
            // The server dropped the stream (it shuts down): the listener
            // closes with this task.
            let (stream, peer, permit) = tokio::select! {
                () = tx.closed() => return,
                next = acceptor.next_raw() => next,
            };
            let tx = tx.clone();
            let config = tls.current();
            let timeout = acceptor.settings.handshake_timeout;
            let close = acceptor.settings.close.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let accept = TlsAcceptor::from(config).accept(stream);
                match tokio::time::timeout(timeout, accept).await {
                    Ok(Ok(session)) => {
                        let left = timeout
                            .saturating_sub(started.elapsed())
                            .max(Duration::from_millis(100));
                        let conn = Conn::new(session, peer.to_string(), permit, left, close);
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::info!(peer = %peer, ?timeout, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Connections on a Unix socket as tonic wants them (one peer under the
/// per-peer cap: every local process shares `max_connections_per_ip`).
pub fn incoming_unix(
    listener: UnixListener,
    limits: Arc<ConnLimits>,
    settings: AcceptSettings,
) -> impl Stream<Item = io::Result<Conn<UnixStream>>> {
    futures::stream::unfold(
        (listener, limits, settings),
        |(listener, limits, settings)| async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        after_accept_error(e).await;
                        continue;
                    }
                };
                match limits.admit(UNIX_PEER) {
                    Ok(permit) => {
                        let conn = Conn::new(
                            stream,
                            "unix".to_owned(),
                            permit,
                            settings.handshake_timeout,
                            settings.close.clone(),
                        );
                        return Some((Ok(conn), (listener, limits, settings)));
                    }
                    Err(why) => {
                        tracing::debug!(reason = ?why, "Unix-socket connection over the cap closed at once");
                    }
                }
            }
        },
    )
}

/// Binds a Unix socket at `path`, mode 0600 (owner only, as libvirtd's
/// own), with no moment at which it is reachable with wider permissions:
/// it is bound under a temporary name, restricted, then renamed into place.
/// A socket file left by a dead server is replaced; one a live server
/// answers on is not.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another server answers on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The staging name lives in a directory of its own, 0700, so nobody
    // else can reach it before the chmod below.
    let private = dir.join(format!(".{name}.{}.d", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::create_dir(&private)?;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))?;
    let staged = private.join("sock");
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

impl Acceptor {
    fn new(listener: TcpListener, limits: Arc<ConnLimits>, settings: AcceptSettings) -> Self {
        Acceptor {
            listener,
            limits,
            settings,
            refused: 0,
            refusal_logged: None,
        }
    }

    async fn next(&mut self) -> Conn {
        let (stream, peer, permit) = self.next_raw().await;
        Conn::new(
            stream,
            peer.to_string(),
            permit,
            self.settings.handshake_timeout,
            self.settings.close.clone(),
        )
    }

    /// The next connection under the caps, configured, with its permit.
    async fn next_raw(&mut self) -> (TcpStream, SocketAddr, Permit) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    after_accept_error(e).await;
                    continue;
                }
            };
            match self.limits.admit(peer.ip()) {
                Ok(permit) => {
                    self.configure(&stream);
                    return (stream, peer, permit);
                }
                Err(why) => {
                    drop(stream);
                    self.log_refusal(peer.ip(), why);
                }
            }
        }
    }

    /// Nagle off (small streamed messages would wait for delayed ACKs) and
    /// TCP keepalive on; a failure costs only the option.
    fn configure(&self, stream: &TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Some(idle) = self.settings.tcp_keepalive {
            let ka = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle / 4 + Duration::from_secs(1));
            if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
                tracing::debug!(error = %e, "cannot set SO_KEEPALIVE");
            }
        }
    }

    /// Refusals are counted; a warning at most every [`REFUSAL_LOG_EVERY`]
    /// keeps a flood of them from flooding the log.
    fn log_refusal(&mut self, ip: IpAddr, why: Refusal) {
        self.refused += 1;
        let due = self
            .refusal_logged
            .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY);
        if due {
            let (total, from_ip) = self.limits.open(ip);
            tracing::warn!(
                peer = %ip,
                reason = ?why,
                open = total,
                open_from_peer = from_ip,
                refused_so_far = self.refused,
                "connection over the cap closed at once"
            );
            self.refusal_logged = Some(Instant::now());
        } else {
            tracing::debug!(peer = %ip, reason = ?why, "connection over the cap closed at once");
        }
    }
}

/// After a failed accept: a pause when the process is out of descriptors
/// or memory (retrying at once would only spin), nothing otherwise (a peer
/// that reset before accept).
async fn after_accept_error(e: io::Error) {
    if out_of_resources(&e) {
        tracing::warn!(error = %e, backoff = ?ACCEPT_BACKOFF, "cannot accept a connection; backing off");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

/// Whether an accept error means the process (or system) is out of
/// descriptors or memory: retrying at once would only spin.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn caps_count_total_and_per_ip_and_release_on_drop() {
        let limits = ConnLimits::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerIp);
        let b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(limits.open(a), (2, 1));
        let _a3 = limits.admit(a).unwrap();
        drop(b1);
        assert_eq!(limits.open(b), (2, 0));
        assert!(
            !limits.lock().per_ip.contains_key(&b),
            "no entry left behind"
        );
    }

    #[test]
    fn resource_errors_back_off() {
        assert!(out_of_resources(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(!out_of_resources(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
