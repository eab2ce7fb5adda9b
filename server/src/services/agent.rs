//! `GuestAgentService`: typed calls to the QEMU guest agent, the raw escape
//! hatch, a streaming exec and streamed file transfers. Each handler turns
//! the request into validated values (`convert::agent`, every bad field in
//! one `INVALID_ARGUMENT`), resolves the domain (`resolve::Target`), runs
//! one `ops` function on `Lane::Slow` (a slow guest never occupies the
//! quick lanes) and converts the answer.
//!
//! The streams are driven by the engines `ops::guest_exec` and
//! `ops::guest_file`, which own the guest-side resources; this module only
//! maps their items and errors onto gRPC.

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use libvirt_grpc::v1::{self, guest_agent_service_server::GuestAgentService};
use tonic::{Request, Response, Status, Streaming};

use super::{deadline, next_message, ok, resolve::Target, DEFAULT_STREAM_IDLE};
use crate::{
    convert::agent as convert,
    error::Error,
    ops::{agent as ops, domain::DomainKey, guest_exec, guest_file},
    pool::{Hosts, Lane},
};

/// The `GuestAgentService` implementation.
#[derive(Debug, Clone)]
pub struct GuestAgentApi {
    hosts: Hosts,
    stream_idle: Duration,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Resolves the request's domain and checks its other fields: every bad
/// field of both in one `INVALID_ARGUMENT`.
fn resolve<P>(
    hosts: &Hosts,
    domain: Option<&v1::DomainRef>,
    params: Result<P, Error>,
) -> Result<(Target<DomainKey>, P), Error> {
    resolve_at(hosts, domain, "domain", params)
}

/// [`resolve`] for a domain in request field `field`.
fn resolve_at<P>(
    hosts: &Hosts,
    domain: Option<&v1::DomainRef>,
    field: &str,
    params: Result<P, Error>,
) -> Result<(Target<DomainKey>, P), Error> {
    Target::resolve_with(hosts, domain, field, params)
}

/// An engine's items as a gRPC stream.
fn grpc_stream<S, I, T>(items: S) -> BoxStream<T>
where
    S: Stream<Item = Result<I, Error>> + Send + 'static,
    T: From<I> + Send + 'static,
{
    Box::pin(items.map(|r| r.map(T::from).map_err(Status::from)))
}

impl GuestAgentApi {
    /// Adds or removes `keys` of guest user `user` in the domain `r` names.
    async fn change_keys(
        &self,
        dl: Option<tokio::time::Instant>,
        r: Option<&v1::DomainRef>,
        user: String,
        keys: Vec<String>,
        change: convert::KeyChange,
    ) -> Result<(), Error> {
        let (t, flags) = resolve(&self.hosts, r, convert::key_change(&user, &keys, change))?;
        t.run(Lane::Slow, dl, move |c, k, _| {
            ops::set_authorized_keys(c, k, &user, &keys, flags)
        })
        .await
    }

    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        GuestAgentApi {
            hosts,
            stream_idle: DEFAULT_STREAM_IDLE,
        }
    }

    /// How long WriteGuestFile waits for the client's next message.
    pub fn with_stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.stream_idle = idle;
        self
    }
}

/// The data of the messages after a write's first: a second `target` is
/// INVALID_ARGUMENT, a client silent for `idle` is ABORTED.
fn write_data(
    inbound: Streaming<v1::WriteGuestFileRequest>,
    idle: Duration,
    dl: Option<tokio::time::Instant>,
) -> impl Stream<Item = Result<Vec<u8>, Status>> + Send + Unpin + 'static {
    use v1::write_guest_file_request::Item;
    Box::pin(futures::stream::unfold(
        Some(inbound),
        move |s| async move {
            let mut s = s?;
            let item = match next_message(&mut s, idle, dl).await {
                Ok(None) => return None,
                Ok(Some(m)) => match m.item {
                    Some(Item::Data(d)) => Ok(d),
                    None => Ok(Vec::new()),
                    Some(Item::Target(_)) => Err(Status::from(Error::invalid(
                        "target",
                        "only the first message carries the target",
                    ))),
                },
                Err(e) => Err(e),
            };
            let next = item.is_ok().then_some(s);
            Some((item, next))
        },
    ))
}

