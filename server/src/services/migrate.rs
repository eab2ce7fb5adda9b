//! The one long-running call of `DomainService`: a migration. The
//! migration itself is one blocking `ops::migrate::migrate` call holding a
//! slow-lane connection of each host; beside it, this task reads the job's
//! statistics on the source every interval (quick lane) and streams them,
//! and it aborts the job (virDomainAbortJob) when the caller goes away or
//! its deadline passes, so a migration never outlives its caller.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use libvirt_grpc::v1;
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::resolve::Target;
use crate::{
    error::Error,
    ops::{self, domain::DomainKey, migrate::Migration},
    pool::{HostPool, Lane},
};

/// The stream `MigrateDomain` answers.
pub type MigrateStream =
    Pin<Box<dyn Stream<Item = Result<v1::MigrateDomainResponse, Status>> + Send + 'static>>;

/// How long a migration may run when its caller set no deadline.
const LONGEST: Duration = Duration::from_secs(24 * 3600);
/// How often an abort is retried while the migration call has not returned
/// (an abort sent before libvirt started the job finds no job).
const ABORT_RETRY: Duration = Duration::from_millis(100);
/// The deadline of one progress read or abort.
const QUICK: Duration = Duration::from_secs(5);

/// Starts the migration of `t` to `dest` and returns its stream.
pub fn start(
    t: Target<DomainKey>,
    dest: Arc<HostPool>,
    m: Migration,
    interval: Duration,
    deadline: Option<Instant>,
) -> MigrateStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(drive(t, dest, m, interval, deadline, tx));
    Box::pin(ReceiverStream::new(rx))
}

type Tx = mpsc::Sender<Result<v1::MigrateDomainResponse, Status>>;

/// Why a migration is being aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// The caller cancelled the stream.
    Cancelled,
    /// The caller's deadline passed.
    Deadline,
}

async fn drive(
    t: Target<DomainKey>,
    dest: Arc<HostPool>,
    m: Migration,
    interval: Duration,
    deadline: Option<Instant>,
    tx: Tx,
) {
    let (key, dst_name) = (t.key.clone(), dest.name().to_owned());
    let migration = t
        .pool
        .run_pair(&dest, Instant::now() + LONGEST, move |s, d| {
            ops::migrate::migrate(s, d, &key, &dst_name, &m)
        });
    tokio::pin!(migration);
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry = tokio::time::interval(ABORT_RETRY);
    let caller_deadline = deadline.unwrap_or_else(|| Instant::now() + LONGEST);
    let mut abort: Option<Abort> = None;
    loop {
        tokio::select! {
            result = &mut migration => {
                let item = match (result, abort) {
                    (Ok(d), None) => Ok(v1::MigrateDomainResponse {
                        item: Some(v1::migrate_domain_response::Item::Domain(d.into())),
                    }),
                    (Err(e), None) => Err(e.into()),
                    (_, Some(Abort::Deadline)) => Err(Error::host_deadline(t.host()).into()),
                    // Nobody listens any more.
                    (_, Some(Abort::Cancelled)) => return,
                };
                let _ = tx.send(item).await;
                return;
            }
            _ = tick.tick(), if abort.is_none() => {
                let job = t
                    .run(Lane::Quick, Some(Instant::now() + QUICK), |c, k, _| {
                        ops::domain::job(c, k, false)
                    })
                    .await;
                if let Ok(j) = job {
                    if j.runs() {
                        let item = v1::MigrateDomainResponse {
                            item: Some(v1::migrate_domain_response::Item::Progress(
                                crate::convert::domain::job(j),
                            )),
                        };
                        // A caller that reads slowly misses progress, never
                        // the end.
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(item)) {
                            abort = Some(Abort::Cancelled);
                        }
                    }
                }
            }
            _ = tx.closed(), if abort.is_none() => abort = Some(Abort::Cancelled),
            _ = tokio::time::sleep_until(caller_deadline), if abort.is_none() => {
                abort = Some(Abort::Deadline);
            }
            _ = retry.tick(), if abort.is_some() => {
                let r = t
                    .run(Lane::Quick, Some(Instant::now() + QUICK), |c, k, _| {
                        ops::domain::abort_job(c, k)
                    })
                    .await;
                tracing::info!(host = t.host(), target = ?t.key, reason = ?abort, aborted = r.is_ok(), "aborting a migration");
            }
        }
    }
}
