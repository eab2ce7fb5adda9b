//! Domain snapshot operations.

use libvirt_grpc::v1;
use virt::{domain::Domain, domain_snapshot::DomainSnapshot};

use crate::{error::Error, xml_query};

/// How a request identifies a snapshot, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    /// Its domain.
    pub domain: super::domain::DomainKey,
    /// Its name.
    pub name: String,
}

/// Finds a snapshot by its key.
pub fn lookup_key(
    conn: &virt::connect::Connect,
    key: &SnapshotKey,
) -> Result<(Domain, DomainSnapshot), Error> {
    let dom = super::domain::lookup(conn, &key.domain)?;
    let snap = lookup(&dom, &key.name)?;
    Ok((dom, snap))
}

/// Finds a snapshot of a domain.
pub fn lookup(dom: &Domain, name: &str) -> Result<DomainSnapshot, Error> {
    Ok(Domain::lookup_snapshot_by_name(dom, name, 0)?)
}

/// The proto view of a snapshot.
pub fn info(s: &DomainSnapshot) -> Result<v1::Snapshot, Error> {
    let xml = s.xml_desc(0)?;
    let root = ["domainsnapshot"];
    let at = |p: &str| xml_query::text(&xml, &[root[0], p]).unwrap_or_default();
    Ok(v1::Snapshot {
        name: s.name()?,
        domain: xml_query::text(&xml, &["domainsnapshot", "domain", "name"]).unwrap_or_default(),
        description: at("description"),
        state: at("state"),
        creation_time: at("creationTime").parse().unwrap_or(0),
        parent: xml_query::text(&xml, &["domainsnapshot", "parent", "name"]).unwrap_or_default(),
        current: s.is_current(0)?,
        has_metadata: s.has_metadata(0)?,
        children: s.num_children(0)?,
    })
}

/// The whole tree of a domain's snapshots, children sorted by name.
pub fn tree(dom: &Domain) -> Result<Vec<v1::SnapshotNode>, Error> {
    let mut all: Vec<v1::Snapshot> = dom
        .list_all_snapshots(0)?
        .iter()
        .map(info)
        .collect::<Result<_, _>>()?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    fn build(parent: &str, all: &[v1::Snapshot], depth: usize) -> Vec<v1::SnapshotNode> {
        // libvirt forbids cycles; the depth cap only guards against a
        // malformed answer.
        if depth > all.len() {
            return Vec::new();
        }
        all.iter()
            .filter(|s| s.parent == parent)
            .map(|s| v1::SnapshotNode {
                snapshot: Some(s.clone()),
                children: build(&s.name, all, depth + 1),
            })
            .collect()
    }
    Ok(build("", &all, 0))
}
