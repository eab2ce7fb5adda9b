//! The serial console: [`open`] connects a stream to a domain's console,
//! [`spawn`] pumps bytes both ways on a thread of its own until the console
//! closes, the stream fails (another opener took it over with `force`), or
//! the caller goes away.
//!
//! The pump sleeps until libvirt's event loop reports the stream readable or
//! the caller sends bytes (both arrive on one channel), so an idle console
//! costs a parked thread and nothing else. Output waits for the caller
//! (a bounded queue): a slow reader slows the console, it never grows the
//! server's memory.

use std::{
    sync::{
        mpsc::{self, Receiver, Sender},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc as tmpsc, OwnedSemaphorePermit, Semaphore};

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::{
    error::Error,
    libvirt_sys::console::{ConsoleStream, Recv, StreamEvent},
};

/// Largest chunk read from the console at once (and so the largest output
/// message).
const READ_CHUNK: usize = 16 * 1024;

/// Input messages queued for the console before the caller's next message
/// waits (each at most [`MAX_INPUT_BYTES`]).
const INPUT_QUEUE: usize = 16;

/// Largest input message.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// How long one input message may wait for the console to take it (a guest
/// that stopped reading its serial port) before the session fails.
const SEND_PATIENCE: Duration = Duration::from_secs(10);

/// What the pump thread waits for.
enum Signal {
    /// libvirt's event loop: the stream can be read, or closed (a read
    /// tells which).
    Stream,
    /// Bytes from the caller, with their queue slot.
    Input(Vec<u8>, OwnedSemaphorePermit),
    /// The caller went away (cancelled, or its call ended).
    Gone,
}

/// A console opened by [`open`], not yet pumping.
pub struct OpenConsole {
    /// The domain's name.
    pub name: String,
    /// The domain's UUID.
    pub uuid: String,
    stream: ConsoleStream,
    signals: Receiver<Signal>,
    tx: Sender<Signal>,
}

/// How a console session ended.
#[derive(Debug)]
pub enum End {
    /// The console closed (the guest stopped, or libvirt ended the stream).
    Closed,
    /// The caller went away.
    CallerGone,
}

/// Opens console `device` (libvirt's alias such as `serial0`; `None`: the
/// domain's first console) of a running domain. Without `force`, a console
/// another client holds is refused (`FailedPrecondition`); with it, that
/// client's stream fails and this one takes over.
pub fn open(
    conn: &Connect,
    key: &DomainKey,
    device: Option<&str>,
    force: bool,
) -> Result<OpenConsole, Error> {
    let dom = lookup(conn, key)?;
    let (tx, signals) = mpsc::channel();
    let wake = tx.clone();
    let stream = ConsoleStream::open(conn, &dom, device, force, move |_: StreamEvent| {
        // The pump holds the receiver until the stream is dropped, which
        // removes this callback first; a send can only fail in between.
        let _ = wake.send(Signal::Stream);
    })
    .map_err(|e| refine(e, device))?;
    Ok(OpenConsole {
        name: dom.name()?,
        uuid: dom.uuid_string()?,
        stream,
        signals,
        tx,
    })
}

/// Gives libvirt's console errors the code their cause calls for: libvirt
/// 9 reports a busy console as OPERATION_FAILED, a domain without such a
/// device as INTERNAL_ERROR, and a console that is not a pty (a log file)
/// as CONFIG_UNSUPPORTED.
fn refine(e: Error, device: Option<&str>) -> Error {
    let Error::Libvirt { error, .. } = &e else {
        return e;
    };
    let message = error.message();
    let what = device.unwrap_or("the first console");
    if message.contains("Active console session exists") {
        Error::FailedPrecondition(format!(
            "another client holds {what} of this domain: set force to take it over ({message})"
        ))
    } else if message.contains("cannot find character device") {
        Error::NotFound(format!("the domain has no console {what} ({message})"))
    } else if message.contains("not using a PTY") {
        Error::FailedPrecondition(format!(
            "{what} is not an interactive (pty) character device: {message}"
        ))
    } else {
        e
    }
}

/// The caller's end of a running console session.
pub struct ConsoleInput {
    tx: Sender<Signal>,
    slots: Arc<Semaphore>,
}

impl ConsoleInput {
    /// Queues `data` for the console; waits while [`INPUT_QUEUE`] messages
    /// are queued already. Fails once the session ended.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), Error> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("console input queue closed"))?;
        self.tx
            .send(Signal::Input(data, slot))
            .map_err(|_| Error::FailedPrecondition("the console session has ended".into()))
    }
}

