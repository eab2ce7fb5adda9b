//! `SnapshotService`: validate, run the operation through the host's pool,
//! convert.

use libvirt_grpc::v1::{self, snapshot_service_server::SnapshotService, DomainRef, SnapshotRef};
use tonic::{Request, Response, Status};
use virt::{connect::Connect, domain::Domain, domain_snapshot::DomainSnapshot, sys};

use super::{deadline, either_flag, flags_of, ok, paging};
use crate::{
    error::Error,
    ops::snapshot as ops,
    pool::{Hosts, Lane},
    render::snapshot as render,
    validate,
};

/// The `SnapshotService` implementation.
#[derive(Debug, Clone)]
pub struct SnapshotApi {
    hosts: Hosts,
}

impl SnapshotApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        SnapshotApi { hosts }
    }

    async fn on_domain<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&DomainRef>,
        lane: Lane,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &Domain) -> Result<T, Error> + Send + 'static,
    {
        super::run_on_domain(&self.hosts, deadline, r, lane, move |c, d, _| f(c, d)).await
    }

    async fn on_snapshot<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        r: Option<&SnapshotRef>,
        lane: Lane,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Domain, &DomainSnapshot) -> Result<T, Error> + Send + 'static,
    {
        let r = r.ok_or_else(|| Error::invalid("snapshot", "is required"))?;
        validate::required_text("snapshot.name", &r.name)?;
        let name = r.name.clone();
        self.on_domain(deadline, r.domain.as_ref(), lane, move |_, d| {
            let s = ops::lookup(d, &name)?;
            f(d, &s)
        })
        .await
    }
}

