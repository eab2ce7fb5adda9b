//! `GuestAgentService`: typed calls to the QEMU guest agent, the raw escape
//! hatch, a streaming exec and streamed file transfers. Every agent call runs
//! on `Lane::Slow` so a slow guest never occupies the quick lanes.
//!
//! Streams (exec, file read, file write) are driven by a spawned task that
//! owns the guest-side resources: it keeps going when the client goes away
//! only long enough to clean up (close the guest file handle), and it ends
//! the stream with `DEADLINE_EXCEEDED` when the request's deadline passes.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use libvirt_grpc::v1::{self, guest_agent_service_server::GuestAgentService};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use virt::{connect::Connect, domain::Domain, sys};

use super::{deadline, domain_target, next_message, ok, DEFAULT_STREAM_IDLE};
use crate::{
    error::Error,
    libvirt_sys,
    ops::{agent as ops, domain::lookup, domain::DomainKey},
    pool::{HostPool, Hosts, Lane},
    validate,
};

/// Largest file ReadFile / WriteFile move in one call.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes per `guest-file-read` / per streamed chunk (the agent's reads are
/// base64 in one JSON reply; 48 KiB keeps each reply small).
const FILE_CHUNK: usize = 48 * 1024;
/// Largest exec output chunk sent in one stream message.
const EXEC_CHUNK: usize = 32 * 1024;
/// Largest exec stdin.
const MAX_STDIN: usize = 1024 * 1024;
/// First and longest pause between `guest-exec-status` polls.
const POLL_MIN: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_millis(500);
/// Messages buffered per stream before the producer waits for the client.
const STREAM_BUFFER: usize = 16;
/// Longest agent timeout we hand libvirt.
const MAX_AGENT_TIMEOUT_SECS: u64 = 300;

/// The `GuestAgentService` implementation.
#[derive(Debug, Clone)]
pub struct GuestAgentApi {
    hosts: Hosts,
    stream_idle: Duration,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The agent timeout (seconds) for a call that must finish by `deadline`.
fn agent_timeout(deadline: Option<Instant>) -> i32 {
    match deadline {
        None => ops::DEFAULT_AGENT_TIMEOUT_SECS,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            let secs = left.as_millis().div_ceil(1000) as u64;
            secs.clamp(1, MAX_AGENT_TIMEOUT_SECS) as i32
        }
    }
}

/// One resolved target: the host's pool and the domain key.
#[derive(Clone)]
struct Target {
    pool: Arc<HostPool>,
    key: DomainKey,
    deadline: Option<Instant>,
}

impl Target {
    /// Runs `f` on the domain, on the slow lane, with the agent timeout.
    async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &Domain, i32) -> Result<T, Error> + Send + 'static,
    {
        let key = self.key.clone();
        let timeout = agent_timeout(self.deadline);
        self.pool
            .run(Lane::Slow, self.deadline, move |c| {
                let d = lookup(c, &key)?;
                f(c, &d, timeout)
            })
            .await
    }
}

impl GuestAgentApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        GuestAgentApi {
            hosts,
            stream_idle: DEFAULT_STREAM_IDLE,
        }
    }

    /// How long WriteFile waits for the client's next message.
    pub fn with_stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }

    fn target<T>(&self, req: &Request<T>, r: Option<&v1::DomainRef>) -> Result<Target, Error> {
        let (pool, key) = domain_target(&self.hosts, r)?;
        Ok(Target {
            pool,
            key,
            deadline: deadline(req),
        })
    }
}

fn user_field(user: &str) -> Result<(), Error> {
    validate::required_text("user", user)
}

fn keys_field(keys: &[String]) -> Result<(), Error> {
    if keys.is_empty() {
        return Err(Error::invalid("keys", "at least one key is required"));
    }
    for (i, k) in keys.iter().enumerate() {
        validate::required_text(&format!("keys[{i}]"), k)?;
        if k.contains('\n') {
            return Err(Error::invalid(format!("keys[{i}]"), "must be one line"));
        }
    }
    Ok(())
}

