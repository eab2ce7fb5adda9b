//! The exec output engine: polls `guest-exec-status` for a started guest
//! process and yields its items (started, output chunks, exit), on the
//! domain `ops::agent::exec_start` looked up once, on `Lane::Slow`.
//!
//! It runs in its own task and stops when the process has exited, when the
//! deadline passes (a last `DEADLINE_EXCEEDED` item; the guest process is
//! not killed, the agent has no command for that) or when the consumer goes
//! away. It knows nothing of gRPC: items are `Result<ExecItem, Error>`.

use std::{sync::Arc, time::Duration};

use futures::Stream;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use virt::domain::Domain;

use super::agent::{agent_timeout, exec_status};
use crate::{
    error::Error,
    pool::{HostPool, Lane},
};

/// Largest output chunk in one item.
pub const EXEC_CHUNK: usize = 32 * 1024;
/// First and longest pause between `guest-exec-status` polls.
pub const POLL_MIN: Duration = Duration::from_millis(100);
/// The longest pause between polls (the pause doubles up to it).
pub const POLL_MAX: Duration = Duration::from_millis(500);
/// Items buffered before the engine waits for its consumer.
const BUFFER: usize = 16;

/// One item of an exec stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecItem {
    /// The process runs with this guest pid.
    Started {
        /// The guest pid.
        pid: i64,
    },
    /// A chunk of standard output.
    Stdout(Vec<u8>),
    /// A chunk of standard error.
    Stderr(Vec<u8>),
    /// The process ended (the last item).
    Exited {
        /// Its exit code, if it exited normally.
        exit_code: Option<i32>,
        /// The signal that killed it.
        signal: Option<i32>,
        /// The agent cut standard output short.
        stdout_truncated: bool,
        /// The agent cut standard error short.
        stderr_truncated: bool,
    },
}

/// The items of guest process `pid` on `dom`, ending by `deadline`.
pub fn stream(
    pool: Arc<HostPool>,
    dom: Domain,
    pid: i64,
    deadline: Option<Instant>,
) -> impl Stream<Item = Result<ExecItem, Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(run(pool, dom, pid, deadline, tx));
    ReceiverStream::new(rx)
}

type Tx = mpsc::Sender<Result<ExecItem, Error>>;

/// Sends one item; `false` when the consumer has gone away.
async fn send(tx: &Tx, item: ExecItem) -> bool {
    tx.send(Ok(item)).await.is_ok()
}

async fn run(pool: Arc<HostPool>, dom: Domain, pid: i64, deadline: Option<Instant>, tx: Tx) {
    if !send(&tx, ExecItem::Started { pid }).await {
        return;
    }
    let mut pause = POLL_MIN;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = tx.send(Err(Error::deadline("the guest agent"))).await;
            return;
        }
        let d = dom.clone();
        let timeout = agent_timeout(deadline);
        let status = match pool
            .run(Lane::Slow, deadline, move |_| exec_status(&d, pid, timeout))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // qemu-ga hands out captured output only once the process has
        // exited, so the chunks all arrive after the last poll.
        for chunk in status.stdout.chunks(EXEC_CHUNK) {
            if !send(&tx, ExecItem::Stdout(chunk.to_vec())).await {
                return;
            }
        }
        for chunk in status.stderr.chunks(EXEC_CHUNK) {
            if !send(&tx, ExecItem::Stderr(chunk.to_vec())).await {
                return;
            }
        }
        if status.exited {
            let exit = ExecItem::Exited {
                exit_code: status.exit_code,
                signal: status.signal,
                stdout_truncated: status.stdout_truncated,
                stderr_truncated: status.stderr_truncated,
            };
            let _ = send(&tx, exit).await;
            return;
        }
        let wake = Instant::now() + pause;
        let wake = deadline.map_or(wake, |d| wake.min(d));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = tx.closed() => return,
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}
