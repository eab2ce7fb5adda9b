//! Guest-agent calls the `virt` crate does not wrap: file systems, SSH keys,
//! guest info and guest vCPUs.

use std::{
    os::raw::{c_char, c_int, c_uint},
    ptr,
};

use virt::{domain::Domain, sys};

use super::{copy_c_str, cstring, last_error, typed_params::take_params, CStrings, TypedValue};
use crate::error::Error;

/// `virDomainFSFreeze`: freezes `mountpoints` (all when empty); returns how
/// many file systems were frozen.
pub fn fs_freeze(dom: &Domain, mountpoints: &[String]) -> Result<u32, Error> {
    let mut mps = CStrings::new("mountpoints", mountpoints)?;
    // SAFETY: see the module doc; `mps` lives until the call returns and
    // holds `mps.len()` valid strings (or is null with count 0).
    let n = unsafe { sys::virDomainFSFreeze(dom.as_ptr(), mps.as_mut_ptr(), mps.len(), 0) };
    if n < 0 {
        return Err(last_error());
    }
    Ok(n as u32)
}

/// `virDomainFSThaw`: thaws `mountpoints` (all when empty); returns how many
/// file systems were thawed.
pub fn fs_thaw(dom: &Domain, mountpoints: &[String]) -> Result<u32, Error> {
    let mut mps = CStrings::new("mountpoints", mountpoints)?;
    // SAFETY: as in `fs_freeze`.
    let n = unsafe { sys::virDomainFSThaw(dom.as_ptr(), mps.as_mut_ptr(), mps.len(), 0) };
    if n < 0 {
        return Err(last_error());
    }
    Ok(n as u32)
}

/// `virDomainFSTrim`: trims `mountpoint` (all when `None`).
pub fn fs_trim(dom: &Domain, mountpoint: Option<&str>, minimum: u64) -> Result<(), Error> {
    let mp = mountpoint.map(|m| cstring("mountpoint", m)).transpose()?;
    let mp_ptr = mp.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: see the module doc; `mp` lives until the call returns.
    let rc = unsafe { sys::virDomainFSTrim(dom.as_ptr(), mp_ptr, minimum, 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// One mounted guest file system, copied out of a `virDomainFSInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct FsInfo {
    /// Mount point in the guest.
    pub mountpoint: String,
    /// Guest device name.
    pub name: String,
    /// File system type.
    pub fstype: String,
    /// Aliases of the domain disks under it.
    pub dev_aliases: Vec<String>,
}

/// `virDomainGetFSInfo`.
pub fn fs_info(dom: &Domain) -> Result<Vec<FsInfo>, Error> {
    let mut info: *mut sys::virDomainFSInfoPtr = ptr::null_mut();
    // SAFETY: see the module doc; `info` is a local out-pointer.
    let n = unsafe { sys::virDomainGetFSInfo(dom.as_ptr(), &mut info, 0) };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: libvirt returned `n` valid entries.
        let p = unsafe { *info.add(i) };
        // SAFETY: each entry's strings are null or valid C strings;
        // `devAlias` holds `ndevAlias` of them.
        let entry = unsafe {
            let fs = &*p;
            FsInfo {
                mountpoint: copy_c_str(fs.mountpoint),
                name: copy_c_str(fs.name),
                fstype: copy_c_str(fs.fstype),
                dev_aliases: (0..fs.ndevAlias)
                    .map(|j| copy_c_str(*fs.devAlias.add(j)))
                    .collect(),
            }
        };
        out.push(entry);
        // SAFETY: frees this entry exactly once, as documented.
        unsafe { sys::virDomainFSInfoFree(p) };
    }
    if !info.is_null() {
        // SAFETY: the array itself is freed with free(), as documented.
        unsafe { libc::free(info.cast()) };
    }
    Ok(out)
}

/// `virDomainAuthorizedSSHKeysGet`.
pub fn ssh_keys_get(dom: &Domain, user: &str) -> Result<Vec<String>, Error> {
    let user = cstring("user", user)?;
    let mut keys: *mut *mut c_char = ptr::null_mut();
    // SAFETY: see the module doc; `keys` is a local out-pointer.
    let n =
        unsafe { sys::virDomainAuthorizedSSHKeysGet(dom.as_ptr(), user.as_ptr(), &mut keys, 0) };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: libvirt returned `n` strings, each freed once with free().
        unsafe {
            let k = *keys.add(i);
            out.push(copy_c_str(k));
            libc::free(k.cast());
        }
    }
    if !keys.is_null() {
        // SAFETY: the array is freed once with free(), as documented.
        unsafe { libc::free(keys.cast()) };
    }
    Ok(out)
}

/// `virDomainAuthorizedSSHKeysSet`: `flags` are APPEND / REMOVE (0 replaces).
pub fn ssh_keys_set(dom: &Domain, user: &str, keys: &[String], flags: u32) -> Result<(), Error> {
    let user = cstring("user", user)?;
    let mut keys = CStrings::new("keys", keys)?;
    // SAFETY: see the module doc; `user` and `keys` live until it returns.
    let rc = unsafe {
        sys::virDomainAuthorizedSSHKeysSet(
            dom.as_ptr(),
            user.as_ptr(),
            keys.as_mut_ptr(),
            keys.len(),
            flags,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainGetGuestInfo`: the typed parameters for the `types` groups.
pub fn guest_info(dom: &Domain, types: u32) -> Result<Vec<(String, TypedValue)>, Error> {
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: see the module doc; `params` and `n` are locals.
    let rc = unsafe { sys::virDomainGetGuestInfo(dom.as_ptr(), types, &mut params, &mut n, 0) };
    if rc < 0 {
        return Err(last_error());
    }
    // SAFETY: libvirt filled `n` parameters that are ours to free.
    Ok(unsafe { take_params(params, n) })
}

/// `virDomainGetGuestVcpus`: the typed parameters (`vcpus`, `online`,
/// `offlinable`, each a cpu list string).
pub fn guest_vcpus(dom: &Domain) -> Result<Vec<(String, TypedValue)>, Error> {
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut n: c_uint = 0;
    // SAFETY: see the module doc; `params` and `n` are locals.
    let rc = unsafe { sys::virDomainGetGuestVcpus(dom.as_ptr(), &mut params, &mut n, 0) };
    if rc < 0 {
        return Err(last_error());
    }
    // SAFETY: libvirt filled `n` parameters that are ours to free.
    Ok(unsafe { take_params(params, n as c_int) })
}

/// `virDomainSetGuestVcpus`: `cpumap` is a cpu list like `1-2,4`.
pub fn set_guest_vcpus(dom: &Domain, cpumap: &str, online: bool) -> Result<(), Error> {
    let map = cstring("vcpus", cpumap)?;
    // SAFETY: see the module doc; `map` lives until the call returns.
    let rc =
        unsafe { sys::virDomainSetGuestVcpus(dom.as_ptr(), map.as_ptr(), c_int::from(online), 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}