#[tonic::async_trait]
impl GuestAgentService for GuestAgentApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn ping_guest_agent(
        &self,
        req: Request<v1::PingGuestAgentRequest>,
    ) -> Result<Response<v1::PingGuestAgentResponse>, Status> {
        let dl = deadline(&req);
        let t = Target::resolve(&self.hosts, req.get_ref().domain.as_ref(), "domain")?;
        let timeout = ops::agent_timeout(dl);
        t.run(Lane::Slow, dl, move |c, k, _| ops::ping(c, k, timeout))
            .await?;
        ok(v1::PingGuestAgentResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn run_guest_agent_command(
        &self,
        req: Request<v1::RunGuestAgentCommandRequest>,
    ) -> Result<Response<v1::RunGuestAgentCommandResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, cmd) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::RawCommand::try_from(r),
        )?;
        let timeout = ops::command_timeout(cmd.timeout, dl);
        let result_json = t
            .run(Lane::Slow, dl, move |c, k, _| {
                ops::raw_command(c, k, &cmd.json, timeout)
            })
            .await?;
        ok(v1::RunGuestAgentCommandResponse { result_json })
    }

    type ExecGuestCommandStream = BoxStream<v1::ExecGuestCommandResponse>;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn exec_guest_command(
        &self,
        req: Request<v1::ExecGuestCommandRequest>,
    ) -> Result<Response<Self::ExecGuestCommandStream>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let domain = r.domain.clone();
        let (t, spec) = resolve(&self.hosts, domain.as_ref(), ops::ExecSpec::try_from(r))?;
        // Start before answering: a refused start is the call's status.
        let timeout = ops::agent_timeout(dl);
        let (dom, pid) = t
            .run(Lane::Slow, dl, move |c, k, _| {
                ops::exec_start(c, k, &spec, timeout)
            })
            .await?;
        let items = guest_exec::stream(t.pool, dom, pid, dl);
        Ok(Response::new(grpc_stream(items)))
    }

    type ReadGuestFileStream = BoxStream<v1::ReadGuestFileResponse>;

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn read_guest_file(
        &self,
        req: Request<v1::ReadGuestFileRequest>,
    ) -> Result<Response<Self::ReadGuestFileStream>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, range) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::ReadRange::try_from(r),
        )?;
        let items = guest_file::read(t.pool, t.key, range, dl).await?;
        Ok(Response::new(grpc_stream(items)))
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn write_guest_file(
        &self,
        req: Request<Streaming<v1::WriteGuestFileRequest>>,
    ) -> Result<Response<v1::WriteGuestFileResponse>, Status> {
        use v1::write_guest_file_request::Item;
        let dl = deadline(&req);
        let idle = self.stream_idle;
        let mut inbound = req.into_inner();
        let first = next_message(&mut inbound, idle, dl).await?;
        let Some(Item::Target(target)) = first.and_then(|m| m.item) else {
            return Err(Error::invalid("target", "the first message must carry the target").into());
        };
        let (t, (path, mode)) = resolve_at(
            &self.hosts,
            target.domain.as_ref(),
            "target.domain",
            convert::write_target(&target),
        )?;
        let data = write_data(inbound, idle, dl);
        let written_bytes = guest_file::write(t.pool, t.key, path, mode, dl, data).await?;
        ok(v1::WriteGuestFileResponse { written_bytes })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn freeze_guest_filesystems(
        &self,
        req: Request<v1::FreezeGuestFilesystemsRequest>,
    ) -> Result<Response<v1::FreezeGuestFilesystemsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, mps) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::mountpoints(&r.mountpoints),
        )?;
        let frozen_count = t
            .run(Lane::Slow, dl, move |c, k, _| ops::fs_freeze(c, k, &mps))
            .await?;
        ok(v1::FreezeGuestFilesystemsResponse { frozen_count })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn thaw_guest_filesystems(
        &self,
        req: Request<v1::ThawGuestFilesystemsRequest>,
    ) -> Result<Response<v1::ThawGuestFilesystemsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, mps) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::mountpoints(&r.mountpoints),
        )?;
        let thawed_count = t
            .run(Lane::Slow, dl, move |c, k, _| ops::fs_thaw(c, k, &mps))
            .await?;
        ok(v1::ThawGuestFilesystemsResponse { thawed_count })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_freeze_status(
        &self,
        req: Request<v1::GetGuestFreezeStatusRequest>,
    ) -> Result<Response<v1::GetGuestFreezeStatusResponse>, Status> {
        let dl = deadline(&req);
        let t = Target::resolve(&self.hosts, req.get_ref().domain.as_ref(), "domain")?;
        let timeout = ops::agent_timeout(dl);
        let status = t
            .run(Lane::Slow, dl, move |c, k, _| {
                ops::freeze_status(c, k, timeout)
            })
            .await?;
        ok(v1::GetGuestFreezeStatusResponse {
            status: status as i32,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn trim_guest_filesystems(
        &self,
        req: Request<v1::TrimGuestFilesystemsRequest>,
    ) -> Result<Response<v1::TrimGuestFilesystemsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, (mp, min)) = resolve(&self.hosts, r.domain.as_ref(), convert::trim(r))?;
        t.run(Lane::Slow, dl, move |c, k, _| {
            ops::fs_trim(c, k, mp.as_deref(), min)
        })
        .await?;
        ok(v1::TrimGuestFilesystemsResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_filesystems(
        &self,
        req: Request<v1::GetGuestFilesystemsRequest>,
    ) -> Result<Response<v1::GetGuestFilesystemsResponse>, Status> {
        let dl = deadline(&req);
        let t = Target::resolve(&self.hosts, req.get_ref().domain.as_ref(), "domain")?;
        let filesystems = t
            .run(Lane::Slow, dl, |c, k, _| ops::filesystems(c, k))
            .await?;
        ok(v1::GetGuestFilesystemsResponse { filesystems })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_info(
        &self,
        req: Request<v1::GetGuestInfoRequest>,
    ) -> Result<Response<v1::GetGuestInfoResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, types) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::guest_info_types(&r.kinds),
        )?;
        let info = t
            .run(Lane::Slow, dl, move |c, k, _| ops::guest_info(c, k, types))
            .await?;
        ok(info)
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_hostname(
        &self,
        req: Request<v1::GetGuestHostnameRequest>,
    ) -> Result<Response<v1::GetGuestHostnameResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, flags) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::hostname_flags(r.source),
        )?;
        let hostname = t
            .run(Lane::Slow, dl, move |c, k, _| ops::hostname(c, k, flags))
            .await?;
        ok(v1::GetGuestHostnameResponse { hostname })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_interface_addresses(
        &self,
        req: Request<v1::GetGuestInterfaceAddressesRequest>,
    ) -> Result<Response<v1::GetGuestInterfaceAddressesResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, source) = resolve(
            &self.hosts,
            r.domain.as_ref(),
            convert::interface_source(r.source),
        )?;
        let interfaces = t
            .run(Lane::Slow, dl, move |c, k, _| {
                ops::interface_addresses(c, k, source)
            })
            .await?;
        ok(v1::GetGuestInterfaceAddressesResponse { interfaces })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_time(
        &self,
        req: Request<v1::GetGuestTimeRequest>,
    ) -> Result<Response<v1::GetGuestTimeResponse>, Status> {
        let dl = deadline(&req);
        let t = Target::resolve(&self.hosts, req.get_ref().domain.as_ref(), "domain")?;
        let (seconds, nanos) = t.run(Lane::Slow, dl, |c, k, _| ops::time(c, k)).await?;
        ok(v1::GetGuestTimeResponse {
            time: Some(convert::timestamp(seconds, nanos)),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_guest_time(
        &self,
        req: Request<v1::SetGuestTimeRequest>,
    ) -> Result<Response<v1::SetGuestTimeResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, to) = resolve(&self.hosts, r.domain.as_ref(), convert::set_time(r))?;
        t.run(Lane::Slow, dl, move |c, k, _| ops::set_time(c, k, to))
            .await?;
        ok(v1::SetGuestTimeResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_guest_user_password(
        &self,
        req: Request<v1::SetGuestUserPasswordRequest>,
    ) -> Result<Response<v1::SetGuestUserPasswordResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, flags) = resolve(&self.hosts, r.domain.as_ref(), convert::password(&r))?;
        t.run(Lane::Slow, dl, move |c, k, _| {
            ops::set_user_password(c, k, &r.user, &r.password, flags)
        })
        .await?;
        ok(v1::SetGuestUserPasswordResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_authorized_keys(
        &self,
        req: Request<v1::GetGuestAuthorizedKeysRequest>,
    ) -> Result<Response<v1::GetGuestAuthorizedKeysResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let (t, ()) = resolve(&self.hosts, r.domain.as_ref(), convert::key_user(&r.user))?;
        let keys = t
            .run(Lane::Slow, dl, move |c, k, _| {
                ops::authorized_keys(c, k, &r.user)
            })
            .await?;
        ok(v1::GetGuestAuthorizedKeysResponse { keys })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn add_guest_authorized_keys(
        &self,
        req: Request<v1::AddGuestAuthorizedKeysRequest>,
    ) -> Result<Response<v1::AddGuestAuthorizedKeysResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let change = convert::KeyChange::Add;
        self.change_keys(dl, r.domain.as_ref(), r.user, r.keys, change)
            .await?;
        ok(v1::AddGuestAuthorizedKeysResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn remove_guest_authorized_keys(
        &self,
        req: Request<v1::RemoveGuestAuthorizedKeysRequest>,
    ) -> Result<Response<v1::RemoveGuestAuthorizedKeysResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        let change = convert::KeyChange::Remove;
        self.change_keys(dl, r.domain.as_ref(), r.user, r.keys, change)
            .await?;
        ok(v1::RemoveGuestAuthorizedKeysResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_guest_vcpus(
        &self,
        req: Request<v1::GetGuestVcpusRequest>,
    ) -> Result<Response<v1::GetGuestVcpusResponse>, Status> {
        let dl = deadline(&req);
        let t = Target::resolve(&self.hosts, req.get_ref().domain.as_ref(), "domain")?;
        let r = t
            .run(Lane::Slow, dl, |c, k, _| ops::guest_vcpus(c, k))
            .await?;
        ok(r)
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_guest_vcpus(
        &self,
        req: Request<v1::SetGuestVcpusRequest>,
    ) -> Result<Response<v1::SetGuestVcpusResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, (map, online)) = resolve(&self.hosts, r.domain.as_ref(), convert::set_vcpus(r))?;
        t.run(Lane::Slow, dl, move |c, k, _| {
            ops::set_guest_vcpus(c, k, &map, online)
        })
        .await?;
        ok(v1::SetGuestVcpusResponse {})
    }
}
