//! `BlockJobService`: each handler checks its request
//! (`convert::blockjob`), resolves the `DomainRef`, runs one
//! `ops::blockjob` function through the host's pool and converts the
//! answer. A copy's destination file is confined to the roots for every
//! caller, like a save file.

use std::sync::Arc;

use libvirt_grpc::v1::{self, block_job_service_server::BlockJobService};
use tonic::{Request, Response, Status};

use super::{deadline, ok, resolve::Target};
use crate::{
    confine::{Confinement, Reach},
    convert::blockjob as convert,
    error::Error,
    ops::{
        blockjob::{self as ops, BlockCommit},
        domain::DomainKey,
        storage::VolumeKey,
    },
    pool::{Hosts, Lane},
};

/// The `BlockJobService` implementation.
#[derive(Debug, Clone)]
pub struct BlockJobApi {
    hosts: Hosts,
    confinement: Arc<Confinement>,
}

impl BlockJobApi {
    /// A service over `hosts`, its host paths confined to
    /// [`crate::confine::DEFAULT_ROOT`].
    pub fn new(hosts: Hosts) -> Self {
        BlockJobApi {
            hosts,
            confinement: Arc::default(),
        }
    }

    /// Confines copy destinations to these roots.
    pub fn with_confinement(mut self, c: Arc<Confinement>) -> Self {
        self.confinement = c;
        self
    }

    /// The domain and the request's other checked values, every bad field
    /// of both in one error.
    fn target<P>(
        &self,
        r: Option<&v1::DomainRef>,
        params: Result<P, Error>,
    ) -> Result<(Target<DomainKey>, P), Error> {
        Target::resolve_with(&self.hosts, r, "domain", params)
    }
}

/// A disk name and a bandwidth, both checked (both violations at once).
fn disk_and_bandwidth(disk: &str, bandwidth: u64) -> Result<(String, u64), Error> {
    let mut v = crate::validate::Violations::default();
    let d = v.check(convert::disk("disk", disk));
    let b = v.check(convert::bandwidth("bandwidth_bytes_per_second", bandwidth));
    v.done(d.zip(b))
}

fn job(f: Option<ops::BlockJobFacts>) -> Option<v1::DomainBlockJob> {
    f.map(Into::into)
}

#[tonic::async_trait]
impl BlockJobService for BlockJobApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn block_copy_domain_disk(
        &self,
        req: Request<v1::BlockCopyDomainDiskRequest>,
    ) -> Result<Response<v1::BlockCopyDomainDiskResponse>, Status> {
        let dl = deadline(&req);
        use v1::block_copy_domain_disk_request::Destination;
        let r = req.get_ref();
        let volume = match &r.destination {
            Some(Destination::Volume(v)) => {
                Target::<VolumeKey>::resolve(&self.hosts, Some(v), "volume").map(Some)
            }
            _ => Ok(None),
        };
        let vol_host = volume
            .as_ref()
            .ok()
            .and_then(|v| v.as_ref().map(|v| v.host().to_owned()));
        let copy = convert::block_copy(r, volume.map(|v| v.map(|v| v.key)));
        let (t, mut copy) = self.target(r.domain.as_ref(), copy)?;
        // The domain's host must hold the volume too.
        if let Some(h) = vol_host.filter(|h| h != t.host()) {
            return Err(Error::invalid(
                "volume.pool.host",
                format!("is '{h}', not the domain's host '{}'", t.host()),
            )
            .into());
        }
        let reach = Reach::of_uri(t.pool.uri());
        if let Some(Destination::File(f)) = &r.destination {
            self.confinement.check_path("file", f, reach)?;
        }
        copy.files.local = reach == Reach::Local;
        let f = t
            .run(Lane::Slow, dl, move |c, k, h| ops::copy(c, k, h, &copy))
            .await?;
        ok(v1::BlockCopyDomainDiskResponse { job: job(f) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_domain_block_job(
        &self,
        req: Request<v1::GetDomainBlockJobRequest>,
    ) -> Result<Response<v1::GetDomainBlockJobResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, disk) = self.target(r.domain.as_ref(), convert::disk("disk", &r.disk))?;
        let f = t
            .run(Lane::Quick, dl, move |c, k, h| ops::info(c, k, h, &disk))
            .await?;
        ok(v1::GetDomainBlockJobResponse {
            active: f.is_some(),
            job: job(f),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn set_domain_block_job_speed(
        &self,
        req: Request<v1::SetDomainBlockJobSpeedRequest>,
    ) -> Result<Response<v1::SetDomainBlockJobSpeedResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let params = disk_and_bandwidth(&r.disk, r.bandwidth_bytes_per_second);
        let (t, (disk, bw)) = self.target(r.domain.as_ref(), params)?;
        let f = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::set_speed(c, k, h, &disk, bw)
            })
            .await?;
        ok(v1::SetDomainBlockJobSpeedResponse { job: job(f) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn abort_domain_block_job(
        &self,
        req: Request<v1::AbortDomainBlockJobRequest>,
    ) -> Result<Response<v1::AbortDomainBlockJobResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let flags = convert::abort_flags(r.pivot);
        let (t, disk) = self.target(r.domain.as_ref(), convert::disk("disk", &r.disk))?;
        t.run(Lane::Slow, dl, move |c, k, _| {
            ops::abort(c, k, &disk, flags)
        })
        .await?;
        ok(v1::AbortDomainBlockJobResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn block_commit_domain_disk(
        &self,
        req: Request<v1::BlockCommitDomainDiskRequest>,
    ) -> Result<Response<v1::BlockCommitDomainDiskResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let (t, commit) = self.target(r.domain.as_ref(), BlockCommit::try_from(r))?;
        let f = t
            .run(Lane::Slow, dl, move |c, k, h| ops::commit(c, k, h, &commit))
            .await?;
        ok(v1::BlockCommitDomainDiskResponse { job: job(f) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn block_pull_domain_disk(
        &self,
        req: Request<v1::BlockPullDomainDiskRequest>,
    ) -> Result<Response<v1::BlockPullDomainDiskResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let params = disk_and_bandwidth(&r.disk, r.bandwidth_bytes_per_second);
        let (t, (disk, bw)) = self.target(r.domain.as_ref(), params)?;
        let f = t
            .run(Lane::Slow, dl, move |c, k, h| ops::pull(c, k, h, &disk, bw))
            .await?;
        ok(v1::BlockPullDomainDiskResponse { job: job(f) })
    }
}
