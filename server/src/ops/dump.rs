//! Core dumps into a scratch file the caller never sees: libvirt writes
//! the dump to a path in a directory of the server's own, this module opens
//! it and unlinks it at once, and hands back the open file. From then on
//! the bytes live only as long as the handle (the stream that reads them);
//! a failed dump removes whatever libvirt wrote.

use std::{fs::File, path::Path};

use virt::sys;

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::error::Error;

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
    if plan.format == sys::VIR_DOMAIN_CORE_DUMP_FORMAT_RAW {
        // The older call where no format is asked for: drivers without
        // virDomainCoreDumpWithFormat (the test driver has both) still dump.
        dom.core_dump(to, plan.flags)?;
    } else {
        dom.core_dump_with_format(to, plan.format, plan.flags)?;
    }
    let file =
        File::open(path).map_err(|e| Error::internal_from("cannot open the core dump", e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::internal_from("cannot read the core dump's size", e))?
        .len();
    Ok((file, size))
}
