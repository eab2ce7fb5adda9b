//! Domain snapshot operations: every libvirt call `SnapshotService` makes.
//! Answers are plain values ([`SnapshotInfo`], [`SnapshotNode`]);
//! `convert::snapshot` makes messages of them and computes the flag bits
//! these functions take.

use std::path::PathBuf;

use super::Connect;
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

/// The host files a call names for libvirt to create (a snapshot's
/// overlays and memory file, a block copy's destination): checked before
/// the call, and those the call made removed again when it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalFiles {
    /// External disk overlays (`<disks><disk><source file>`).
    pub disks: Vec<String>,
    /// The external memory file (`<memory file>`).
    pub memory: Option<String>,
    /// REUSE_EXT: existing disk files are taken as the overlays.
    pub reuse: bool,
    /// Whether the host's files are this machine's, so that the server can
    /// see them; a remote host's are left to libvirt's own checks.
    pub local: bool,
}

impl ExternalFiles {
    /// The files that do not exist yet (the ones a failure may remove);
    /// `ALREADY_EXISTS` for one that exists and may not be reused.
    fn missing(&self) -> Result<Vec<PathBuf>, Error> {
        if !self.local {
            return Ok(Vec::new());
        }
        let disks = self.disks.iter().map(|d| (d, self.reuse));
        let memory = self.memory.iter().map(|m| (m, false));
        let mut missing = Vec::new();
        for (file, reusable) in disks.chain(memory) {
            match std::fs::symlink_metadata(file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing.push(PathBuf::from(file));
                }
                Err(e) => {
                    return Err(Error::FailedPrecondition(format!(
                        "Cannot inspect snapshot file '{file}': {e}"
                    )))
                }
                Ok(_) if reusable => {}
                Ok(_) => {
                    return Err(Error::AlreadyExists(format!(
                        "Snapshot file '{file}' already exists{}",
                        if self.memory.as_ref() == Some(file) {
                            ""
                        } else {
                            " (reuse_external takes an existing overlay as it is)"
                        }
                    )))
                }
            }
        }
        Ok(missing)
    }

    /// Runs `make`; when it fails, removes those of `missing` that exist
    /// now (this call's files: they did not exist before it).
    pub fn guarded<T>(&self, make: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let missing = self.missing()?;
        make().inspect_err(|_| {
            for f in &missing {
                if std::fs::symlink_metadata(f).is_ok() {
                    if let Err(e) = std::fs::remove_file(f) {
                        tracing::warn!(file = %f.display(), error = %e,
                            "a failed snapshot left a file this call created");
                    }
                }
            }
        })
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A fresh directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvgt-snapfiles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files(d: &std::path::Path, disks: &[&str], reuse: bool) -> ExternalFiles {
        ExternalFiles {
            disks: disks
                .iter()
                .map(|n| d.join(n).to_str().unwrap().to_owned())
                .collect(),
            memory: None,
            reuse,
            local: true,
        }
    }

    #[test]
    fn a_failure_removes_only_the_files_this_call_created() {
        let d = scratch("fail");
        std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
        let f = files(&d, &["old.qcow2", "new.qcow2", "never.qcow2"], true);
        let r: Result<(), Error> = f.guarded(|| {
            // What libvirt does before it fails: writes the new overlay and
            // (with REUSE_EXT) reopens the old one.
            std::fs::write(d.join("new.qcow2"), b"made").unwrap();
            std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
            Err(Error::internal("the snapshot failed"))
        });
        assert!(r.is_err());
        assert!(!d.join("new.qcow2").exists());
        assert!(!d.join("never.qcow2").exists());
        assert_eq!(std::fs::read(d.join("old.qcow2")).unwrap(), b"kept");
        // Success keeps what was made.
        f.guarded(|| {
            std::fs::write(d.join("new.qcow2"), b"made").map_err(|e| Error::internal(e.to_string()))
        })
        .unwrap();
        assert!(d.join("new.qcow2").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_existing_file_is_refused_before_anything_runs() {
        let d = scratch("exists");
        std::fs::write(d.join("old.qcow2"), b"kept").unwrap();
        let f = files(&d, &["new.qcow2", "old.qcow2"], false);
        let mut ran = false;
        let r: Result<(), Error> = f.guarded(|| {
            ran = true;
            Ok(())
        });
        assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
        assert!(!ran);
        assert_eq!(std::fs::read(d.join("old.qcow2")).unwrap(), b"kept");
        // A memory file is never reused.
        let mem = ExternalFiles {
            memory: Some(d.join("old.qcow2").to_str().unwrap().to_owned()),
            ..files(&d, &[], true)
        };
        assert!(matches!(
            mem.guarded(|| Ok(())),
            Err(Error::AlreadyExists(_))
        ));
        // A remote host's files are libvirt's to check.
        let remote = ExternalFiles {
            local: false,
            ..files(&d, &["old.qcow2"], false)
        };
        assert!(remote.guarded(|| Ok(())).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
