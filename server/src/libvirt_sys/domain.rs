//! Domain calls: state with errors, save, vCPU pinning and bulk statistics.

use std::{
    os::raw::{c_int, c_uint},
    ptr,
};

use virt::{connect::Connect, domain::Domain, sys};

use super::{
    cstring, last_error,
    typed_params::{copy_params, take_params},
    TypedValue,
};
use crate::error::Error;

/// `virDomainGetState`: the raw state and reason, with errors reported
/// (the `virt` wrapper drops them).
pub fn domain_state(dom: &Domain) -> Result<(i32, i32), Error> {
    let mut state: c_int = -1;
    let mut reason: c_int = -1;
    // SAFETY: see the module doc; `state` and `reason` are locals.
    let rc = unsafe { sys::virDomainGetState(dom.as_ptr(), &mut state, &mut reason, 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok((state, reason))
}

/// `virDomainGetJobStats`: the job's virDomainJobType and its typed
/// statistics (`flags`: VIR_DOMAIN_JOB_STATS_*).
pub fn domain_job_stats(
    dom: &Domain,
    flags: u32,
) -> Result<(i32, Vec<(String, TypedValue)>), Error> {
    let mut kind: c_int = 0;
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: see the module doc; the out-pointers are locals and libvirt
    // allocates the parameter array, which `take_params` copies and frees.
    let rc = unsafe {
        sys::virDomainGetJobStats(
            dom.as_ptr(),
            &mut kind,
            &mut params,
            &mut n,
            flags as c_uint,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    // SAFETY: on success `params` holds `n` parameters that are ours.
    Ok((kind, unsafe { take_params(params, n) }))
}

/// `virDomainAbortJob`: aborts the domain's running job.
pub fn domain_abort_job(dom: &Domain) -> Result<(), Error> {
    // SAFETY: see the module doc.
    let rc = unsafe { sys::virDomainAbortJob(dom.as_ptr()) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainMigrateStartPostCopy`: switches a running migration to
/// post-copy.
pub fn domain_migrate_start_post_copy(dom: &Domain) -> Result<(), Error> {
    // SAFETY: see the module doc.
    let rc = unsafe { sys::virDomainMigrateStartPostCopy(dom.as_ptr(), 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainSaveFlags`: saves the domain's memory to `path` and stops it.
pub fn domain_save(dom: &Domain, path: &str, flags: u32) -> Result<(), Error> {
    let path = cstring("path", path)?;
    // SAFETY: see the module doc; `path` lives until the call returns and a
    // null `dxml` is documented as "keep the current XML".
    let rc = unsafe { sys::virDomainSaveFlags(dom.as_ptr(), path.as_ptr(), ptr::null(), flags) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainGetVcpuPinInfo`: for each of `vcpus` vCPUs, the host CPUs it
/// may run on (out of `host_cpus`).
pub fn vcpu_pin_info(
    dom: &Domain,
    vcpus: u32,
    host_cpus: u32,
    flags: u32,
) -> Result<Vec<Vec<u32>>, Error> {
    let maplen = super::cpumap::map_len(host_cpus);
    let mut maps = vec![0u8; maplen * vcpus as usize];
    // SAFETY: see the module doc; `maps` holds exactly `vcpus * maplen`
    // bytes, as the call requires for `ncpumaps = vcpus`.
    let n = unsafe {
        sys::virDomainGetVcpuPinInfo(
            dom.as_ptr(),
            vcpus as c_int,
            maps.as_mut_ptr(),
            maplen as c_int,
            flags as c_uint,
        )
    };
    if n < 0 {
        return Err(last_error());
    }
    let n = (n as usize).min(vcpus as usize);
    Ok(maps
        .chunks(maplen)
        .take(n)
        .map(|map| super::cpumap::cpus_in(map, host_cpus))
        .collect())
}

/// The statistics of one domain, copied out of a `virDomainStatsRecord`.
#[derive(Debug, Clone)]
pub struct StatsRecord {
    /// The domain.
    pub domain: Domain,
    /// The `(field, value)` pairs libvirt reported, in its order.
    pub params: Vec<(String, TypedValue)>,
}

/// Which libvirt connection `dom` calls over (`virDomainGetConnect`), as
/// an identity only: equal for handles of one connection, never
/// dereferenced. `virDomainListGetStats` takes handles of one connection.
pub fn connection_of(dom: &Domain) -> usize {
    // SAFETY: `dom` is a live handle; the connection pointer is only
    // compared, and libvirt takes no reference for it.
    unsafe { sys::virDomainGetConnect(dom.as_ptr()) as usize }
}

/// `virConnectGetAllDomainStats` (when `doms` is empty) or
/// `virDomainListGetStats`: libvirt's bulk statistics.
pub fn domain_stats(
    conn: &Connect,
    doms: &[Domain],
    stats: u32,
    flags: u32,
) -> Result<Vec<StatsRecord>, Error> {
    let mut records: *mut sys::virDomainStatsRecordPtr = ptr::null_mut();
    let n = if doms.is_empty() {
        // SAFETY: see the module doc; `records` is a local out-pointer.
        unsafe { sys::virConnectGetAllDomainStats(conn.as_ptr(), stats, &mut records, flags) }
    } else {
        // The list is NULL-terminated, as virDomainListGetStats requires.
        // SAFETY: the pointers come from `doms`, which outlives the call.
        let mut list: Vec<sys::virDomainPtr> = doms.iter().map(|d| unsafe { d.as_ptr() }).collect();
        list.push(ptr::null_mut());
        // SAFETY: see the module doc; `list` lives until the call returns.
        unsafe { sys::virDomainListGetStats(list.as_mut_ptr(), stats, &mut records, flags) }
    };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: libvirt returned `n` valid record pointers.
        let rec = unsafe { &**records.add(i) };
        // SAFETY: the record holds a reference on its domain; we take our
        // own with virDomainRef so the wrapper can free it independently.
        let domain = unsafe {
            sys::virDomainRef(rec.dom);
            Domain::from_ptr(rec.dom)
        };
        // SAFETY: the record's `params` holds `nparams` elements, valid
        // until the list is freed below.
        let params = unsafe { copy_params(rec.params, rec.nparams) };
        out.push(StatsRecord { domain, params });
    }
    if !records.is_null() {
        // SAFETY: frees the list (and its records) exactly once.
        unsafe { sys::virDomainStatsRecordListFree(records) };
    }
    Ok(out)
}
