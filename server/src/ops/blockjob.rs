//! Block job operations: every libvirt call `BlockJobService` makes
//! (through `libvirt_sys::blockjob`), and the removal of a copy's
//! destination file when the copy fails to start. Answers are
//! [`BlockJobFacts`], read right after the call.

use virt::sys;

use super::{domain::DomainKey, external_files::ExternalFiles, storage::VolumeKey, Connect};
use crate::{error::Error, libvirt_sys, render::blockjob as render};

/// A disk's block job as read from libvirt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockJobFacts {
    /// The configured host.
    pub host: String,
    /// The domain's name.
    pub domain: String,
    /// The disk's target name.
    pub disk: String,
    /// The raw job.
    pub job: libvirt_sys::RawBlockJob,
}

/// The job of `disk` of `dom`, if it has one.
fn read(
    dom: &virt::domain::Domain,
    host: &str,
    disk: &str,
) -> Result<Option<BlockJobFacts>, Error> {
    let Some(job) = libvirt_sys::block_job_info(dom, disk)? else {
        return Ok(None);
    };
    Ok(Some(BlockJobFacts {
        host: host.to_owned(),
        domain: dom.name()?,
        disk: disk.to_owned(),
        job,
    }))
}

/// A disk's block job, if any.
pub fn info(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    disk: &str,
) -> Result<Option<BlockJobFacts>, Error> {
    read(&super::domain::lookup(conn, key)?, host, disk)
}

/// Where a block copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDestination {
    /// A file: its destination `<disk>` XML.
    File(String),
    /// An existing volume, in this format (`None`: the disk's own).
    Volume {
        /// The volume.
        key: VolumeKey,
        /// libvirt's format name.
        format: Option<&'static str>,
    },
}

/// A block copy to start, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCopy {
    /// The disk's target name.
    pub disk: String,
    /// Where to copy to.
    pub destination: CopyDestination,
    /// Bandwidth limit in bytes per second (0: none).
    pub bandwidth: u64,
    /// VIR_DOMAIN_BLOCK_COPY_*.
    pub flags: u32,
    /// The destination file: must not exist unless reused; removed again
    /// when the copy fails to start and this call made it.
    pub files: ExternalFiles,
}

/// Starts a block copy; the job as read right after.
pub fn copy(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    c: &BlockCopy,
) -> Result<Option<BlockJobFacts>, Error> {
    let dom = super::domain::lookup(conn, key)?;
    match &c.destination {
        CopyDestination::File(xml) => c
            .files
            .guarded(|| libvirt_sys::block_copy(&dom, &c.disk, xml, c.bandwidth, c.flags))?,
        CopyDestination::Volume { key, format } => {
            // By its path: libvirt 9 cannot translate a `type='volume'`
            // copy destination itself ("is not translated"). The lookup
            // also makes a missing volume NOT_FOUND.
            let vol = super::storage::lookup_volume(conn, key)?;
            let block = match vol.info()?.kind {
                sys::VIR_STORAGE_VOL_FILE => false,
                sys::VIR_STORAGE_VOL_BLOCK => true,
                other => {
                    return Err(Error::Unimplemented(format!(
                        "Block copies go into file or block volumes, not type {other}"
                    )))
                }
            };
            let xml = render::copy_to_volume(&vol.path()?, block, *format)?;
            let flags = c.flags | sys::VIR_DOMAIN_BLOCK_COPY_REUSE_EXT;
            libvirt_sys::block_copy(&dom, &c.disk, &xml, c.bandwidth, flags)?;
        }
    }
    read(&dom, host, &c.disk)
}

/// Changes a job's bandwidth; the job as read after.
pub fn set_speed(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    disk: &str,
    bandwidth: u64,
) -> Result<Option<BlockJobFacts>, Error> {
    let dom = super::domain::lookup(conn, key)?;
    libvirt_sys::block_job_set_speed(&dom, disk, bandwidth)?;
    read(&dom, host, disk)
}

/// Ends a job (`flags`: VIR_DOMAIN_BLOCK_JOB_ABORT_*), waiting until it is
/// gone.
pub fn abort(conn: &Connect, key: &DomainKey, disk: &str, flags: u32) -> Result<(), Error> {
    libvirt_sys::block_job_abort(&super::domain::lookup(conn, key)?, disk, flags)
}

/// A block commit to start, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCommit {
    /// The disk's target name.
    pub disk: String,
    /// The image to commit into; `None`: the bottom of the chain.
    pub base: Option<String>,
    /// The top image; `None`: the active one.
    pub top: Option<String>,
    /// Bandwidth limit in bytes per second (0: none).
    pub bandwidth: u64,
    /// VIR_DOMAIN_BLOCK_COMMIT_*.
    pub flags: u32,
}

/// Starts a block commit; the job as read right after, if it still runs.
pub fn commit(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    c: &BlockCommit,
) -> Result<Option<BlockJobFacts>, Error> {
    let dom = super::domain::lookup(conn, key)?;
    libvirt_sys::block_commit(
        &dom,
        &c.disk,
        c.base.as_deref(),
        c.top.as_deref(),
        c.bandwidth,
        c.flags,
    )?;
    read(&dom, host, &c.disk)
}

/// Starts a block pull; the job as read right after, if it still runs.
pub fn pull(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    disk: &str,
    bandwidth: u64,
) -> Result<Option<BlockJobFacts>, Error> {
    let dom = super::domain::lookup(conn, key)?;
    libvirt_sys::block_pull(&dom, disk, bandwidth)?;
    read(&dom, host, disk)
}
