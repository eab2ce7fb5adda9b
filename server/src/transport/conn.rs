//! [`Conn`]: one accepted TCP connection as the HTTP/2 server sees it.
//!
//! hyper serves whatever implements `AsyncRead + AsyncWrite`, and a
//! connection only ends when hyper's connection future ends. Two kinds of
//! peers never let that happen on their own: one that connects and never
//! sends the HTTP/2 preface (hyper waits for it forever, even during a
//! graceful shutdown), and one that stops reading (its writes stay pending
//! forever). So the wrapper can fail the socket from below:
//!
//! - until [`HANDSHAKE_BYTES`] have been read it polls a deadline, and
//!   answers the next read or write with `TimedOut` once it has passed;
//! - it watches the server's "close everything" signal (the end of the
//!   shutdown grace period) and answers with `ConnectionAborted` once it
//!   fires.
//!
//! Either error makes hyper drop the connection, which closes the socket
//! and frees the [`Permit`] that counts it against the connection caps.
//! Both timers are polled from `poll_read`/`poll_write`, which hyper keeps
//! pending on every live connection, so they wake the connection's task
//! without any task of their own.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
    time::Sleep,
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::accept::Permit;

/// Bytes a client must send before its handshake counts as started: the
/// 24-byte HTTP/2 connection preface plus the 9-byte header of the
/// SETTINGS frame that must follow it. A peer that sends only the magic
/// string and stops is still cut off by the deadline.
pub const HANDSHAKE_BYTES: usize = 24 + 9;

/// An accepted connection: the socket, its place under the connection caps,
/// a handshake deadline and the forced-close signal.
pub struct Conn {
    io: TcpStream,
    _permit: Permit,
    /// Pending until the peer has sent [`HANDSHAKE_BYTES`]; `None` after.
    handshake: Option<Pin<Box<Sleep>>>,
    handshake_timeout: Duration,
    read: usize,
    /// Resolves when the server closes every connection; `None` once it has.
    close: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.io.peer_addr().ok())
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Wraps `io`; it must send the preface within `handshake_timeout` and
    /// is closed once `close` turns true (or its sender goes away).
    pub fn new(
        io: TcpStream,
        permit: Permit,
        handshake_timeout: Duration,
        mut close: watch::Receiver<bool>,
    ) -> Self {
        Conn {
            io,
            _permit: permit,
            handshake: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            handshake_timeout,
            read: 0,
            close: Some(Box::pin(async move {
                let _ = close.wait_for(|c| *c).await;
            })),
        }
    }

    /// Fails the socket once the shutdown deadline or the handshake
    /// deadline has passed; registers the task for both otherwise.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match &mut self.close {
            // Already fired: the connection stays failed.
            None => return Err(aborted()),
            Some(close) => {
                if close.as_mut().poll(cx).is_ready() {
                    self.close = None;
                    return Err(aborted());
                }
            }
        }
        if let Some(deadline) = &mut self.handshake {
            if deadline.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no HTTP/2 preface within {:?} ({} bytes received)",
                        self.handshake_timeout, self.read
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "server shut down: grace period over",
    )
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.read = this.read.saturating_add(buf.filled().len() - before);
            if this.read >= HANDSHAKE_BYTES {
                this.handshake = None;
            }
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    /// The same as a bare `TcpStream`, so `Request::remote_addr` works.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