#[tonic::async_trait]
impl SnapshotService for SnapshotApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_snapshot(
        &self,
        req: Request<v1::CreateSnapshotRequest>,
    ) -> Result<Response<v1::CreateSnapshotResponse>, Status> {
        use v1::create_snapshot_request::Source;
        let dl = deadline(&req);
        let r = req.into_inner();
        let xml = match &r.source {
            Some(Source::Xml(x)) => {
                validate::required_xml("xml", x)?;
                x.clone()
            }
            Some(Source::Spec(s)) => {
                if r.redefine {
                    return Err(Error::invalid("redefine", "needs the snapshot's xml").into());
                }
                render::render(s)?
            }
            None => return Err(Error::invalid("source", "set one of xml or spec").into()),
        };
        if r.redefine_current && !r.redefine {
            return Err(Error::invalid("redefine_current", "needs redefine").into());
        }
        let flags = flags_of(&[
            (r.disk_only, sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY),
            (r.quiesce, sys::VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE),
            (r.atomic, sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC),
            (r.live, sys::VIR_DOMAIN_SNAPSHOT_CREATE_LIVE),
            (r.halt, sys::VIR_DOMAIN_SNAPSHOT_CREATE_HALT),
            (r.no_metadata, sys::VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA),
            (r.redefine, sys::VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE),
            (r.redefine_current, sys::VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT),
        ]);
        let no_metadata = r.no_metadata;
        let s = self
            .on_domain(dl, r.domain.as_ref(), Lane::Slow, move |_, d| {
                let s = d.create_snapshot_xml(&xml, flags)?;
                if no_metadata {
                    // Without metadata libvirt cannot describe it further.
                    return Ok(v1::Snapshot {
                        name: s.name()?,
                        domain: d.name()?,
                        ..Default::default()
                    });
                }
                ops::info(&s)
            })
            .await?;
        ok(v1::CreateSnapshotResponse { snapshot: Some(s) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_snapshots(
        &self,
        req: Request<v1::ListSnapshotsRequest>,
    ) -> Result<Response<v1::ListSnapshotsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.into_inner();
        if r.leaves && r.no_leaves {
            return Err(Error::invalid("leaves", "leaves and no_leaves exclude each other").into());
        }
        let mut flags = either_flag(
            r.leaves,
            r.no_leaves,
            sys::VIR_DOMAIN_SNAPSHOT_LIST_LEAVES,
            sys::VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES,
        ) | either_flag(
            r.internal,
            r.external,
            sys::VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL,
            sys::VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL,
        );
        // The state filters combine as a union in libvirt.
        flags |= flags_of(&[
            (r.roots_only, sys::VIR_DOMAIN_SNAPSHOT_LIST_ROOTS),
            (r.active, sys::VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE),
            (r.inactive, sys::VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE),
            (r.disk_only, sys::VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY),
            (r.topological, sys::VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL),
        ]);
        let mut all = self
            .on_domain(dl, r.domain.as_ref(), Lane::Quick, move |_, d| {
                d.list_all_snapshots(flags)?
                    .iter()
                    .map(ops::info)
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?;
        if !r.topological {
            all.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let start = if r.page_token.is_empty() {
            0
        } else {
            let after = paging::decode_token(&r.page_token)?;
            if r.topological {
                all.iter()
                    .position(|s| s.name == after)
                    .map(|i| i + 1)
                    .ok_or_else(|| {
                        Error::FailedPrecondition(
                            "the page token's snapshot is gone; list again from the start".into(),
                        )
                    })?
            } else {
                all.iter().take_while(|s| s.name <= after).count()
            }
        };
        let mut snapshots: Vec<_> = all.into_iter().skip(start).collect();
        let next_page_token =
            paging::next_token(&mut snapshots, paging::page_size(r.page_size), |s| {
                s.name.as_str()
            });
        ok(v1::ListSnapshotsResponse {
            snapshots,
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot(
        &self,
        req: Request<v1::GetSnapshotRequest>,
    ) -> Result<Response<v1::GetSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let (snapshot, xml) = self
            .on_snapshot(dl, req.get_ref().snapshot.as_ref(), Lane::Quick, |_, s| {
                Ok((ops::info(s)?, s.xml_desc(0)?))
            })
            .await?;
        ok(v1::GetSnapshotResponse {
            snapshot: Some(snapshot),
            xml,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_current_snapshot(
        &self,
        req: Request<v1::GetCurrentSnapshotRequest>,
    ) -> Result<Response<v1::GetCurrentSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let s = self
            .on_domain(dl, req.get_ref().domain.as_ref(), Lane::Quick, |_, d| {
                ops::info(&d.current_snapshot(0)?)
            })
            .await?;
        ok(v1::GetCurrentSnapshotResponse { snapshot: Some(s) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot_parent(
        &self,
        req: Request<v1::GetSnapshotParentRequest>,
    ) -> Result<Response<v1::GetSnapshotParentResponse>, Status> {
        let dl = deadline(&req);
        let s = self
            .on_snapshot(dl, req.get_ref().snapshot.as_ref(), Lane::Quick, |_, s| {
                ops::info(&s.parent(0)?)
            })
            .await?;
        ok(v1::GetSnapshotParentResponse { parent: Some(s) })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_snapshot_children(
        &self,
        req: Request<v1::ListSnapshotChildrenRequest>,
    ) -> Result<Response<v1::ListSnapshotChildrenResponse>, Status> {
        let dl = deadline(&req);
        let flags = if req.get_ref().descendants {
            sys::VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS
        } else {
            0
        };
        let mut snapshots = self
            .on_snapshot(
                dl,
                req.get_ref().snapshot.as_ref(),
                Lane::Quick,
                move |_, s| {
                    s.list_all_children(flags)?
                        .iter()
                        .map(ops::info)
                        .collect::<Result<Vec<_>, Error>>()
                },
            )
            .await?;
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        ok(v1::ListSnapshotChildrenResponse { snapshots })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot_tree(
        &self,
        req: Request<v1::GetSnapshotTreeRequest>,
    ) -> Result<Response<v1::GetSnapshotTreeResponse>, Status> {
        let dl = deadline(&req);
        let roots = self
            .on_domain(dl, req.get_ref().domain.as_ref(), Lane::Quick, |_, d| {
                ops::tree(d)
            })
            .await?;
        ok(v1::GetSnapshotTreeResponse { roots })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn revert_to_snapshot(
        &self,
        req: Request<v1::RevertToSnapshotRequest>,
    ) -> Result<Response<v1::RevertToSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        if r.running && r.paused {
            return Err(Error::invalid("running", "running and paused exclude each other").into());
        }
        let flags = flags_of(&[
            (r.running, sys::VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING),
            (r.paused, sys::VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED),
            (r.force, sys::VIR_DOMAIN_SNAPSHOT_REVERT_FORCE),
        ]);
        self.on_snapshot(dl, r.snapshot.as_ref(), Lane::Slow, move |_, s| {
            Ok(s.revert(flags)?)
        })
        .await?;
        ok(v1::RevertToSnapshotResponse {})
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_snapshot(
        &self,
        req: Request<v1::DeleteSnapshotRequest>,
    ) -> Result<Response<v1::DeleteSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        if r.children && r.children_only {
            return Err(Error::invalid(
                "children",
                "children and children_only exclude each other",
            )
            .into());
        }
        let flags = flags_of(&[
            (r.children, sys::VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN),
            (
                r.children_only,
                sys::VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY,
            ),
            (
                r.metadata_only,
                sys::VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY,
            ),
        ]);
        self.on_snapshot(dl, r.snapshot.as_ref(), Lane::Slow, move |_, s| {
            Ok(s.delete(flags)?)
        })
        .await?;
        ok(v1::DeleteSnapshotResponse {})
    }
}
