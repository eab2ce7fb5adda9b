//! Domain calls: state with errors, save, vCPU pinning and bulk statistics.

use std::{
    mem::ManuallyDrop,
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

/// One record of a [`StatsList`]: its domain and the statistics libvirt
/// reported for it. The handle is the record's own: no reference is taken
/// for it (see [`StatsList`]); `domain().clone()` takes one, for a handle
/// that outlives the list.
#[derive(Debug)]
pub struct LentRecord {
    domain: ManuallyDrop<Domain>,
    /// The `(field, value)` pairs libvirt reported, in its order.
    pub params: Vec<(String, TypedValue)>,
}

impl LentRecord {
    /// The record's domain, valid while its list lives.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

/// libvirt's answer to a bulk statistics call, kept as libvirt gave it
/// until dropped (`virDomainStatsRecordListFree`). Its records lend their
/// domain handles instead of each taking a reference of its own: every
/// public libvirt call on a domain, `virDomainRef` and `virDomainFree`
/// among them, formats the domain's UUID for its debug log whether or not
/// anything logs, and a handle's last release formats it once more. For a
/// listing of 1000 domains the reference and release of a handle per
/// record were half the server's CPU time.
#[derive(Debug)]
pub struct StatsList {
    raw: *mut sys::virDomainStatsRecordPtr,
    records: Vec<LentRecord>,
}

impl StatsList {
    /// The records, in libvirt's order.
    pub fn records(&self) -> &[LentRecord] {
        &self.records
    }
}

// SAFETY: nothing in a list is bound to the thread that made it: libvirt's
// objects are thread-safe (reference counts are atomic, a handle may be
// used and released from any thread), and the list is freed exactly once,
// by whichever thread drops it.
unsafe impl Send for StatsList {}

impl Drop for StatsList {
    fn drop(&mut self) {
        // The lent handles go before the list that owns them.
        self.records.clear();
        if !self.raw.is_null() {
            // SAFETY: frees the list (and its records) exactly once; no
            // lent handle is left.
            unsafe { sys::virDomainStatsRecordListFree(self.raw) };
        }
    }
}

/// The UUID of `dom` in libvirt's canonical form (lowercase, hyphenated),
/// formatted here: `virDomainGetUUIDString` formats it twice (once for
/// its debug log), `virDomainGetUUID` once.
pub fn uuid_of(dom: &Domain) -> Result<String, Error> {
    Ok(dom.uuid()?.hyphenated().to_string())
}

/// Which libvirt connection `dom` calls over (`virDomainGetConnect`), as
/// an identity only: equal for handles of one connection, never
/// dereferenced. `virDomainListGetStats` takes handles of one connection.
pub fn connection_of(dom: &Domain) -> usize {
    // SAFETY: `dom` is a live handle; the connection pointer is only
    // compared, and libvirt takes no reference for it.
    unsafe { sys::virDomainGetConnect(dom.as_ptr()) as usize }
}

/// `virConnectGetAllDomainStats` (`doms` empty: every domain `flags`
/// selects) or `virDomainListGetStats` (the domains of `doms`, all of one
/// connection): libvirt's bulk statistics, one round trip whatever the
/// number of domains.
pub fn domain_stats(
    conn: &Connect,
    doms: &[&Domain],
    stats: u32,
    flags: u32,
) -> Result<StatsList, Error> {
    let mut raw: *mut sys::virDomainStatsRecordPtr = ptr::null_mut();
    let n = if doms.is_empty() {
        // SAFETY: see the module doc; `raw` is a local out-pointer.
        unsafe { sys::virConnectGetAllDomainStats(conn.as_ptr(), stats, &mut raw, flags) }
    } else {
        // The list is NULL-terminated, as virDomainListGetStats requires.
        // SAFETY: the pointers come from `doms`, which outlives the call.
        let mut list: Vec<sys::virDomainPtr> = doms.iter().map(|d| unsafe { d.as_ptr() }).collect();
        list.push(ptr::null_mut());
        // SAFETY: see the module doc; `list` lives until the call returns.
        unsafe { sys::virDomainListGetStats(list.as_mut_ptr(), stats, &mut raw, flags) }
    };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = StatsList {
        raw,
        records: Vec::with_capacity(n as usize),
    };
    for i in 0..n as usize {
        // SAFETY: libvirt returned `n` valid record pointers, which live
        // until `out` frees the list.
        let rec = unsafe { &**raw.add(i) };
        out.records.push(LentRecord {
            // SAFETY: the record holds a reference on its domain until the
            // list is freed; the wrapper never releases it (ManuallyDrop)
            // and cannot outlive the list (records are only lent).
            domain: ManuallyDrop::new(unsafe { Domain::from_ptr(rec.dom) }),
            // SAFETY: the record's `params` holds `nparams` elements,
            // valid until the list is freed.
            params: unsafe { copy_params(rec.params, rec.nparams) },
        });
    }
    Ok(out)
}
