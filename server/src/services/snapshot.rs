//! `SnapshotService`: each handler checks its request
//! (`convert::snapshot`), resolves the `DomainRef` or `SnapshotRef`
//! (`resolve::Target`), runs one `ops::snapshot` function through the
//! host's pool and converts the answer.

use libvirt_grpc::v1::{self, snapshot_service_server::SnapshotService};
use tonic::{Request, Response, Status};

use super::{deadline, ok, paging, resolve::Target};
use crate::{
    auth::Caller,
    confine::{Confinement, Reach},
    convert::snapshot as convert,
    error::Error,
    ops::{
        domain::DomainKey,
        snapshot::{self as ops, ListFilter, NewSnapshot, SnapshotInfo, SnapshotKey},
    },
    pool::{Hosts, Lane},
    validate::Violations,
};

/// The `SnapshotService` implementation.
#[derive(Debug, Clone)]
pub struct SnapshotApi {
    hosts: Hosts,
    confinement: std::sync::Arc<Confinement>,
}

impl SnapshotApi {
    /// A service over `hosts`.
    pub fn new(hosts: Hosts) -> Self {
        SnapshotApi {
            hosts,
            confinement: std::sync::Arc::default(),
        }
    }

    /// Confines the memory and disk files of snapshot XML, below admin,
    /// to these roots.
    pub fn with_confinement(mut self, c: std::sync::Arc<Confinement>) -> Self {
        self.confinement = c;
        self
    }

    fn domain(&self, r: Option<&v1::DomainRef>) -> Result<Target<DomainKey>, Error> {
        Target::resolve(&self.hosts, r, "domain")
    }

    fn snapshot(&self, r: Option<&v1::SnapshotRef>) -> Result<Target<SnapshotKey>, Error> {
        Target::resolve(&self.hosts, r, "snapshot")
    }
}

/// One page of a listing: after the token's snapshot by name, or (in
/// topological order) after its position.
fn page(
    all: Vec<SnapshotInfo>,
    topological: bool,
    page_size: u32,
    token: &str,
) -> Result<(Vec<SnapshotInfo>, String), Error> {
    if !topological {
        return paging::page_by_name(all, |s| s.name.as_str(), page_size, token);
    }
    let start = if token.is_empty() {
        0
    } else {
        let after = paging::decode_token(token)?;
        all.iter()
            .position(|s| s.name == after)
            .map(|i| i + 1)
            .ok_or_else(|| {
                Error::FailedPrecondition(
                    "the page token's snapshot is gone; list again from the start".into(),
                )
            })?
    };
    let mut items: Vec<_> = all.into_iter().skip(start).collect();
    let next = paging::next_token(&mut items, paging::page_size(page_size), |s| {
        s.name.as_str()
    });
    Ok((items, next))
}

fn messages(v: Vec<SnapshotInfo>) -> Vec<v1::Snapshot> {
    v.into_iter().map(Into::into).collect()
}