impl ConsoleInput {
    /// A value that ends the session when dropped (kept by the output
    /// stream, so that a caller who goes away ends it even while the
    /// console is silent).
    pub fn hang_up_on_drop(&self) -> HangUp {
        HangUp(self.tx.clone())
    }
}

impl Drop for ConsoleInput {
    fn drop(&mut self) {
        let _ = self.tx.send(Signal::Gone);
    }
}

/// Ends a console session when dropped.
pub struct HangUp(Sender<Signal>);

impl Drop for HangUp {
    fn drop(&mut self) {
        let _ = self.0.send(Signal::Gone);
    }
}

/// Starts the pump thread of `console`: what the console prints goes to
/// `output` (the last item is the error that ended the session, if one
/// did); the returned value takes the caller's input, and dropping it ends
/// the session.
pub fn spawn(
    console: OpenConsole,
    output: tmpsc::Sender<Result<Vec<u8>, Error>>,
    on_end: impl FnOnce(&Result<End, Error>) + Send + 'static,
) -> Result<ConsoleInput, Error> {
    let input = ConsoleInput {
        tx: console.tx.clone(),
        slots: Arc::new(Semaphore::new(INPUT_QUEUE)),
    };
    let OpenConsole {
        stream,
        signals,
        tx,
        ..
    } = console;
    drop(tx);
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let end = pump(stream, &signals, &output);
            on_end(&end);
            if let Err(e) = end {
                let _ = output.blocking_send(Err(e));
            }
        })
        .map_err(|e| Error::internal_from("cannot start the console thread", e))?;
    Ok(input)
}

/// The pump: reads whenever libvirt says the stream is readable, writes
/// whatever the caller sends, until one side ends.
fn pump(
    stream: ConsoleStream,
    signals: &Receiver<Signal>,
    output: &tmpsc::Sender<Result<Vec<u8>, Error>>,
) -> Result<End, Error> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let Ok(signal) = signals.recv() else {
            return Ok(End::CallerGone);
        };
        match signal {
            Signal::Gone => return Ok(End::CallerGone),
            Signal::Input(data, _slot) => write_all(&stream, &data)?,
            Signal::Stream => loop {
                match stream.recv(&mut buf).map_err(taken_over)? {
                    Recv::Data(n) => {
                        if output.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                            return Ok(End::CallerGone);
                        }
                    }
                    Recv::WouldBlock => {
                        stream.watch()?;
                        break;
                    }
                    Recv::End => {
                        // Best effort: the console is gone either way.
                        let _ = stream.finish();
                        return Ok(End::Closed);
                    }
                }
            },
        }
    }
}

/// Writes all of `data`, waiting (briefly, in steps) while libvirt's
/// stream would block.
fn write_all(stream: &ConsoleStream, mut data: &[u8]) -> Result<(), Error> {
    let give_up = Instant::now() + SEND_PATIENCE;
    while !data.is_empty() {
        let n = stream.send(data).map_err(taken_over)?;
        if n == 0 {
            if Instant::now() > give_up {
                return Err(Error::FailedPrecondition(format!(
                    "the console took no input for {} s",
                    SEND_PATIENCE.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        data = &data[n.min(data.len())..];
    }
    Ok(())
}

/// A stream that fails mid-session: on libvirt 9 that is what the first
/// opener sees when another one takes the console over with `force`
/// ("stream had I/O failure"); it is reported as such.
fn taken_over(e: Error) -> Error {
    match &e {
        Error::Libvirt { error, .. } => Error::Aborted(format!(
            "the console stream failed; another client may have taken the console over with \
             force ({})",
            error.message()
        )),
        _ => e,
    }
}
