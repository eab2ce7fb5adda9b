//! `BlockJobService` conversions: requests into `ops::blockjob` inputs
//! (VIR_DOMAIN_BLOCK_* flags, the copy's destination XML, bounded
//! bandwidths) and [`BlockJobFacts`] into `DomainBlockJob` messages.

use libvirt_grpc::v1::{self, StorageVolumeFormat};
use virt::sys;

use super::flags_of;
use crate::{
    error::Error,
    events::convert::block_job_type,
    ops::{
        blockjob::{BlockCommit, BlockCopy, BlockJobFacts, CopyDestination},
        external_files::ExternalFiles,
        storage::VolumeKey,
    },
    render::blockjob as render,
    validate::{self, Violations},
};

/// Largest bandwidth libvirt takes in bytes per second (its signed 64-bit
/// limit).
pub const MAX_BANDWIDTH: u64 = i64::MAX as u64;

impl From<BlockJobFacts> for v1::DomainBlockJob {
    fn from(f: BlockJobFacts) -> Self {
        v1::DomainBlockJob {
            host: f.host,
            domain: f.domain,
            disk: f.disk,
            r#type: block_job_type(f.job.kind) as i32,
            cursor: f.job.cur,
            cursor_end: f.job.end,
            bandwidth_bytes_per_second: f.job.bandwidth,
        }
    }
}

/// A disk's target name: required, plain (see [`validate::object_name`]).
pub fn disk(field: &str, name: &str) -> Result<String, Error> {
    validate::object_name(field, name)?;
    Ok(name.to_owned())
}

/// A bandwidth in bytes per second libvirt can take.
pub fn bandwidth(field: &str, b: u64) -> Result<u64, Error> {
    if b > MAX_BANDWIDTH {
        return Err(Error::invalid(
            field,
            format!("{b} is more than libvirt takes ({MAX_BANDWIDTH})"),
        ));
    }
    Ok(b)
}

/// An optional absolute path of a backing chain (empty: `None`).
fn chain_path(v: &mut Violations, field: &str, p: &str) -> Option<String> {
    if p.is_empty() {
        return None;
    }
    v.check(validate::absolute_path(field, p));
    Some(p.to_owned())
}

/// `BlockCopyDomainDisk`, validated: every bad field (the domain aside)
/// in one error. `volume` is the destination volume's key when the request
/// names one (the service resolves it, and confines a file).
pub fn block_copy(
    r: &v1::BlockCopyDomainDiskRequest,
    volume: Result<Option<VolumeKey>, Error>,
) -> Result<BlockCopy, Error> {
    use v1::block_copy_domain_disk_request::Destination;
    let mut v = Violations::default();
    let disk = v.check(disk("disk", &r.disk));
    let volume = v.check(volume).flatten();
    let file = match &r.destination {
        Some(Destination::File(f)) if f.is_empty() => {
            v.add("file", "is required");
            None
        }
        Some(Destination::File(f)) => {
            v.check(validate::absolute_path("file", f));
            Some(f.clone())
        }
        Some(Destination::Volume(_)) => None,
        None => {
            v.add("destination", "set one of file or volume");
            None
        }
    };
    let format = match StorageVolumeFormat::try_from(r.format) {
        Ok(StorageVolumeFormat::Unspecified) => None,
        Ok(StorageVolumeFormat::Raw) => Some("raw"),
        Ok(StorageVolumeFormat::Qcow2) => Some("qcow2"),
        _ => {
            v.add(
                "format",
                format!("{} is not offered: RAW, QCOW2 or UNSPECIFIED", r.format),
            );
            None
        }
    };
    let bw = v.check(bandwidth(
        "bandwidth_bytes_per_second",
        r.bandwidth_bytes_per_second,
    ));
    v.finish()?;
    let flags = flags_of(&[
        (r.shallow, sys::VIR_DOMAIN_BLOCK_COPY_SHALLOW),
        (r.reuse_external, sys::VIR_DOMAIN_BLOCK_COPY_REUSE_EXT),
        (r.transient_job, sys::VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB),
    ]);
    let (destination, files) = match (file, volume) {
        (Some(file), _) => (
            CopyDestination::File(render::copy_destination(&file, format)?),
            ExternalFiles {
                disks: vec![file],
                memory: None,
                reuse: r.reuse_external,
                local: false,
            },
        ),
        (None, Some(key)) => (
            CopyDestination::Volume { key, format },
            ExternalFiles::default(),
        ),
        (None, None) => return Err(Error::internal("a checked destination is missing")),
    };
    let (Some(disk), Some(bandwidth)) = (disk, bw) else {
        return Err(Error::internal("a checked value is missing"));
    };
    Ok(BlockCopy {
        disk,
        destination,
        bandwidth,
        flags,
        files,
    })
}

