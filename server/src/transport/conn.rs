//! [`Conn`]: one accepted connection as the HTTP/2 server sees it: a TCP
//! socket, the TLS session over one (then the preface below is counted in
//! the decrypted bytes), or a Unix socket.
//!
//! hyper serves whatever implements `AsyncRead + AsyncWrite`, and a
//! connection only ends when hyper's connection future ends. Two kinds of
//! peers never let that happen on their own: one that connects and never
//! sends the HTTP/2 preface (hyper waits for it forever, even during a
//! graceful shutdown), and one that stops reading (its writes stay pending
//! forever). So the wrapper can fail the socket from below:
//!
//! - until the client's connection preface has been read (the magic string
//!   and the whole SETTINGS frame after it) it polls a deadline, and
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
use tonic::transport::server::Connected;

use super::accept::Permit;

/// The client connection preface starts with a 24-byte magic string and a
/// SETTINGS frame, whose 9-byte header carries its payload length: the
/// handshake is complete once `PREFACE_HEAD` bytes and that payload are in.
/// A peer that sends only part of it and stops is cut off by the deadline.
pub const PREFACE_HEAD: usize = 24 + 9;

/// An accepted connection: the socket (or TLS session), its place under the
/// connection caps, a handshake deadline and the forced-close signal.
pub struct Conn<IO = TcpStream> {
    io: IO,
    peer: String,
    _permit: Permit,
    /// Pending until the peer has sent its preface; `None` after.
    handshake: Option<Pin<Box<Sleep>>>,
    handshake_timeout: Duration,
    preface: PrefaceCounter,
    /// Resolves when the server closes every connection; `None` once it has.
    close: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<IO> std::fmt::Debug for Conn<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("preface_bytes", &self.preface.read)
            .finish_non_exhaustive()
    }
}

impl<IO> Conn<IO> {
    /// Wraps `io` (from `peer`); it must send the preface within
    /// `handshake_timeout` and is closed once `close` turns true (or its
    /// sender goes away).
    pub fn new(
        io: IO,
        peer: String,
        permit: Permit,
        handshake_timeout: Duration,
        mut close: watch::Receiver<bool>,
    ) -> Self {
        Conn {
            io,
            peer,
            _permit: permit,
            handshake: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            handshake_timeout,
            preface: PrefaceCounter::new(),
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
                        self.handshake_timeout, self.preface.read
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

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.handshake.is_some() {
            if let Poll::Ready(Ok(())) = r {
                this.saw(&buf.filled()[before..]);
            }
        }
        r
    }
}

impl<IO> Conn<IO> {
    /// Counts bytes read during the handshake and ends the deadline once
    /// the preface is complete.
    fn saw(&mut self, bytes: &[u8]) {
        if self.preface.saw(bytes) {
            self.handshake = None;
        }
    }
}

/// Counts the bytes of a client connection preface as they arrive.
#[derive(Debug)]
struct PrefaceCounter {
    read: usize,
    /// The first [`PREFACE_HEAD`] bytes, for the SETTINGS payload length.
    head: [u8; PREFACE_HEAD],
}

impl PrefaceCounter {
    fn new() -> Self {
        PrefaceCounter {
            read: 0,
            head: [0; PREFACE_HEAD],
        }
    }

    /// Takes the next bytes read; true once the whole preface is in.
    fn saw(&mut self, bytes: &[u8]) -> bool {
        if self.read < PREFACE_HEAD {
            let n = bytes.len().min(PREFACE_HEAD - self.read);
            self.head[self.read..self.read + n].copy_from_slice(&bytes[..n]);
        }
        self.read = self.read.saturating_add(bytes.len());
        if self.read < PREFACE_HEAD {
            return false;
        }
        let settings_len = u32::from_be_bytes([0, self.head[24], self.head[25], self.head[26]]);
        self.read >= PREFACE_HEAD + settings_len as usize
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
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

impl<IO: Connected> Connected for Conn<IO> {
    /// The same as the bare socket's (or TLS session's), so
    /// `Request::remote_addr` and `Request::peer_certs` work.
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_is_the_magic_and_a_whole_settings_frame() {
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS, 12 bytes of payload (two settings).
        preface.extend_from_slice(&[0, 0, 12, 4, 0, 0, 0, 0, 0]);
        preface.extend_from_slice(&[0; 12]);
        for chunk in [1, 7, 24, 33, 44, 45] {
            let mut c = PrefaceCounter::new();
            let mut done = false;
            for (i, piece) in preface.chunks(chunk).enumerate() {
                done = c.saw(piece);
                let so_far = ((i + 1) * chunk).min(preface.len());
                assert_eq!(
                    done,
                    so_far == preface.len(),
                    "chunk {chunk}, {so_far} bytes"
                );
            }
            assert!(done);
        }
        // The magic alone, or with a frame header whose payload is missing,
        // is not a preface.
        let mut c = PrefaceCounter::new();
        assert!(!c.saw(&preface[..24]));
        assert!(!c.saw(&preface[24..40]));
        // An empty SETTINGS frame completes it with its header.
        let mut empty = preface[..24].to_vec();
        empty.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert!(PrefaceCounter::new().saw(&empty));
    }
}
