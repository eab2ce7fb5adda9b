//! The domain-internals handlers of `DomainService` (issue 13): the QEMU
//! monitor, per-device counters, scheduler tuning, peeks and core dumps.
//! The trait methods in `services/domain.rs` forward here; each handler
//! validates (`convert::internals`), runs one `ops` function through the
//! host's pool and converts the answer.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use libvirt_grpc::v1;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::DomainApi;
use crate::{
    confine::Reach,
    convert::internals as convert,
    error::Error,
    ops::{actions, counters, dump, monitor, peek, storage::VolumeKey, tuning},
    pool::Lane,
    services::{deadline, ok, resolve::Target},
};

/// `QemuMonitorCommand`: on the slow lane, since a monitor command may
/// wait on QEMU.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn qemu_monitor_command(
    api: &DomainApi,
    req: Request<v1::QemuMonitorCommandRequest>,
) -> Result<Response<v1::QemuMonitorCommandResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, (command, protocol)) =
        api.target_with(r.domain.as_ref(), convert::monitor_command(&r))?;
    let reply = t
        .run(Lane::Slow, dl, move |c, k, _| {
            monitor::command(c, k, &command, protocol)
        })
        .await?;
    ok(v1::QemuMonitorCommandResponse { reply })
}

/// `GetDomainMaxVcpus`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_max_vcpus(
    api: &DomainApi,
    req: Request<v1::GetDomainMaxVcpusRequest>,
) -> Result<Response<v1::GetDomainMaxVcpusResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let n = t
        .run(Lane::Quick, dl, |c, k, _| counters::max_vcpus(c, k))
        .await?;
    ok(v1::GetDomainMaxVcpusResponse {
        max_vcpus: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

/// `GetDomainBlockStats`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_block_stats(
    api: &DomainApi,
    req: Request<v1::GetDomainBlockStatsRequest>,
) -> Result<Response<v1::GetDomainBlockStatsResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, disk) = api.target_with(r.domain.as_ref(), convert::device_name("disk", &r.disk))?;
    let name = disk.clone();
    let f = t
        .run(Lane::Quick, dl, move |c, k, _| {
            counters::block_stats(c, k, &name)
        })
        .await?;
    ok(v1::GetDomainBlockStatsResponse {
        stats: Some(convert::block_stats(disk, &f)),
    })
}

/// `GetDomainInterfaceStats`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_interface_stats(
    api: &DomainApi,
    req: Request<v1::GetDomainInterfaceStatsRequest>,
) -> Result<Response<v1::GetDomainInterfaceStatsResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, nic) = api.target_with(
        r.domain.as_ref(),
        convert::device_name("interface", &r.interface),
    )?;
    let name = nic.clone();
    let st = t
        .run(Lane::Quick, dl, move |c, k, _| {
            counters::interface_stats(c, k, &name)
        })
        .await?;
    ok(v1::GetDomainInterfaceStatsResponse {
        stats: Some(convert::interface_stats(nic, &st)),
    })
}

/// `GetDomainMemoryStats`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_memory_stats(
    api: &DomainApi,
    req: Request<v1::GetDomainMemoryStatsRequest>,
) -> Result<Response<v1::GetDomainMemoryStatsResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let stats = t
        .run(Lane::Quick, dl, |c, k, _| counters::memory_stats(c, k))
        .await?;
    ok(v1::GetDomainMemoryStatsResponse {
        stats: Some(convert::memory_stats(&stats)),
    })
}

/// `SetDomainMemoryStatsPeriod`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn set_domain_memory_stats_period(
    api: &DomainApi,
    req: Request<v1::SetDomainMemoryStatsPeriodRequest>,
) -> Result<Response<v1::SetDomainMemoryStatsPeriodResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, (seconds, flags)) =
        api.target_with(r.domain.as_ref(), convert::memory_stats_period(&r))?;
    let d = t
        .run(Lane::Quick, dl, move |c, k, h| {
            actions::set_memory_stats_period(c, k, h, seconds, flags)
        })
        .await?;
    ok(v1::SetDomainMemoryStatsPeriodResponse {
        domain: Some(d.into()),
    })
}

/// `InjectDomainNmi`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn inject_domain_nmi(
    api: &DomainApi,
    req: Request<v1::InjectDomainNmiRequest>,
) -> Result<Response<v1::InjectDomainNmiResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let d = t.run(Lane::Quick, dl, actions::inject_nmi).await?;
    ok(v1::InjectDomainNmiResponse {
        domain: Some(d.into()),
    })
}

/// `RenameDomain`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn rename_domain(
    api: &DomainApi,
    req: Request<v1::RenameDomainRequest>,
) -> Result<Response<v1::RenameDomainResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, new_name) = api.target_with(r.domain.as_ref(), convert::new_name(&r))?;
    let d = t
        .run(Lane::Quick, dl, move |c, k, h| {
            actions::rename(c, k, h, &new_name)
        })
        .await?;
    ok(v1::RenameDomainResponse {
        domain: Some(d.into()),
    })
}

