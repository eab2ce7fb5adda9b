//! The domain-internals handlers of `DomainService` (issue 13): the QEMU
//! monitor, per-device counters, scheduler tuning, peeks and core dumps.
//! The trait methods in `services/domain.rs` forward here; each handler
//! validates (`convert::internals`), runs one `ops` function through the
//! host's pool and converts the answer.

use libvirt_grpc::v1;
use tonic::{Request, Response, Status};

use super::DomainApi;
use crate::{
    convert::internals as convert,
    ops::monitor,
    pool::Lane,
    services::{deadline, ok},
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