fn mountpoints_field(mps: &[String]) -> Result<(), Error> {
    for (i, m) in mps.iter().enumerate() {
        validate::absolute_path(&format!("mountpoints[{i}]"), m)?;
    }
    Ok(())
}

/// A cpu list string (`1,3`) for libvirt from vCPU numbers.
fn cpu_list(vcpus: &[u32]) -> Result<String, Error> {
    if vcpus.is_empty() {
        return Err(Error::invalid("vcpus", "at least one vCPU is required"));
    }
    Ok(vcpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// Sends on a stream; `false` when the client has gone away.
async fn send<T>(tx: &mpsc::Sender<Result<T, Status>>, item: Result<T, Status>) -> bool {
    tx.send(item).await.is_ok()
}

fn deadline_status() -> Status {
    Error::deadline("the guest agent").into()
}

#[tonic::async_trait]
impl GuestAgentService for GuestAgentApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn ping(
        &self,
        req: Request<v1::PingRequest>,
    ) -> Result<Response<v1::PingResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        t.run(|_, d, timeout| {
            ops::command(d, &serde_json::json!({"execute": "guest-ping"}), timeout)
        })
        .await?;
        ok(v1::PingResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn run_agent_command(
        &self,
        req: Request<v1::RunAgentCommandRequest>,
    ) -> Result<Response<v1::RunAgentCommandResponse>, Status> {
        let r = req.get_ref();
        let t = self.target(&req, r.domain.as_ref())?;
        let cmd: serde_json::Value = serde_json::from_str(&r.command_json)
            .map_err(|e| Error::invalid("command_json", format!("is not JSON: {e}")))?;
        if !cmd.get("execute").is_some_and(serde_json::Value::is_string) {
            return Err(Error::invalid(
                "command_json",
                "must be an object with an \"execute\" string",
            )
            .into());
        }
        // Re-serialised: no NUL byte can reach libvirt (JSON escapes it).
        let cmd = cmd.to_string();
        // The caller's own timeout, but never past the request's deadline.
        let requested = r.timeout_seconds.min(MAX_AGENT_TIMEOUT_SECS as u32) as i32;
        let has_deadline = t.deadline.is_some();
        let result_json = t
            .run(move |_, d, by_deadline| {
                let timeout = match (requested, has_deadline) {
                    (0, _) => by_deadline,
                    (r, false) => r,
                    (r, true) => r.min(by_deadline),
                };
                ops::raw_command(d, &cmd, timeout)
            })
            .await?;
        ok(v1::RunAgentCommandResponse { result_json })
    }

    type ExecStream = BoxStream<v1::ExecResponse>;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn exec(
        &self,
        req: Request<v1::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        validate::absolute_path("path", &r.path)?;
        for (i, a) in r.args.iter().enumerate() {
            validate::text(&format!("args[{i}]"), a)?;
        }
        for (i, e) in r.env.iter().enumerate() {
            validate::text(&format!("env[{i}]"), e)?;
            if !e.contains('=') {
                return Err(Error::invalid(format!("env[{i}]"), "must be NAME=value").into());
            }
        }
        if r.stdin.len() > MAX_STDIN {
            return Err(Error::invalid("stdin", "is larger than 1 MiB").into());
        }
        // Start before answering: a refused start is the call's status.
        let pid = {
            let r = r.clone();
            t.run(move |_, d, timeout| ops::exec_start(d, &r, timeout))
                .await?
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(exec_loop(t, pid, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ReadFileStream = BoxStream<v1::ReadFileResponse>;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn read_file(
        &self,
        req: Request<v1::ReadFileRequest>,
    ) -> Result<Response<Self::ReadFileStream>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        validate::absolute_path("path", &r.path)?;
        if r.length > MAX_FILE_BYTES {
            return Err(Error::invalid("length", "is more than 64 MiB").into());
        }
        let offset =
            i64::try_from(r.offset).map_err(|_| Error::invalid("offset", "is too large"))?;
        // Open, measure and position before answering, so that a missing
        // file or an oversized range is the call's status.
        let path = r.path.clone();
        let (handle, size) = t
            .run(move |_, d, timeout| {
                let h = ops::file_open(d, &path, "r", timeout)?;
                let sized = ops::file_seek(d, h, 0, "end", timeout)
                    .and_then(|size| ops::file_seek(d, h, offset, "set", timeout).map(|_| size));
                match sized {
                    Ok(size) => Ok((h, size)),
                    Err(e) => {
                        let _ = ops::file_close(d, h, timeout);
                        Err(e)
                    }
                }
            })
            .await?;
        let available = size.saturating_sub(r.offset);
        let want = if r.length == 0 {
            available
        } else {
            r.length.min(available)
        };
        if r.length == 0 && available > MAX_FILE_BYTES {
            close_file(&t, handle).await;
            return Err(Error::invalid(
                "length",
                format!("the file has {available} bytes from offset, more than 64 MiB: read it in ranges"),
            )
            .into());
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(read_loop(t, handle, size, want, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn write_file(
        &self,
        req: Request<Streaming<v1::WriteFileRequest>>,
    ) -> Result<Response<v1::WriteFileResponse>, Status> {
        let dl = deadline(&req);
        let idle = self.stream_idle;
        let mut inbound = req.into_inner();
        let first = next_message(&mut inbound, idle, dl)
            .await?
            .ok_or_else(|| Error::invalid("domain", "the stream carried no message"))?;
        let (pool, key) = domain_target(&self.hosts, first.domain.as_ref())?;
        tracing::Span::current().record("host", pool.name());
        validate::absolute_path("path", &first.path)?;
        let t = Target {
            pool,
            key,
            deadline: dl,
        };
        let mode = if first.append { "a" } else { "w" };
        let path = first.path.clone();
        let handle = t
            .run(move |_, d, timeout| ops::file_open(d, &path, mode, timeout))
            .await?;
        // The copy runs in its own task, so that the handle is closed even
        // when the client goes away and this future is dropped.
        let task = tokio::spawn(async move {
            let result = write_loop(&t, handle, first.data, &mut inbound, idle).await;
            close_file(&t, handle).await;
            result
        });
        let written = task
            .await
            .map_err(|e| Error::internal_from("write task failed", e))??;
        ok(v1::WriteFileResponse {
            bytes_written: written,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn freeze_filesystems(
        &self,
        req: Request<v1::FreezeFilesystemsRequest>,
    ) -> Result<Response<v1::FreezeFilesystemsResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let mps = req.into_inner().mountpoints;
        mountpoints_field(&mps)?;
        let frozen = t
            .run(move |_, d, _| libvirt_sys::fs_freeze(d, &mps))
            .await?;
        ok(v1::FreezeFilesystemsResponse { frozen })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn thaw_filesystems(
        &self,
        req: Request<v1::ThawFilesystemsRequest>,
    ) -> Result<Response<v1::ThawFilesystemsResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let mps = req.into_inner().mountpoints;
        mountpoints_field(&mps)?;
        let thawed = t.run(move |_, d, _| libvirt_sys::fs_thaw(d, &mps)).await?;
        ok(v1::ThawFilesystemsResponse { thawed })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_freeze_status(
        &self,
        req: Request<v1::GetFreezeStatusRequest>,
    ) -> Result<Response<v1::GetFreezeStatusResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let status = t
            .run(|_, d, timeout| ops::freeze_status(d, timeout))
            .await?;
        ok(v1::GetFreezeStatusResponse {
            status: status as i32,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn trim_filesystems(
        &self,
        req: Request<v1::TrimFilesystemsRequest>,
    ) -> Result<Response<v1::TrimFilesystemsResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        let mp = (!r.mountpoint.is_empty()).then_some(r.mountpoint);
        if let Some(m) = &mp {
            validate::absolute_path("mountpoint", m)?;
        }
        let min = r.minimum_bytes;
        t.run(move |_, d, _| libvirt_sys::fs_trim(d, mp.as_deref(), min))
            .await?;
        ok(v1::TrimFilesystemsResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_filesystems(
        &self,
        req: Request<v1::GetFilesystemsRequest>,
    ) -> Result<Response<v1::GetFilesystemsResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let list = t.run(|_, d, _| libvirt_sys::fs_info(d)).await?;
        ok(v1::GetFilesystemsResponse {
            filesystems: list
                .into_iter()
                .map(|f| v1::GuestFilesystemMount {
                    mountpoint: f.mountpoint,
                    name: f.name,
                    fstype: f.fstype,
                    disk_aliases: f.dev_aliases,
                })
                .collect(),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_info(
        &self,
        req: Request<v1::GetGuestInfoRequest>,
    ) -> Result<Response<v1::GetGuestInfoResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let mut types = 0;
        for (i, k) in req.get_ref().kinds.iter().enumerate() {
            let kind = v1::GuestInfoKind::try_from(*k)
                .ok()
                .filter(|k| *k != v1::GuestInfoKind::Unspecified)
                .ok_or_else(|| Error::invalid(format!("kinds[{i}]"), "unknown kind"))?;
            types |= ops::guest_info_type(kind);
        }
        let info = t.run(move |_, d, _| ops::guest_info(d, types)).await?;
        ok(info)
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_hostname(
        &self,
        req: Request<v1::GetHostnameRequest>,
    ) -> Result<Response<v1::GetHostnameResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        use v1::HostnameSource as S;
        let flags = match S::try_from(req.get_ref().source)
            .map_err(|_| Error::invalid("source", "unknown source"))?
        {
            // The driver's default: the agent for QEMU; the test driver
            // accepts no flag at all.
            S::Unspecified => 0,
            S::Agent => sys::VIR_DOMAIN_GET_HOSTNAME_AGENT,
            S::Lease => sys::VIR_DOMAIN_GET_HOSTNAME_LEASE,
        };
        let hostname = t.run(move |_, d, _| Ok(d.hostname(flags)?)).await?;
        ok(v1::GetHostnameResponse { hostname })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_interface_addresses(
        &self,
        req: Request<v1::GetInterfaceAddressesRequest>,
    ) -> Result<Response<v1::GetInterfaceAddressesResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        use v1::InterfaceAddressSource as S;
        let source = match S::try_from(req.get_ref().source)
            .map_err(|_| Error::invalid("source", "unknown source"))?
        {
            S::Unspecified | S::Agent => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            S::Lease => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            S::Arp => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        };
        let list = t
            .run(move |_, d, _| Ok(d.interface_addresses(source, 0)?))
            .await?;
        ok(v1::GetInterfaceAddressesResponse {
            interfaces: ops::interfaces(list),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_time(
        &self,
        req: Request<v1::GetTimeRequest>,
    ) -> Result<Response<v1::GetTimeResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let (seconds, nanos) = t.run(|_, d, _| Ok(d.time(0)?)).await?;
        ok(v1::GetTimeResponse {
            seconds,
            nanos: nanos.max(0) as u32,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_time(
        &self,
        req: Request<v1::SetTimeRequest>,
    ) -> Result<Response<v1::SetTimeResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        if r.nanos >= 1_000_000_000 {
            return Err(Error::invalid("nanos", "must be below 1000000000").into());
        }
        let (secs, nanos, flags) = if r.sync {
            (0, 0, sys::VIR_DOMAIN_TIME_SYNC)
        } else {
            (r.seconds, r.nanos as i32, 0)
        };
        t.run(move |_, d, _| Ok(d.set_time(secs, nanos, flags)?))
            .await?;
        ok(v1::SetTimeResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_user_password(
        &self,
        req: Request<v1::SetUserPasswordRequest>,
    ) -> Result<Response<v1::SetUserPasswordResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        user_field(&r.user)?;
        validate::required_text("password", &r.password)?;
        let flags = if r.encrypted {
            sys::VIR_DOMAIN_PASSWORD_ENCRYPTED
        } else {
            0
        };
        t.run(move |_, d, _| Ok(d.set_user_password(&r.user, &r.password, flags)?))
            .await?;
        ok(v1::SetUserPasswordResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_authorized_keys(
        &self,
        req: Request<v1::GetAuthorizedKeysRequest>,
    ) -> Result<Response<v1::GetAuthorizedKeysResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let user = req.into_inner().user;
        user_field(&user)?;
        let keys = t
            .run(move |_, d, _| libvirt_sys::ssh_keys_get(d, &user))
            .await?;
        ok(v1::GetAuthorizedKeysResponse { keys })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn add_authorized_keys(
        &self,
        req: Request<v1::AddAuthorizedKeysRequest>,
    ) -> Result<Response<v1::AddAuthorizedKeysResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        user_field(&r.user)?;
        keys_field(&r.keys)?;
        let flags = sys::VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND;
        t.run(move |_, d, _| libvirt_sys::ssh_keys_set(d, &r.user, &r.keys, flags))
            .await?;
        ok(v1::AddAuthorizedKeysResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn remove_authorized_keys(
        &self,
        req: Request<v1::RemoveAuthorizedKeysRequest>,
    ) -> Result<Response<v1::RemoveAuthorizedKeysResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        user_field(&r.user)?;
        keys_field(&r.keys)?;
        let flags = sys::VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE;
        t.run(move |_, d, _| libvirt_sys::ssh_keys_set(d, &r.user, &r.keys, flags))
            .await?;
        ok(v1::RemoveAuthorizedKeysResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_vcpus(
        &self,
        req: Request<v1::GetGuestVcpusRequest>,
    ) -> Result<Response<v1::GetGuestVcpusResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = t.run(|_, d, _| ops::guest_vcpus(d)).await?;
        ok(r)
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_guest_vcpus(
        &self,
        req: Request<v1::SetGuestVcpusRequest>,
    ) -> Result<Response<v1::SetGuestVcpusResponse>, Status> {
        let t = self.target(&req, req.get_ref().domain.as_ref())?;
        let r = req.into_inner();
        let map = cpu_list(&r.vcpus)?;
        let online = r.online;
        t.run(move |_, d, _| libvirt_sys::set_guest_vcpus(d, &map, online))
            .await?;
        ok(v1::SetGuestVcpusResponse {})
    }
}

/// Polls `guest-exec-status` until the process exits, the deadline passes
/// or the client goes away; sends output in chunks, then the exit status.
async fn exec_loop(t: Target, pid: i64, tx: mpsc::Sender<Result<v1::ExecResponse, Status>>) {
    use v1::exec_response::Item;
    let msg = |item| Ok(v1::ExecResponse { item: Some(item) });
    if !send(&tx, msg(Item::Started(v1::ExecStarted { pid }))).await {
        return;
    }
    let mut pause = POLL_MIN;
    loop {
        if t.deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = tx.send(Err(deadline_status())).await;
            return;
        }
        let status = match t
            .run(move |_, d, timeout| ops::exec_status(d, pid, timeout))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        // qemu-ga hands out captured output only once the process has
        // exited, so the chunks all arrive after the last poll.
        for chunk in status.stdout.chunks(EXEC_CHUNK) {
            if !send(&tx, msg(Item::Stdout(chunk.to_vec()))).await {
                return;
            }
        }
        for chunk in status.stderr.chunks(EXEC_CHUNK) {
            if !send(&tx, msg(Item::Stderr(chunk.to_vec()))).await {
                return;
            }
        }
        if status.exited {
            use v1::exec_exited::Status as S;
            let exit = v1::ExecExited {
                status: match (status.exit_code, status.signal) {
                    (_, Some(sig)) => Some(S::Signal(sig)),
                    (Some(code), None) => Some(S::ExitCode(code)),
                    (None, None) => None,
                },
                stdout_truncated: status.stdout_truncated,
                stderr_truncated: status.stderr_truncated,
            };
            let _ = tx.send(msg(Item::Exited(exit))).await;
            return;
        }
        let wake = Instant::now() + pause;
        let wake = t.deadline.map_or(wake, |d| wake.min(d));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = tx.closed() => return,
        }
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Closes a guest file handle, with its own short deadline so that it runs
/// even after the request's deadline has passed.
async fn close_file(t: &Target, handle: i64) {
    let key = t.key.clone();
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    let closed = t
        .pool
        .run(Lane::Slow, deadline, move |c| {
            let d = lookup(c, &key)?;
            ops::file_close(&d, handle, 10)
        })
        .await;
    if let Err(e) = closed {
        tracing::warn!(error = %e, handle, "cannot close a guest file handle");
    }
}

/// Streams `want` bytes of an open guest file, then closes it.
async fn read_loop(
    t: Target,
    handle: i64,
    size: u64,
    want: u64,
    tx: mpsc::Sender<Result<v1::ReadFileResponse, Status>>,
) {
    let mut sent = 0u64;
    let mut first = true;
    loop {
        if t.deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = tx.send(Err(deadline_status())).await;
            break;
        }
        let count = (want - sent).min(FILE_CHUNK as u64) as usize;
        if count == 0 && !first {
            break;
        }
        let read = if count == 0 {
            Ok((Vec::new(), true))
        } else {
            t.run(move |_, d, timeout| ops::file_read(d, handle, count, timeout))
                .await
        };
        let (data, eof) = match read {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                break;
            }
        };
        sent += data.len() as u64;
        let item = v1::ReadFileResponse {
            data,
            file_size: if first { size } else { 0 },
        };
        first = false;
        if !send(&tx, Ok(item)).await {
            break;
        }
        if eof || sent >= want {
            break;
        }
    }
    close_file(&t, handle).await;
}

/// Writes the stream's data to an open guest file; returns the byte count.
async fn write_loop(
    t: &Target,
    handle: i64,
    first: Vec<u8>,
    inbound: &mut Streaming<v1::WriteFileRequest>,
    idle: Duration,
) -> Result<u64, Status> {
    let mut written = 0u64;
    let mut pending = first;
    loop {
        if written + pending.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::invalid("data", "more than 64 MiB in total").into());
        }
        for chunk in pending.chunks(FILE_CHUNK) {
            if t.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(deadline_status());
            }
            let chunk = chunk.to_vec();
            let len = chunk.len() as u64;
            let n = t
                .run(move |_, d, timeout| ops::file_write(d, handle, &chunk, timeout))
                .await?;
            if n != len {
                return Err(Error::internal(format!("the agent wrote {n} of {len} bytes")).into());
            }
            written += n;
        }
        // A client that stops sending is cut off after `idle`: the handle
        // is closed (by the caller) and what was written stays written.
        match next_message(inbound, idle, t.deadline).await? {
            Some(m) => pending = m.data,
            None => return Ok(written),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn agent_timeouts_follow_the_deadline() {
        assert_eq!(agent_timeout(None), ops::DEFAULT_AGENT_TIMEOUT_SECS);
        let soon = Instant::now() + Duration::from_millis(1500);
        assert_eq!(agent_timeout(Some(soon)), 2);
        assert_eq!(agent_timeout(Some(Instant::now())), 1);
        let far = Instant::now() + Duration::from_secs(10_000);
        assert_eq!(agent_timeout(Some(far)), MAX_AGENT_TIMEOUT_SECS as i32);
    }

    #[test]
    fn vcpu_lists_and_keys() {
        assert_eq!(cpu_list(&[1, 3]).unwrap(), "1,3");
        assert!(cpu_list(&[]).is_err());
        assert!(keys_field(&["ssh-ed25519 AAAA a".into()]).is_ok());
        assert!(keys_field(&[]).is_err());
        assert!(keys_field(&["a\nb".into()]).is_err());
        assert!(mountpoints_field(&["/".into()]).is_ok());
        assert!(mountpoints_field(&["rel".into()]).is_err());
    }
}
