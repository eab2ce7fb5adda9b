//! The guest file transfer engines behind ReadGuestFile and WriteGuestFile
//! (`guest-file-*` agent commands). Each looks the domain up once, when it
//! opens the file, and keeps that domain and the file handle for the whole
//! transfer; every agent call runs on `Lane::Slow`.
//!
//! Guarantees: the guest file handle is closed on every path (end, error,
//! deadline, a consumer or producer that goes away), because the transfer
//! runs in its own task and the close has its own short deadline; the
//! request's deadline ends a transfer with `DEADLINE_EXCEEDED`. The engines
//! know nothing of gRPC: a read yields `Result<ReadItem, Error>`, a write
//! takes any stream of byte chunks whose error type an [`Error`] converts
//! into (the service's idle timeout lives in that stream).

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use virt::domain::Domain;

use super::{
    agent::{agent_timeout, file_close, file_open, file_read, file_seek, file_write},
    domain::DomainKey,
};
use crate::{
    convert::agent::{ReadRange, MAX_FILE_BYTES},
    error::Error,
    pool::{HostPool, Lane},
};

/// Bytes per `guest-file-read` / `guest-file-write` (the agent's data is
/// base64 in one JSON message; 48 KiB keeps each one small).
pub const FILE_CHUNK: usize = 48 * 1024;
/// How long closing a handle may take, even after the request's deadline.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);
/// Items buffered before the read engine waits for its consumer.
const BUFFER: usize = 16;

/// One item of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadItem {
    /// The first item.
    Started {
        /// The file's total size.
        file_size: u64,
        /// The bytes that will follow.
        expected: u64,
    },
    /// The next bytes.
    Data(Vec<u8>),
}

/// An open guest file: the domain it was opened on and its handle.
struct Handle {
    pool: Arc<HostPool>,
    dom: Domain,
    handle: i64,
    deadline: Option<Instant>,
}

impl Handle {
    /// Runs `f` on the domain and handle, on the slow lane, with the agent
    /// timeout of the request's deadline.
    async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Domain, i64, i32) -> Result<T, Error> + Send + 'static,
    {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::deadline("the guest agent"));
        }
        let (dom, h, timeout) = (self.dom.clone(), self.handle, agent_timeout(self.deadline));
        self.pool
            .run(Lane::Slow, self.deadline, move |_| f(&dom, h, timeout))
            .await
    }

    /// Closes the handle, with its own deadline so that it runs even after
    /// the request's deadline has passed; a failure is logged.
    async fn close(self) {
        let (dom, h) = (self.dom, self.handle);
        let deadline = Some(Instant::now() + CLOSE_DEADLINE);
        let secs = CLOSE_DEADLINE.as_secs() as i32;
        let closed = self
            .pool
            .run(Lane::Slow, deadline, move |_| file_close(&dom, h, secs))
            .await;
        if let Err(e) = closed {
            tracing::warn!(error = %e, handle = h, "cannot close a guest file handle");
        }
    }
}

/// Opens `path` with `mode` on the domain `key` names.
async fn open(
    pool: Arc<HostPool>,
    key: DomainKey,
    path: String,
    mode: &'static str,
    deadline: Option<Instant>,
) -> Result<Handle, Error> {
    let timeout = agent_timeout(deadline);
    let (dom, handle) = pool
        .run(Lane::Slow, deadline, move |c| {
            file_open(c, &key, &path, mode, timeout)
        })
        .await?;
    Ok(Handle {
        pool,
        dom,
        handle,
        deadline,
    })
}

/// Opens, measures and positions the file before answering (a missing file
/// or an oversized range is the call's error), then streams `range`: first
/// [`ReadItem::Started`], then the bytes in chunks of at most
/// [`FILE_CHUNK`].
pub async fn read(
    pool: Arc<HostPool>,
    key: DomainKey,
    range: ReadRange,
    deadline: Option<Instant>,
) -> Result<impl Stream<Item = Result<ReadItem, Error>> + Send + 'static, Error> {
    let h = open(pool, key, range.path.clone(), "r", deadline).await?;
    let offset = range.offset;
    let sized = h
        .run(move |d, h, t| {
            let size = file_seek(d, h, 0, "end", t)?;
            file_seek(d, h, offset, "set", t)?;
            Ok(size)
        })
        .await;
    let size = match sized {
        Ok(size) => size,
        Err(e) => {
            h.close().await;
            return Err(e);
        }
    };
    let available = size.saturating_sub(offset as u64);
    if range.length == 0 && available > MAX_FILE_BYTES {
        h.close().await;
        return Err(Error::invalid(
            "length_bytes",
            format!(
                "the file has {available} bytes from offset_bytes, more than 64 MiB: read it in ranges"
            ),
        ));
    }
    let want = match range.length {
        0 => available,
        n => n.min(available),
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        read_loop(&h, size, want, &tx).await;
        h.close().await;
    });
    Ok(ReceiverStream::new(rx))
}

/// Sends the items of a read until `want` bytes, the end of the file, an
/// error or a consumer that went away.
async fn read_loop(h: &Handle, size: u64, want: u64, tx: &mpsc::Sender<Result<ReadItem, Error>>) {
    let started = ReadItem::Started {
        file_size: size,
        expected: want,
    };
    if tx.send(Ok(started)).await.is_err() {
        return;
    }
    let mut sent = 0u64;
    while sent < want {
        let count = (want - sent).min(FILE_CHUNK as u64) as usize;
        let (data, eof) = match h.run(move |d, h, t| file_read(d, h, count, t)).await {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        sent += data.len() as u64;
        let empty = data.is_empty();
        if !empty && tx.send(Ok(ReadItem::Data(data))).await.is_err() {
            return;
        }
        if eof || empty {
            return;
        }
    }
}

/// Opens `path` (mode `w` or `a`) on the domain `key` names, writes every
/// chunk of `inbound` to it in order (at most 64 MiB in total) and closes
/// it on every path; returns the bytes written. What was written before an
/// error stays written.
pub async fn write<S, E>(
    pool: Arc<HostPool>,
    key: DomainKey,
    path: String,
    mode: &'static str,
    deadline: Option<Instant>,
    inbound: S,
) -> Result<u64, E>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Send + Unpin + 'static,
    E: From<Error> + Send + 'static,
{
    let h = open(pool, key, path, mode, deadline).await?;
    // The copy runs in its own task, so that the handle is closed even
    // when the caller goes away and its future is dropped.
    let task = tokio::spawn(async move {
        let result = write_loop(&h, inbound).await;
        h.close().await;
        result
    });
    task.await
        .map_err(|e| E::from(Error::internal_from("the guest file write task failed", e)))?
}

async fn write_loop<S, E>(h: &Handle, mut inbound: S) -> Result<u64, E>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: From<Error>,
{
    let mut written = 0u64;
    while let Some(data) = inbound.next().await {
        let data = data?;
        if written + data.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::invalid("data", "more than 64 MiB in total").into());
        }
        for chunk in data.chunks(FILE_CHUNK) {
            let chunk = chunk.to_vec();
            let len = chunk.len() as u64;
            let n = h.run(move |d, h, t| file_write(d, h, &chunk, t)).await?;
            if n != len {
                return Err(Error::internal(format!("the agent wrote {n} of {len} bytes")).into());
            }
            written += n;
        }
    }
    Ok(written)
}
