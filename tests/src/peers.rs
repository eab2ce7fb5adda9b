//! Misbehaving peers for the transport suites: raw TCP connections from a
//! chosen loopback address that never handshake, a subscriber that stops
//! reading, and checks of whether the server has closed them.

use std::{
    io::{ErrorKind, Read},
    net::{SocketAddr, TcpStream as StdTcpStream},
    time::Duration,
};

use tokio::io::AsyncWriteExt;

use crate::{raw_h2, wait_until};

/// The path of `EventService.WatchEvents`.
pub const WATCH: &str = "/libvirt_grpc.v1.EventService/WatchEvents";

/// The attacker's source address.
pub fn attacker_ip() -> std::net::IpAddr {
    "127.0.0.2".parse().unwrap()
}

/// Raises this test process's own open-file limit: the attack tests hold
/// over a thousand sockets (both ends, when the server is in process).
pub fn raise_own_fd_limit() {
    let need = 4096;
    let mut limit = libvirt_grpc_server::transport::raise_fd_limit().unwrap();
    if limit < need {
        // A low hard limit: root may raise it.
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, need, need);
        limit = libvirt_grpc_server::transport::raise_fd_limit().unwrap();
    }
    assert!(
        limit >= need,
        "open-file limit {limit} is too low for this test"
    );
}

/// A blocking, then non-blocking, TCP connection from `from` to `to` that
/// sends nothing.
pub fn raw_connect(from: std::net::IpAddr, to: SocketAddr) -> StdTcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from, 0).into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(10))
        .unwrap();
    let s: StdTcpStream = s.into();
    s.set_nonblocking(true).unwrap();
    s
}

/// Waits until the server has accepted `s`: hyper sends its SETTINGS
/// first thing, so a byte to peek at means the connection is being served
/// (and not still in the listen backlog).
pub async fn accepted(s: &StdTcpStream) {
    wait_until(Duration::from_secs(10), "the server to accept", || {
        let mut buf = [0u8; 1];
        let seen = matches!(s.peek(&mut buf), Ok(n) if n > 0);
        async move { seen.then_some(()) }
    })
    .await;
}

/// Whether the server has closed `s` (EOF or reset), reading and dropping
/// whatever it sent before (its SETTINGS frame, a GOAWAY).
pub fn is_closed(mut s: &StdTcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

pub fn closed_count(conns: &[StdTcpStream]) -> usize {
    conns.iter().filter(|c| is_closed(c)).count()
}

/// A subscriber that stops reading once its stream has started: it reads
/// the response headers and the first message, then nothing, and never
/// grants flow-control window beyond the initial 64 KiB.
pub async fn stuck_subscriber(addr: SocketAddr) -> tokio::net::TcpStream {
    let (mut stuck, _) = raw_h2::handshake(addr).await;
    stuck
        .write_all(&raw_h2::grpc_headers(1, &addr.to_string(), WATCH))
        .await
        .unwrap();
    stuck
        .write_all(&raw_h2::grpc_message(1, &[]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let f = raw_h2::read_frame(&mut stuck).await.unwrap();
            if f.kind == raw_h2::DATA && f.stream == 1 && !f.payload.is_empty() {
                break;
            }
        }
    })
    .await
    .expect("the stuck subscriber's stream did not start within 10 s");
    stuck
}

/// Whether the server has closed a tokio stream: drains what it sent,
/// waiting at most `timeout` for the end.
pub async fn ends_within(s: &mut tokio::net::TcpStream, timeout: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 << 10];
    tokio::time::timeout(timeout, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
