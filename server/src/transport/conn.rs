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
//!
//! It also gathers writes ([`Outbox`]). hyper runs every HTTP/2 stream as
//! a task of its own, and each message a stream hands to the connection
//! wakes the connection's task, which tokio runs next (its "LIFO slot"):
//! the connection writes and flushes that one message. An event fanned out
//! to 1000 watch streams was ~700 `writev`s, one TCP segment (and one
//! wake-up of the reader) per message. So a flush with bytes waiting first
//! yields once: the connection's task goes to the back of its worker's
//! queue, the streams already woken hand over their messages meanwhile,
//! and the next flush writes them all in one go. A lone answer pays one
//! extra poll of the connection's task, no timer and no wait.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{ready, Context, Poll},
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
    outbox: Outbox,
}

/// How many bytes a connection gathers before it writes them whatever the
/// flushes: the bound on what one connection holds back.
pub const OUTBOX_BYTES: usize = 64 * 1024;

/// Bytes accepted from hyper and not yet written to the socket (see the
/// module doc).
#[derive(Debug, Default)]
struct Outbox {
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    sent: usize,
    /// Whether the flush waiting for these bytes has yielded once.
    yielded: bool,
}

impl Outbox {
    fn waiting(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Takes as much of `bufs` as fits: the number of bytes taken.
    fn take(&mut self, bufs: &[io::IoSlice<'_>]) -> usize {
        let mut taken = 0;
        for b in bufs {
            let room = OUTBOX_BYTES.saturating_sub(self.waiting());
            let n = b.len().min(room);
            self.buf.extend_from_slice(&b[..n]);
            taken += n;
            if n < b.len() {
                break;
            }
        }
        taken
    }

    /// Writes everything waiting to `io`.
    fn drain<IO: AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        self.yielded = false;
        Poll::Ready(Ok(()))
    }
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
            outbox: Outbox::default(),
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
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if this.outbox.waiting() >= OUTBOX_BYTES {
            ready!(this.outbox.drain(&mut this.io, cx))?;
        }
        Poll::Ready(Ok(this.outbox.take(bufs)))
    }

    fn is_write_vectored(&self) -> bool {
        // Every slice is copied into the outbox, whatever the socket.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        if this.outbox.waiting() > 0 {
            if !this.outbox.yielded {
                // Once to the back of the queue, for the streams woken
                // already to add their messages (see the module doc).
                this.outbox.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.outbox.drain(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.outbox.drain(&mut this.io, cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
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
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use futures::task::{waker, ArcWake};
    use tokio::io::AsyncWriteExt;

    use super::super::accept::ConnLimits;
    use super::*;

    /// A socket that records what each write handed it.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().map(|w| w.clone()).unwrap_or_default()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            // At most 10000 bytes a write, as a socket takes what fits.
            let n = buf.len().min(10_000);
            if let Ok(mut w) = self.0.lock() {
                w.push(buf[..n].to_vec());
            }
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(me: &Arc<Self>) {
            me.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn conn(io: Recorder) -> (Conn<Recorder>, watch::Sender<bool>) {
        let (close_tx, close_rx) = watch::channel(false);
        let permit = match ConnLimits::new(1, 1).admit([127, 0, 0, 1].into()) {
            Ok(p) => p,
            Err(_) => panic!("a first connection is admitted"),
        };
        let c = Conn::new(io, "test".into(), permit, Duration::from_secs(60), close_rx);
        (c, close_tx)
    }

    #[tokio::test]
    async fn messages_handed_over_while_a_flush_yields_leave_in_one_write() {
        let io = Recorder::default();
        let (mut c, _close) = conn(io.clone());
        let wakes = Arc::new(Wakes::default());
        let w = waker(wakes.clone());
        let mut cx = Context::from_waker(&w);
        let mut c = Pin::new(&mut c);
        assert!(matches!(
            c.as_mut().poll_write(&mut cx, b"first "),
            Poll::Ready(Ok(6))
        ));
        // The first flush yields, waking its own task, and writes nothing.
        assert!(c.as_mut().poll_flush(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(io.writes().is_empty());
        assert!(matches!(
            c.as_mut().poll_write(&mut cx, b"second"),
            Poll::Ready(Ok(6))
        ));
        // The next one writes both at once.
        assert!(matches!(
            c.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.writes(), vec![b"first second".to_vec()]);
        // Nothing waiting: a flush goes straight through.
        assert!(matches!(
            c.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn every_byte_arrives_in_order_past_the_outbox_bound_and_at_shutdown() {
        let io = Recorder::default();
        let (mut c, _close) = conn(io.clone());
        let data: Vec<u8> = (0..3 * OUTBOX_BYTES + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        assert!(c.write_all(&data).await.is_ok());
        // Written without a flush once more than the bound waits...
        let early: usize = io.writes().iter().map(Vec::len).sum();
        assert!(
            early >= 2 * OUTBOX_BYTES,
            "{early} bytes written before any flush"
        );
        // ...and the rest at shutdown, which flushes first.
        assert!(c.write_all(b"tail").await.is_ok());
        assert!(c.shutdown().await.is_ok());
        let got: Vec<u8> = io.writes().concat();
        assert_eq!(got.len(), data.len() + 4);
        assert_eq!(&got[..data.len()], &data[..]);
        assert_eq!(&got[data.len()..], b"tail");
    }

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
