//! Domain snapshot operations: every libvirt call `SnapshotService` makes.
//! Answers are plain values ([`SnapshotInfo`], [`SnapshotNode`]);
//! `convert::snapshot` makes messages of them and computes the flag bits
//! these functions take.

use super::{external_files::ExternalFiles, Connect};
use virt::{domain::Domain, domain_snapshot::DomainSnapshot};

use super::domain::DomainKey;
use crate::{error::Error, xml_query};

/// How a request identifies a snapshot, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    /// Its domain.
    pub domain: DomainKey,
    /// Its name.
    pub name: String,
}

/// Finds a snapshot by its key.
pub fn lookup_key(conn: &Connect, key: &SnapshotKey) -> Result<(Domain, DomainSnapshot), Error> {
    let dom = super::domain::lookup(conn, &key.domain)?;
    let snap = lookup(&dom, &key.name)?;
    Ok((dom, snap))
}

/// Finds a snapshot of a domain.
pub fn lookup(dom: &Domain, name: &str) -> Result<DomainSnapshot, Error> {
    Ok(Domain::lookup_snapshot_by_name(dom, name, 0)?)
}

/// A snapshot as read from libvirt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The configured host.
    pub host: String,
    /// The domain's name.
    pub domain: String,
    /// The snapshot's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// libvirt's `<state>` name (`running`, `shutoff`, `disk-snapshot`...);
    /// `None` when the snapshot has no metadata to read.
    pub state: Option<String>,
    /// `<creationTime>`, seconds since the epoch; `None` when absent.
    pub create_time: Option<i64>,
    /// The parent's name; empty for a root.
    pub parent: String,
    /// Whether it is the current snapshot.
    pub current: bool,
    /// Whether libvirt holds metadata for it.
    pub has_metadata: bool,
    /// Its number of direct children.
    pub child_count: u32,
}

/// Reads a snapshot.
pub fn info(s: &DomainSnapshot, host: &str) -> Result<SnapshotInfo, Error> {
    let xml = s.xml_desc(0)?;
    let at = |path: &[&str]| xml_query::text(&xml, path);
    Ok(SnapshotInfo {
        host: host.to_owned(),
        domain: at(&["domainsnapshot", "domain", "name"]).unwrap_or_default(),
        name: s.name()?,
        description: at(&["domainsnapshot", "description"]).unwrap_or_default(),
        state: at(&["domainsnapshot", "state"]),
        create_time: at(&["domainsnapshot", "creationTime"]).and_then(|t| t.trim().parse().ok()),
        parent: at(&["domainsnapshot", "parent", "name"]).unwrap_or_default(),
        current: s.is_current(0)?,
        has_metadata: s.has_metadata(0)?,
        child_count: s.num_children(0)?,
    })
}

/// A snapshot to take, its flags already libvirt's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    /// The `<domainsnapshot>` XML.
    pub xml: String,
    /// VIR_DOMAIN_SNAPSHOT_CREATE_*.
    pub flags: u32,
    /// Whether libvirt keeps no metadata (then nothing but the name can be
    /// read back).
    pub no_metadata: bool,
    /// The host files the snapshot is to create.
    pub files: ExternalFiles,
}

/// Takes a snapshot.
pub fn create(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    new: &NewSnapshot,
) -> Result<SnapshotInfo, Error> {
    let dom = super::domain::lookup(conn, key)?;
    let s = new
        .files
        .guarded(|| Ok(dom.create_snapshot_xml(&new.xml, new.flags)?))?;
    if new.no_metadata {
        // Without metadata libvirt cannot describe it further.
        return Ok(SnapshotInfo {
            host: host.to_owned(),
            domain: dom.name()?,
            name: s.name()?,
            ..Default::default()
        });
    }
    info(&s, host)
}

/// Filters of a listing, already libvirt's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// VIR_DOMAIN_SNAPSHOT_LIST_* flags.
    pub flags: u32,
    /// Keep only snapshots with a parent (libvirt has no flag for it).
    pub with_parent: bool,
    /// libvirt's topological order instead of by name.
    pub topological: bool,
}

