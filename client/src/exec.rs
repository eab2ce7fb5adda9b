//! A guest command's output as a stream of typed items ([`Client::exec`]).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use libvirt_grpc::v1;
use tokio_stream::Stream;

use crate::{files::protocol, Client, ClientError};

impl Client {
    /// Runs a program in the guest (`ExecGuestCommand`) and returns its
    /// output as it arrives, as a stream of [`ExecOutput`]: `Started`,
    /// then `Stdout` / `Stderr` chunks, then `Exited` last. A refused start
    /// is this call's error; a failure later (the request's deadline) is
    /// the stream's last item. Dropping the stream stops reading; the guest
    /// process is not killed (the agent cannot).
    pub async fn exec(
        &self,
        request: v1::ExecGuestCommandRequest,
    ) -> Result<ExecStream, ClientError> {
        let inner = self
            .agents()
            .exec_guest_command(self.request(request))
            .await?
            .into_inner();
        Ok(ExecStream { inner, done: false })
    }
}

/// One item of a guest command's output stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// The process runs in the guest with this pid.
    Started {
        /// The guest's process id.
        pid: i64,
    },
    /// A chunk of standard output (at most 32 KiB).
    Stdout(Vec<u8>),
    /// A chunk of standard error (at most 32 KiB).
    Stderr(Vec<u8>),
    /// How the process ended; always the last item.
    Exited(ExecExit),
}

/// How a guest process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecExit {
    /// The exit code of a process that exited.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The agent cut standard output short.
    pub stdout_truncated: bool,
    /// The agent cut standard error short.
    pub stderr_truncated: bool,
}

/// Everything a guest command printed, gathered by [`ExecStream::output`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// The guest's process id.
    pub pid: i64,
    /// All of standard output.
    pub stdout: Vec<u8>,
    /// All of standard error.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub exit: ExecExit,
}

/// The output of a guest command as a [`Stream`] of [`ExecOutput`] (see
/// [`Client::exec`]).
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// use libvirt_grpc_client::ExecOutput;
/// use tokio_stream::StreamExt;
/// let mut out = client.agent("web1").exec("/usr/bin/uptime", Vec::<String>::new()).await?;
/// while let Some(item) = out.next().await {
///     match item? {
///         ExecOutput::Stdout(b) => print!("{}", String::from_utf8_lossy(&b)),
///         ExecOutput::Exited(e) => println!("exit {:?}", e.code),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ExecStream {
    inner: tonic::Streaming<v1::ExecGuestCommandResponse>,
    done: bool,
}

impl ExecStream {
    /// Reads the stream to its end and gathers the output.
    pub async fn output(mut self) -> Result<ExecResult, ClientError> {
        use tokio_stream::StreamExt;
        let mut r = ExecResult::default();
        while let Some(item) = self.next().await {
            match item? {
                ExecOutput::Started { pid } => r.pid = pid,
                ExecOutput::Stdout(b) => r.stdout.extend_from_slice(&b),
                ExecOutput::Stderr(b) => r.stderr.extend_from_slice(&b),
                ExecOutput::Exited(e) => {
                    r.exit = e;
                    return Ok(r);
                }
            }
        }
        Err(protocol("the command's stream ended before it exited"))
    }
}

impl From<v1::GuestExecExited> for ExecExit {
    fn from(e: v1::GuestExecExited) -> Self {
        use v1::guest_exec_exited::Status;
        ExecExit {
            code: match e.status {
                Some(Status::ExitCode(c)) => Some(c),
                _ => None,
            },
            signal: match e.status {
                Some(Status::Signal(s)) => Some(s),
                _ => None,
            },
            stdout_truncated: e.stdout_truncated,
            stderr_truncated: e.stderr_truncated,
        }
    }
}

impl Stream for ExecStream {
    type Item = Result<ExecOutput, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use v1::exec_guest_command_response::Item;
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let msg = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(protocol(
                        "the command's stream ended before it exited",
                    ))));
                }
                Poll::Ready(Some(Err(status))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(status.into())));
                }
                Poll::Ready(Some(Ok(msg))) => msg,
            };
            let out = match msg.item {
                Some(Item::Started(s)) => ExecOutput::Started { pid: s.pid },
                Some(Item::Stdout(b)) => ExecOutput::Stdout(b),
                Some(Item::Stderr(b)) => ExecOutput::Stderr(b),
                Some(Item::Exited(e)) => {
                    self.done = true;
                    ExecOutput::Exited(e.into())
                }
                None => continue,
            };
            return Poll::Ready(Some(Ok(out)));
        }
    }
}
