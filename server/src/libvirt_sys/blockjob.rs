//! Block job calls: copy, commit, pull, job info, speed and abort. The
//! `virt` crate wraps none of them.

use std::{
    os::raw::{c_int, c_uint, c_ulong},
    ptr,
};

use virt::{domain::Domain, sys};

use super::{cstring, last_error};
use crate::error::Error;

/// A block job as `virDomainGetBlockJobInfo` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBlockJob {
    /// libvirt's virDomainBlockJobType.
    pub kind: i32,
    /// Bandwidth limit in bytes per second (0: none).
    pub bandwidth: u64,
    /// Progress so far.
    pub cur: u64,
    /// Progress at the end.
    pub end: u64,
}

/// A bandwidth for libvirt's `unsigned long` arguments (64 bits here, 32
/// on other targets).
#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
fn bandwidth_arg(bandwidth: u64) -> Result<c_ulong, Error> {
    c_ulong::try_from(bandwidth).map_err(|_| {
        Error::invalid(
            "bandwidth_bytes_per_second",
            "does not fit this host's unsigned long",
        )
    })
}

/// Turns libvirt's `0 on success, -1 on error` into ours.
fn status(rc: c_int) -> Result<(), Error> {
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainGetBlockJobInfo` (bandwidth in bytes): the disk's job, `None`
/// when it has none.
pub fn block_job_info(dom: &Domain, disk: &str) -> Result<Option<RawBlockJob>, Error> {
    let disk = cstring("disk", disk)?;
    let mut info = sys::virDomainBlockJobInfo {
        type_: 0,
        bandwidth: 0,
        cur: 0,
        end: 0,
    };
    // SAFETY: see the module doc of `libvirt_sys`; `info` is a local of the
    // struct type libvirt fills in.
    let rc = unsafe {
        sys::virDomainGetBlockJobInfo(
            dom.as_ptr(),
            disk.as_ptr(),
            &mut info,
            sys::VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES as c_uint,
        )
    };
    match rc {
        r if r < 0 => Err(last_error()),
        0 => Ok(None),
        // `unsigned long` is 64 bits here but 32 on other targets.
        #[allow(clippy::useless_conversion)]
        _ => Ok(Some(RawBlockJob {
            kind: info.type_,
            bandwidth: u64::from(info.bandwidth),
            cur: info.cur,
            end: info.end,
        })),
    }
}

/// `virDomainBlockJobSetSpeed` with the bandwidth in bytes per second.
pub fn block_job_set_speed(dom: &Domain, disk: &str, bandwidth: u64) -> Result<(), Error> {
    let disk = cstring("disk", disk)?;
    let bandwidth = bandwidth_arg(bandwidth)?;
    // SAFETY: see the module doc of `libvirt_sys`.
    status(unsafe {
        sys::virDomainBlockJobSetSpeed(
            dom.as_ptr(),
            disk.as_ptr(),
            bandwidth,
            sys::VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES as c_uint,
        )
    })
}

/// `virDomainBlockJobAbort` (`flags`: VIR_DOMAIN_BLOCK_JOB_ABORT_*).
pub fn block_job_abort(dom: &Domain, disk: &str, flags: u32) -> Result<(), Error> {
    let disk = cstring("disk", disk)?;
    // SAFETY: see the module doc of `libvirt_sys`.
    status(unsafe { sys::virDomainBlockJobAbort(dom.as_ptr(), disk.as_ptr(), flags as c_uint) })
}

/// `virDomainBlockPull` with the bandwidth in bytes per second.
pub fn block_pull(dom: &Domain, disk: &str, bandwidth: u64) -> Result<(), Error> {
    let disk = cstring("disk", disk)?;
    let bandwidth = bandwidth_arg(bandwidth)?;
    // SAFETY: see the module doc of `libvirt_sys`.
    status(unsafe {
        sys::virDomainBlockPull(
            dom.as_ptr(),
            disk.as_ptr(),
            bandwidth,
            sys::VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES as c_uint,
        )
    })
}

/// `virDomainBlockCommit` with the bandwidth in bytes per second (`flags`:
/// VIR_DOMAIN_BLOCK_COMMIT_*; `None` for base or top: libvirt's default).
pub fn block_commit(
    dom: &Domain,
    disk: &str,
    base: Option<&str>,
    top: Option<&str>,
    bandwidth: u64,
    flags: u32,
) -> Result<(), Error> {
    let disk = cstring("disk", disk)?;
    let base = base.map(|b| cstring("base", b)).transpose()?;
    let top = top.map(|t| cstring("top", t)).transpose()?;
    let bandwidth = bandwidth_arg(bandwidth)?;
    let flags = flags | sys::VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES;
    // SAFETY: see the module doc of `libvirt_sys`; `base` and `top` are
    // either null (libvirt's documented default) or live C strings.
    status(unsafe {
        sys::virDomainBlockCommit(
            dom.as_ptr(),
            disk.as_ptr(),
            base.as_ref().map_or(ptr::null(), |b| b.as_ptr()),
            top.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
            bandwidth,
            flags as c_uint,
        )
    })
}

/// `virDomainBlockCopy` of `disk` to the destination `<disk>` XML, with the
/// bandwidth in bytes per second (0: none) as its typed parameter
/// (`flags`: VIR_DOMAIN_BLOCK_COPY_*).
pub fn block_copy(
    dom: &Domain,
    disk: &str,
    dest_xml: &str,
    bandwidth: u64,
    flags: u32,
) -> Result<(), Error> {
    let disk = cstring("disk", disk)?;
    let dest_xml = cstring("destination", dest_xml)?;
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut n: c_int = 0;
    let mut max: c_int = 0;
    if bandwidth > 0 {
        // SAFETY: see the module doc of `libvirt_sys`; libvirt grows the
        // (initially empty) array it owns through the three out-pointers,
        // all locals; it is freed below with virTypedParamsFree.
        let rc = unsafe {
            sys::virTypedParamsAddULLong(
                &mut params,
                &mut n,
                &mut max,
                sys::VIR_DOMAIN_BLOCK_COPY_BANDWIDTH.as_ptr(),
                bandwidth,
            )
        };
        if rc < 0 {
            let e = last_error();
            // SAFETY: `params` holds the `n` parameters libvirt allocated
            // (possibly none, then null), freed exactly once.
            unsafe { sys::virTypedParamsFree(params, n) };
            return Err(e);
        }
    }
    // SAFETY: see the module doc of `libvirt_sys`; `params` holds `n`
    // parameters (or is null with n = 0), alive for the call.
    let rc = unsafe {
        sys::virDomainBlockCopy(
            dom.as_ptr(),
            disk.as_ptr(),
            dest_xml.as_ptr(),
            params,
            n,
            flags as c_uint,
        )
    };
    let result = status(rc);
    // SAFETY: as above; freed exactly once, after the call (the error, if
    // any, was read first).
    unsafe { sys::virTypedParamsFree(params, n) };
    result
}