/// `WakeupDomain`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn wakeup_domain(
    api: &DomainApi,
    req: Request<v1::WakeupDomainRequest>,
) -> Result<Response<v1::WakeupDomainResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let d = t.run(Lane::Quick, dl, actions::wakeup).await?;
    ok(v1::WakeupDomainResponse {
        domain: Some(d.into()),
    })
}

/// `GetDomainDiskErrors`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_disk_errors(
    api: &DomainApi,
    req: Request<v1::GetDomainDiskErrorsRequest>,
) -> Result<Response<v1::GetDomainDiskErrorsResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let errors = t
        .run(Lane::Quick, dl, |c, k, _| counters::disk_errors(c, k))
        .await?;
    ok(v1::GetDomainDiskErrorsResponse {
        errors: convert::disk_errors(errors),
    })
}

/// `GetDomainSchedulerType`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_scheduler_type(
    api: &DomainApi,
    req: Request<v1::GetDomainSchedulerTypeRequest>,
) -> Result<Response<v1::GetDomainSchedulerTypeResponse>, Status> {
    let dl = deadline(&req);
    let t = api.target(req.get_ref().domain.as_ref())?;
    let (scheduler, n) = t
        .run(Lane::Quick, dl, |c, k, _| tuning::scheduler_type(c, k))
        .await?;
    ok(v1::GetDomainSchedulerTypeResponse {
        scheduler,
        parameter_count: u32::try_from(n).unwrap_or(0),
    })
}

/// `GetDomainSchedulerParameters`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn get_domain_scheduler_parameters(
    api: &DomainApi,
    req: Request<v1::GetDomainSchedulerParametersRequest>,
) -> Result<Response<v1::GetDomainSchedulerParametersResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let flags = convert::scheduler_get_flags(r.config);
    let t = api.target(r.domain.as_ref())?;
    let (scheduler, params) = t
        .run(Lane::Quick, dl, move |c, k, _| {
            tuning::scheduler_parameters(c, k, flags)
        })
        .await?;
    ok(v1::GetDomainSchedulerParametersResponse {
        scheduler,
        parameters: params
            .into_iter()
            .map(crate::convert::tuning::typed_parameter)
            .collect(),
    })
}

/// `SetDomainSchedulerParameters`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn set_domain_scheduler_parameters(
    api: &DomainApi,
    req: Request<v1::SetDomainSchedulerParametersRequest>,
) -> Result<Response<v1::SetDomainSchedulerParametersResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, values) = api.target_with(
        r.domain.as_ref(),
        crate::convert::tuning::typed_values(convert::MAX_SCHEDULER_PARAMETERS, &r.parameters),
    )?;
    let flags = crate::convert::domain::scope_flags(r.scope.as_ref());
    let read_flags = convert::scheduler_read_flags(r.scope.as_ref());
    let (scheduler, params) = t
        .run(Lane::Quick, dl, move |c, k, _| {
            tuning::set_scheduler_parameters(c, k, &values, flags, read_flags)
        })
        .await?;
    ok(v1::SetDomainSchedulerParametersResponse {
        scheduler,
        parameters: params
            .into_iter()
            .map(crate::convert::tuning::typed_parameter)
            .collect(),
    })
}

/// `PeekDomainBlock`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn peek_domain_block(
    api: &DomainApi,
    req: Request<v1::PeekDomainBlockRequest>,
) -> Result<Response<v1::PeekDomainBlockResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, (disk, offset, size)) = api.target_with(r.domain.as_ref(), convert::block_peek(&r))?;
    let data = t
        .run(Lane::Quick, dl, move |c, k, _| {
            peek::block(c, k, &disk, offset, size)
        })
        .await?;
    ok(v1::PeekDomainBlockResponse { data })
}

/// `PeekDomainMemory`.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn peek_domain_memory(
    api: &DomainApi,
    req: Request<v1::PeekDomainMemoryRequest>,
) -> Result<Response<v1::PeekDomainMemoryResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, (address, size, space)) =
        api.target_with(r.domain.as_ref(), convert::memory_peek(&r))?;
    let data = t
        .run(Lane::Quick, dl, move |c, k, _| {
            peek::memory(c, k, address, size, space)
        })
        .await?;
    ok(v1::PeekDomainMemoryResponse { data })
}

/// The stream of a core dump.
pub(super) type CoreDumpStream =
    Pin<Box<dyn Stream<Item = Result<v1::CoreDumpDomainResponse, Status>> + Send + 'static>>;

/// Size of a core dump chunk.
const DUMP_CHUNK: usize = 256 * 1024;
/// Messages buffered between the file and the gRPC stream.
const DUMP_QUEUE: usize = 4;

