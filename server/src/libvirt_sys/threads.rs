//! Emulator and IOThread placement: the calls the `virt` crate lacks.

use std::{
    os::raw::{c_int, c_uint},
    ptr,
};

use virt::{domain::Domain, sys};

use super::{
    cpumap::{cpus_in, map_len},
    last_error,
};
use crate::error::Error;

/// `virDomainGetEmulatorPinInfo`: the host CPUs (out of `host_cpus`) the
/// emulator threads may run on.
pub fn emulator_pin_info(dom: &Domain, host_cpus: u32, flags: u32) -> Result<Vec<u32>, Error> {
    let mut map = vec![0u8; map_len(host_cpus)];
    // SAFETY: see the module doc of `libvirt_sys`; `map` holds exactly
    // `maplen` bytes, one map as the call requires.
    let rc = unsafe {
        sys::virDomainGetEmulatorPinInfo(
            dom.as_ptr(),
            map.as_mut_ptr(),
            map.len() as c_int,
            flags as c_uint,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(cpus_in(&map, host_cpus))
}

/// `virDomainGetIOThreadInfo`: each IOThread's id and host CPUs (out of
/// `host_cpus`), by ascending id.
pub fn iothread_info(
    dom: &Domain,
    host_cpus: u32,
    flags: u32,
) -> Result<Vec<(u32, Vec<u32>)>, Error> {
    let mut info: *mut sys::virDomainIOThreadInfoPtr = ptr::null_mut();
    // SAFETY: see the module doc; libvirt allocates the array and its
    // entries, which are copied below and freed exactly once.
    let n = unsafe { sys::virDomainGetIOThreadInfo(dom.as_ptr(), &mut info, flags as c_uint) };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: on success `info` points to `n` entries, each a valid
        // virDomainIOThreadInfo whose `cpumap` holds `cpumaplen` bytes.
        unsafe {
            let entry = *info.add(i);
            if entry.is_null() {
                continue;
            }
            let e = &*entry;
            let map = if e.cpumap.is_null() || e.cpumaplen <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(e.cpumap, e.cpumaplen as usize)
            };
            out.push((e.iothread_id, cpus_in(map, host_cpus)));
            sys::virDomainIOThreadInfoFree(entry);
        }
    }
    if !info.is_null() {
        // SAFETY: the array itself is libvirt's, freed with free(3) as the
        // call documents (its entries were freed above).
        unsafe { libc::free(info.cast()) };
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// `virDomainAddIOThread`.
pub fn add_iothread(dom: &Domain, id: u32, flags: u32) -> Result<(), Error> {
    // SAFETY: a plain call on a live domain.
    if unsafe { sys::virDomainAddIOThread(dom.as_ptr(), id as c_uint, flags as c_uint) } < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainDelIOThread`.
pub fn delete_iothread(dom: &Domain, id: u32, flags: u32) -> Result<(), Error> {
    // SAFETY: a plain call on a live domain.
    if unsafe { sys::virDomainDelIOThread(dom.as_ptr(), id as c_uint, flags as c_uint) } < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainPinIOThread` with the CPU map `map`.
pub fn pin_iothread(dom: &Domain, id: u32, map: &[u8], flags: u32) -> Result<(), Error> {
    let mut map = map.to_vec();
    // SAFETY: `map` is ours for the call and its length is passed.
    let rc = unsafe {
        sys::virDomainPinIOThread(
            dom.as_ptr(),
            id as c_uint,
            map.as_mut_ptr(),
            map.len() as c_int,
            flags as c_uint,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}
