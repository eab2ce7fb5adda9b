//! Core dumps into a scratch file the caller never sees: libvirt writes
//! the dump to a path in a directory of the server's own, this module opens
//! it and unlinks it at once, and hands back the open file. From then on
//! the bytes live only as long as the handle (the stream that reads them);
//! a failed dump removes whatever libvirt wrote.
//!
//! Or into a new storage volume of the domain's own host
//! ([`core_dump_to_volume`]): libvirtd writes the volume's file itself, so
//! this works for remote hosts too, and a failed dump deletes the volume.

use std::{fs::File, path::Path};

use virt::{storage_vol::StorageVol, sys};

use super::{
    domain::{lookup, DomainKey},
    storage::{lookup_pool, volume_facts, PoolKey, VolumeFacts},
    Connect,
};
use crate::{error::Error, render::storage as render, xml_query};

/// Pool types whose new volumes are plain files that grow with what is
/// written into them: the only ones a dump of unknown size can go to.
const FILE_POOL_TYPES: [&str; 3] = ["dir", "fs", "netfs"];

/// The name of the scratch directory under the first host path root.
pub const SCRATCH_DIR: &str = "libvirt-grpc-dumps";

/// What a dump asks for, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpPlan {
    /// VIR_DOMAIN_CORE_DUMP_FORMAT_*.
    pub format: u32,
    /// VIR_DUMP_* flags.
    pub flags: u32,
}

/// Removes `path`, a missing file being fine.
fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove a core dump scratch file");
        }
    }
}

/// Blocking: dumps domain `key` into a fresh name in the scratch
/// directory `dir` (created, mode 0700, if missing), opens the dump and
/// unlinks it; the open file and its size. On any failure nothing stays
/// behind.
pub fn core_dump(
    conn: &Connect,
    key: &DomainKey,
    dir: &Path,
    plan: DumpPlan,
) -> Result<(File, u64), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::internal_from(format!("cannot create {}", dir.display()), e))?;
    let path = dir.join(format!("core-{}.dump", uuid::Uuid::new_v4()));
    let result = dump_and_open(conn, key, &path, plan);
    remove(&path);
    result
}

/// Dumps with libvirt's call for `plan` into `to`, a path on the domain's
/// host.
fn dump_into(dom: &virt::domain::Domain, to: &str, plan: DumpPlan) -> Result<(), Error> {
    if plan.format == sys::VIR_DOMAIN_CORE_DUMP_FORMAT_RAW {
        // The older call where no format is asked for: drivers without
        // virDomainCoreDumpWithFormat (the test driver has both) still dump.
        dom.core_dump(to, plan.flags)?;
    } else {
        dom.core_dump_with_format(to, plan.format, plan.flags)?;
    }
    Ok(())
}

/// Blocking: dumps running domain `key` into a new raw volume `name` of
/// pool `pool` (of type dir, fs or netfs) on the same host; the volume as
/// read after. An existing volume of that name is ALREADY_EXISTS and
/// untouched; a domain that is not running, or an inactive pool,
/// FAILED_PRECONDITION before anything is created; a failed dump deletes
/// the new volume.
pub fn core_dump_to_volume(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    pool: &PoolKey,
    name: &str,
    plan: DumpPlan,
) -> Result<VolumeFacts, Error> {
    let dom = lookup(conn, key)?;
    if !dom.is_active()? {
        return Err(Error::FailedPrecondition(
            "The domain is not running: only a running domain can be dumped".into(),
        ));
    }
    let p = lookup_pool(conn, pool)?;
    if !p.is_active()? {
        return Err(Error::FailedPrecondition(format!(
            "Storage pool '{}' is not active",
            p.name()?
        )));
    }
    let kind = xml_query::attr(&p.xml_desc(0)?, &["pool"], "type").unwrap_or_default();
    if !FILE_POOL_TYPES.contains(&kind.as_str()) {
        return Err(Error::FailedPrecondition(format!(
            "Core dumps go into pools of type dir, fs or netfs, whose volumes grow as they are written; pool '{}' is of type '{kind}'",
            p.name()?
        )));
    }
    let xml = render::render_clone(name, 0, Some("raw"))?;
    // An existing name fails here (VIR_ERR_STORAGE_VOL_EXIST): nothing of
    // the caller's is touched.
    let vol = StorageVol::create_xml(&p, &xml, 0)?;
    let dumped = vol
        .path()
        .map_err(Error::from)
        .and_then(|path| dump_into(&dom, &path, plan))
        .and_then(|()| volume_facts(&vol, host));
    if dumped.is_err() {
        if let Err(e) = vol.delete(0) {
            tracing::warn!(error = %e, volume = name, "cannot delete the volume of a failed core dump");
        }
    }
    dumped
}

fn dump_and_open(
    conn: &Connect,
    key: &DomainKey,
    path: &Path,
    plan: DumpPlan,
) -> Result<(File, u64), Error> {
    let dom = lookup(conn, key)?;
    let to = path
        .to_str()
        .ok_or_else(|| Error::internal("the scratch path is not UTF-8"))?;
    dump_into(&dom, to, plan)?;
    let file =
        File::open(path).map_err(|e| Error::internal_from("cannot open the core dump", e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::internal_from("cannot read the core dump's size", e))?
        .len();
    Ok((file, size))
}
