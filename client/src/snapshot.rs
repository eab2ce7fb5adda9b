//! Handle-style access to one snapshot of one domain:
//! `client.snapshot("web1", "before-upgrade").revert().await?`.

use libvirt_grpc::v1;

use crate::{required, ClientError, DomainHandle};

/// One snapshot of a domain, by name ([`DomainHandle::snapshot`],
/// [`Client::snapshot`](crate::Client::snapshot)). Every method is one call.
///
/// ```no_run
/// # async fn demo(client: libvirt_grpc_client::Client) -> Result<(), libvirt_grpc_client::ClientError> {
/// let web = client.domain("web1");
/// web.create_snapshot(libvirt_grpc_client::v1::SnapshotSpec {
///     name: "before-upgrade".into(),
///     ..Default::default()
/// })
/// .await?;
/// let (domain, _) = web.snapshot("before-upgrade").revert().await?;
/// println!("{} is {:?}", domain.name, domain.state());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    domain: DomainHandle,
    name: String,
}

impl SnapshotHandle {
    pub(crate) fn new(domain: DomainHandle, name: String) -> Self {
        SnapshotHandle { domain, name }
    }

    /// The snapshot's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The domain it belongs to.
    pub fn domain(&self) -> &DomainHandle {
        &self.domain
    }

    /// The reference every call of this handle sends.
    pub fn snapshot_ref(&self) -> v1::SnapshotRef {
        v1::SnapshotRef {
            domain: Some(self.domain.domain_ref()),
            name: self.name.clone(),
        }
    }

    fn sref(&self) -> Option<v1::SnapshotRef> {
        Some(self.snapshot_ref())
    }

    /// The snapshot and its XML (`GetSnapshot`).
    pub async fn info(&self) -> Result<(v1::Snapshot, String), ClientError> {
        let c = self.domain.client();
        c.read(|| async {
            let r = c.request(v1::GetSnapshotRequest {
                snapshot: self.sref(),
            });
            let resp = c.snapshots().get_snapshot(r).await?.into_inner();
            Ok((required(resp.snapshot, "snapshot")?, resp.xml))
        })
        .await
    }

    /// Its parent (`GetSnapshotParent`); a root snapshot is `NotFound`.
    pub async fn parent(&self) -> Result<v1::Snapshot, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::GetSnapshotParentRequest {
            snapshot: self.sref(),
        });
        required(
            c.snapshots()
                .get_snapshot_parent(r)
                .await?
                .into_inner()
                .parent,
            "parent",
        )
    }

    /// Its children, or with `descendants` every snapshot below it
    /// (`ListSnapshotChildren`).
    pub async fn children(&self, descendants: bool) -> Result<Vec<v1::Snapshot>, ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::ListSnapshotChildrenRequest {
            snapshot: self.sref(),
            descendants,
        });
        Ok(c.snapshots()
            .list_snapshot_children(r)
            .await?
            .into_inner()
            .snapshots)
    }

    /// Reverts the domain to it, into the state the snapshot was taken in
    /// (`RevertSnapshot`, no `force`); answers the domain and the snapshot
    /// as read after the revert.
    pub async fn revert(&self) -> Result<(v1::Domain, v1::Snapshot), ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::RevertSnapshotRequest {
            snapshot: self.sref(),
            ..Default::default()
        });
        let resp = c.snapshots().revert_snapshot(r).await?.into_inner();
        Ok((
            required(resp.domain, "domain")?,
            required(resp.snapshot, "snapshot")?,
        ))
    }

    /// Deletes it (`DeleteSnapshot`; its children are kept and move up to
    /// its parent).
    pub async fn delete(&self) -> Result<(), ClientError> {
        self.delete_extent(v1::SnapshotDeleteExtent::Snapshot).await
    }

    /// Deletes it and every snapshot below it.
    pub async fn delete_with_descendants(&self) -> Result<(), ClientError> {
        self.delete_extent(v1::SnapshotDeleteExtent::WithDescendants)
            .await
    }

    async fn delete_extent(&self, extent: v1::SnapshotDeleteExtent) -> Result<(), ClientError> {
        let c = self.domain.client();
        let r = c.request(v1::DeleteSnapshotRequest {
            snapshot: self.sref(),
            extent: extent as i32,
            metadata_only: false,
        });
        c.snapshots().delete_snapshot(r).await?;
        Ok(())
    }
}