/// `CoreDumpDomain`: libvirt dumps into a scratch file on the slow lane
/// (`ops::dump`, which unlinks it once open); a task then streams the open
/// file. A client that leaves ends the task, and with it the last handle on
/// the bytes.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn core_dump_domain(
    api: &DomainApi,
    req: Request<v1::CoreDumpDomainRequest>,
) -> Result<Response<CoreDumpStream>, Status> {
    use v1::core_dump_domain_response::Item;
    let dl = deadline(&req);
    let r = req.into_inner();
    let (t, plan) = api.target_with(r.domain.as_ref(), convert::dump_plan(&r))?;
    if Reach::of_uri(t.pool.uri()) != Reach::Local {
        return Err(Error::FailedPrecondition(format!(
            "Core dumps stream only from hosts whose libvirtd runs on this machine; host '{}' is {}",
            t.host(),
            t.pool.uri()
        ))
        .into());
    }
    let dir = api
        .confinement
        .roots()
        .first()
        .ok_or_else(|| Error::internal("no host path root is configured"))?
        .join(dump::SCRATCH_DIR);
    let (tx, rx) = mpsc::channel::<Result<Item, Error>>(DUMP_QUEUE);
    tokio::spawn(async move {
        let dumped = t
            .run(Lane::Slow, dl, move |c, k, _| {
                dump::core_dump(c, k, &dir, plan)
            })
            .await;
        let (file, size) = match dumped {
            Ok(d) => d,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // Reading the file blocks: off the async workers, and outside the
        // host's lanes (libvirt is done).
        let _ = tokio::task::spawn_blocking(move || send_dump(file, size, &tx)).await;
    });
    let mut stream = ReceiverStream::new(rx)
        .map(|item| {
            item.map(|i| v1::CoreDumpDomainResponse { item: Some(i) })
                .map_err(Status::from)
        })
        .peekable();
    // A dump that fails (no such domain, not running, no driver support) is
    // the call's status rather than the first stream item.
    if let Some(Err(_)) = Pin::new(&mut stream).peek().await {
        if let Some(Err(status)) = stream.next().await {
            return Err(status);
        }
    }
    ok(Box::pin(stream) as CoreDumpStream)
}

/// `CoreDumpDomainToVolume`: libvirt creates the volume and dumps into it
/// on the domain's host (`ops::dump`), on the slow lane.
#[tracing::instrument(skip_all, fields(host, target))]
pub(super) async fn core_dump_domain_to_volume(
    api: &DomainApi,
    req: Request<v1::CoreDumpDomainToVolumeRequest>,
) -> Result<Response<v1::CoreDumpDomainToVolumeResponse>, Status> {
    let dl = deadline(&req);
    let r = req.into_inner();
    let volume = Target::<VolumeKey>::resolve(&api.hosts, r.volume.as_ref(), "volume");
    let vol_host = volume.as_ref().ok().map(|v| v.host().to_owned());
    let plan = convert::dump_to_volume_plan(&r, volume.map(|v| v.key));
    let (t, (plan, volume)) = api.target_with(r.domain.as_ref(), plan)?;
    // The domain's host writes the volume: it must hold it.
    if let Some(h) = vol_host.filter(|h| h != t.host()) {
        return Err(Error::invalid(
            "volume.pool.host",
            format!("is '{h}', not the domain's host '{}'", t.host()),
        )
        .into());
    }
    let f = t
        .run(Lane::Slow, dl, move |c, k, h| {
            dump::core_dump_to_volume(c, k, h, &volume.pool, &volume.name, plan)
        })
        .await?;
    ok(v1::CoreDumpDomainToVolumeResponse {
        volume: Some(f.into()),
    })
}

/// Blocking: sends `started`, the chunks of the open (already unlinked)
/// dump and `finished` into `tx`; stops when the receiver went away.
fn send_dump(
    mut file: std::fs::File,
    size: u64,
    tx: &mpsc::Sender<Result<v1::core_dump_domain_response::Item, Error>>,
) {
    use std::io::Read;
    use v1::core_dump_domain_response::Item;
    if tx
        .blocking_send(Ok(Item::Started(v1::CoreDumpStarted { size_bytes: size })))
        .is_err()
    {
        return;
    }
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; DUMP_CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(Error::internal_from("cannot read the core dump", e)));
                return;
            }
        };
        let data = buf.get(..n).unwrap_or_default().to_vec();
        hasher.update(&data);
        let chunk = Item::Chunk(v1::CoreDumpChunk {
            offset_bytes: total,
            data,
        });
        total += n as u64;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
    let last = if total == size {
        Ok(Item::Finished(v1::CoreDumpFinished {
            total_bytes: total,
            sha256: crate::ops::volume_transfer::hex(&hasher.finalize()),
        }))
    } else {
        Err(Error::internal(format!(
            "the core dump announced {size} bytes but {total} were read"
        )))
    };
    let _ = tx.blocking_send(last);
}