/// A domain's snapshots the filter selects, by name or topologically.
pub fn list(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    f: ListFilter,
) -> Result<Vec<SnapshotInfo>, Error> {
    let dom = super::domain::lookup(conn, key)?;
    let mut all = dom
        .list_all_snapshots(f.flags)?
        .iter()
        .map(|s| super::unless_vanished(info(s, host)))
        .filter_map(Result::transpose)
        .filter(|s| !f.with_parent || s.as_ref().map_or(true, |s| !s.parent.is_empty()))
        .collect::<Result<Vec<_>, Error>>()?;
    if !f.topological {
        all.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(all)
}

/// A snapshot and its XML.
pub fn get(conn: &Connect, key: &SnapshotKey, host: &str) -> Result<(SnapshotInfo, String), Error> {
    let (_, s) = lookup_key(conn, key)?;
    Ok((info(&s, host)?, s.xml_desc(0)?))
}

/// The domain's current snapshot.
pub fn current(conn: &Connect, key: &DomainKey, host: &str) -> Result<SnapshotInfo, Error> {
    let dom = super::domain::lookup(conn, key)?;
    info(&dom.current_snapshot(0)?, host)
}

/// Whether the domain has a current snapshot.
pub fn has_current(conn: &Connect, key: &DomainKey, _host: &str) -> Result<bool, Error> {
    crate::libvirt_sys::has_current_snapshot(&super::domain::lookup(conn, key)?)
}

/// A snapshot's parent.
pub fn parent(conn: &Connect, key: &SnapshotKey, host: &str) -> Result<SnapshotInfo, Error> {
    let (_, s) = lookup_key(conn, key)?;
    info(&s.parent(0)?, host)
}

/// A snapshot's children (`flags`: VIR_DOMAIN_SNAPSHOT_LIST_*), by name.
pub fn children(
    conn: &Connect,
    key: &SnapshotKey,
    host: &str,
    flags: u32,
) -> Result<Vec<SnapshotInfo>, Error> {
    let (_, s) = lookup_key(conn, key)?;
    let mut out = s
        .list_all_children(flags)?
        .iter()
        .map(|c| info(c, host))
        .collect::<Result<Vec<_>, Error>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One snapshot with its subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Its children, by name.
    pub children: Vec<SnapshotNode>,
}

/// The whole tree of a domain's snapshots, children sorted by name.
pub fn tree(conn: &Connect, key: &DomainKey, host: &str) -> Result<Vec<SnapshotNode>, Error> {
    let all = list(conn, key, host, ListFilter::default())?;
    fn build(parent: &str, all: &[SnapshotInfo], depth: usize) -> Vec<SnapshotNode> {
        // libvirt forbids cycles; the depth cap only guards against a
        // malformed answer.
        if depth > all.len() {
            return Vec::new();
        }
        all.iter()
            .filter(|s| s.parent == parent)
            .map(|s| SnapshotNode {
                snapshot: s.clone(),
                children: build(&s.name, all, depth + 1),
            })
            .collect()
    }
    Ok(build("", &all, 0))
}

/// Reverts the domain to a snapshot (`flags`:
/// VIR_DOMAIN_SNAPSHOT_REVERT_*); the domain and the snapshot afterwards.
pub fn revert(
    conn: &Connect,
    key: &SnapshotKey,
    host: &str,
    flags: u32,
) -> Result<(super::domain::DomainInfo, SnapshotInfo), Error> {
    let (dom, s) = lookup_key(conn, key)?;
    s.revert(flags)?;
    Ok((super::domain::describe(conn, host, &dom)?, info(&s, host)?))
}

/// Deletes a snapshot (`flags`: VIR_DOMAIN_SNAPSHOT_DELETE_*).
pub fn delete(conn: &Connect, key: &SnapshotKey, flags: u32) -> Result<(), Error> {
    let (_, s) = lookup_key(conn, key)?;
    Ok(s.delete(flags)?)
}