impl TryFrom<&v1::BlockCommitDomainDiskRequest> for BlockCommit {
    type Error = Error;

    /// Every bad field (the domain aside) in one error.
    fn try_from(r: &v1::BlockCommitDomainDiskRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        let disk = v.check(disk("disk", &r.disk));
        let base = chain_path(&mut v, "base", &r.base);
        let top = chain_path(&mut v, "top", &r.top);
        let bw = v.check(bandwidth(
            "bandwidth_bytes_per_second",
            r.bandwidth_bytes_per_second,
        ));
        v.done(disk.zip(bw).map(|(disk, bandwidth)| BlockCommit {
            disk,
            base,
            top,
            bandwidth,
            flags: flags_of(&[(r.active, sys::VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)]),
        }))
    }
}

/// libvirt's VIR_DOMAIN_BLOCK_JOB_ABORT_* flags of an abort.
pub fn abort_flags(pivot: bool) -> u32 {
    flags_of(&[(pivot, sys::VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn a_copy_request_is_checked_field_by_field() {
        use v1::block_copy_domain_disk_request::Destination;
        let file = |f: &str| Some(Destination::File(f.into()));
        let c = block_copy(
            &v1::BlockCopyDomainDiskRequest {
                disk: "vda".into(),
                destination: file("/r/copy.qcow2"),
                format: StorageVolumeFormat::Qcow2 as i32,
                shallow: true,
                reuse_external: true,
                transient_job: true,
                bandwidth_bytes_per_second: 1 << 20,
                ..Default::default()
            },
            Ok(None),
        )
        .unwrap();
        assert_eq!(
            c.flags,
            sys::VIR_DOMAIN_BLOCK_COPY_SHALLOW
                | sys::VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
                | sys::VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        );
        assert_eq!(c.files.disks, ["/r/copy.qcow2"]);
        assert!(c.files.reuse);
        assert!(
            matches!(&c.destination, CopyDestination::File(x) if x.contains("qcow2")),
            "{c:?}"
        );
        let e = block_copy(
            &v1::BlockCopyDomainDiskRequest {
                disk: String::new(),
                destination: file("relative"),
                format: StorageVolumeFormat::Vmdk as i32,
                bandwidth_bytes_per_second: u64::MAX,
                ..Default::default()
            },
            Ok(None),
        )
        .unwrap_err();
        assert_eq!(
            fields(e),
            ["disk", "file", "format", "bandwidth_bytes_per_second"]
        );
        let none = block_copy(
            &v1::BlockCopyDomainDiskRequest {
                disk: "vda".into(),
                ..Default::default()
            },
            Ok(None),
        )
        .unwrap_err();
        assert_eq!(fields(none), ["destination"]);
        assert!(bandwidth("b", MAX_BANDWIDTH).is_ok());
    }

    #[test]
    fn a_commit_request_is_checked_field_by_field() {
        let c = BlockCommit::try_from(&v1::BlockCommitDomainDiskRequest {
            disk: "vda".into(),
            active: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((c.base, c.top), (None, None));
        assert_eq!(c.flags, sys::VIR_DOMAIN_BLOCK_COMMIT_ACTIVE);
        let e = BlockCommit::try_from(&v1::BlockCommitDomainDiskRequest {
            disk: "a b".into(),
            base: "base.qcow2".into(),
            top: "/r/../top".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields(e), ["disk", "base", "top"]);
    }
}