#[tonic::async_trait]
impl SnapshotService for SnapshotApi {
    #[tracing::instrument(skip_all, fields(host, target))]
    async fn create_snapshot(
        &self,
        req: Request<v1::CreateSnapshotRequest>,
    ) -> Result<Response<v1::CreateSnapshotResponse>, Status> {
        let role = Caller::of(&req).role;
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.domain(r.domain.as_ref()));
        let new = v.check(NewSnapshot::try_from(r));
        let (t, mut new) = v.done(t.zip(new))?;
        let reach = Reach::of_uri(t.pool.uri());
        let field = match &r.source {
            Some(v1::create_snapshot_request::Source::Spec(spec)) => {
                // Overlay files are paths the caller names: confined for
                // every caller, like a save file.
                for (i, d) in spec.disks.iter().enumerate() {
                    if !d.file.is_empty() {
                        self.confinement.check_path(
                            &format!("spec.disks[{i}].file"),
                            &d.file,
                            reach,
                        )?;
                    }
                }
                "spec"
            }
            _ => "xml",
        };
        self.confinement.check_xml(field, &new.xml, role, reach)?;
        new.files.local = reach == Reach::Local;
        let s = t
            .run(Lane::Slow, dl, move |c, k, h| ops::create(c, k, h, &new))
            .await?;
        ok(v1::CreateSnapshotResponse {
            snapshot: Some(s.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_snapshots(
        &self,
        req: Request<v1::ListSnapshotsRequest>,
    ) -> Result<Response<v1::ListSnapshotsResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.domain(r.domain.as_ref()));
        let f = v.check(ListFilter::try_from(r));
        let (t, f) = v.done(t.zip(f))?;
        let all = t
            .run(Lane::Quick, dl, move |c, k, h| ops::list(c, k, h, f))
            .await?;
        let (snapshots, next_page_token) = page(all, r.topological, r.page_size, &r.page_token)?;
        ok(v1::ListSnapshotsResponse {
            snapshots: messages(snapshots),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot(
        &self,
        req: Request<v1::GetSnapshotRequest>,
    ) -> Result<Response<v1::GetSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let t = self.snapshot(req.get_ref().snapshot.as_ref())?;
        let (s, xml) = t.run(Lane::Quick, dl, ops::get).await?;
        ok(v1::GetSnapshotResponse {
            snapshot: Some(s.into()),
            xml,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_current_snapshot(
        &self,
        req: Request<v1::GetCurrentSnapshotRequest>,
    ) -> Result<Response<v1::GetCurrentSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let t = self.domain(req.get_ref().domain.as_ref())?;
        let s = t.run(Lane::Quick, dl, ops::current).await?;
        ok(v1::GetCurrentSnapshotResponse {
            snapshot: Some(s.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn has_current_snapshot(
        &self,
        req: Request<v1::HasCurrentSnapshotRequest>,
    ) -> Result<Response<v1::HasCurrentSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let t = self.domain(req.get_ref().domain.as_ref())?;
        let has_current_snapshot = t.run(Lane::Quick, dl, ops::has_current).await?;
        ok(v1::HasCurrentSnapshotResponse {
            has_current_snapshot,
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot_parent(
        &self,
        req: Request<v1::GetSnapshotParentRequest>,
    ) -> Result<Response<v1::GetSnapshotParentResponse>, Status> {
        let dl = deadline(&req);
        let t = self.snapshot(req.get_ref().snapshot.as_ref())?;
        let s = t.run(Lane::Quick, dl, ops::parent).await?;
        ok(v1::GetSnapshotParentResponse {
            parent: Some(s.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn list_snapshot_children(
        &self,
        req: Request<v1::ListSnapshotChildrenRequest>,
    ) -> Result<Response<v1::ListSnapshotChildrenResponse>, Status> {
        let dl = deadline(&req);
        let t = self.snapshot(req.get_ref().snapshot.as_ref())?;
        let flags = convert::children_flags(req.get_ref().descendants);
        let kids = t
            .run(Lane::Quick, dl, move |c, k, h| {
                ops::children(c, k, h, flags)
            })
            .await?;
        ok(v1::ListSnapshotChildrenResponse {
            snapshots: messages(kids),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn get_snapshot_tree(
        &self,
        req: Request<v1::GetSnapshotTreeRequest>,
    ) -> Result<Response<v1::GetSnapshotTreeResponse>, Status> {
        let dl = deadline(&req);
        let t = self.domain(req.get_ref().domain.as_ref())?;
        let roots = t.run(Lane::Quick, dl, ops::tree).await?;
        ok(v1::GetSnapshotTreeResponse {
            roots: roots.into_iter().map(Into::into).collect(),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn revert_snapshot(
        &self,
        req: Request<v1::RevertSnapshotRequest>,
    ) -> Result<Response<v1::RevertSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.snapshot(r.snapshot.as_ref()));
        let flags = v.check(convert::revert_flags(r));
        let (t, flags) = v.done(t.zip(flags))?;
        let (domain, s) = t
            .run(Lane::Slow, dl, move |c, k, h| ops::revert(c, k, h, flags))
            .await?;
        ok(v1::RevertSnapshotResponse {
            domain: Some(domain.into()),
            snapshot: Some(s.into()),
        })
    }

    #[tracing::instrument(skip_all, fields(host, target))]
    async fn delete_snapshot(
        &self,
        req: Request<v1::DeleteSnapshotRequest>,
    ) -> Result<Response<v1::DeleteSnapshotResponse>, Status> {
        let dl = deadline(&req);
        let r = req.get_ref();
        let mut v = Violations::default();
        let t = v.check(self.snapshot(r.snapshot.as_ref()));
        let flags = v.check(convert::delete_flags(r));
        let (t, flags) = v.done(t.zip(flags))?;
        t.run(Lane::Slow, dl, move |c, k, _| ops::delete(c, k, flags))
            .await?;
        ok(v1::DeleteSnapshotResponse {})
    }
}
