//! The few libvirt calls the `virt` crate does not wrap (or wraps without
//! error handling), made through `virt::sys`. This is the only module of the
//! server allowed to use `unsafe`.
//!
//! # Safety argument, shared by every block below
//!
//! * Every pointer handed to libvirt comes from a live `virt` wrapper
//!   (`Domain::as_ptr`, `Connect::as_ptr`) borrowed for the whole call, so
//!   libvirt's reference outlives the call; we never free those pointers.
//! * Out-pointers point to local variables or to buffers sized exactly as
//!   the libvirt documentation of that call requires.
//! * Memory libvirt hands back (stats records, typed parameters, strings) is
//!   copied into owned Rust values and then freed exactly once with the
//!   deallocator libvirt documents for it.
//! * libvirt's last error is per thread; each failure is turned into
//!   `virt::error::Error::last_error()` on the same thread, right after the
//!   failing call.
#![allow(unsafe_code)]

use std::{
    ffi::{CStr, CString},
    os::raw::{c_int, c_uint},
    ptr,
};

use virt::{connect::Connect, domain::Domain, sys};

use crate::error::Error;

fn last_error() -> Error {
    Error::Libvirt(virt::error::Error::last_error())
}

fn cstring(field: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::invalid(field, "must not contain NUL bytes"))
}

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
    let maplen = host_cpus.div_ceil(8).max(1) as usize;
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
        .map(|map| {
            (0..host_cpus)
                .filter(|cpu| map[(cpu / 8) as usize] & (1 << (cpu % 8)) != 0)
                .collect()
        })
        .collect())
}

/// One typed parameter value, copied out of libvirt.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// A signed integer (INT or LLONG).
    Int(i64),
    /// An unsigned integer (UINT or ULLONG).
    UInt(u64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
}

impl TypedValue {
    /// The value as an unsigned integer, when it is a non-negative number.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            TypedValue::UInt(v) => Some(*v),
            TypedValue::Int(v) => u64::try_from(*v).ok(),
            TypedValue::Double(v) if *v >= 0.0 => Some(*v as u64),
            _ => None,
        }
    }

    /// The value as a signed integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            TypedValue::Int(v) => Some(*v),
            TypedValue::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TypedValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The statistics of one domain, copied out of a `virDomainStatsRecord`.
#[derive(Debug, Clone)]
pub struct StatsRecord {
    /// The domain.
    pub domain: Domain,
    /// The `(field, value)` pairs libvirt reported, in its order.
    pub params: Vec<(String, TypedValue)>,
}

/// Copies typed parameters out of libvirt's array.
///
/// # Safety
/// `params` must point to `n` initialised `virTypedParameter`s.
unsafe fn copy_params(params: sys::virTypedParameterPtr, n: c_int) -> Vec<(String, TypedValue)> {
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for i in 0..n.max(0) as usize {
        // SAFETY: the caller guarantees `n` elements.
        let p = unsafe { &*params.add(i) };
        // SAFETY: libvirt NUL-terminates `field` within its 80 bytes.
        let field = unsafe { CStr::from_ptr(p.field.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: `type_` says which union member is initialised.
        let value = unsafe {
            match p.type_ as u32 {
                sys::VIR_TYPED_PARAM_INT => TypedValue::Int(i64::from(p.value.i)),
                sys::VIR_TYPED_PARAM_UINT => TypedValue::UInt(u64::from(p.value.ui)),
                sys::VIR_TYPED_PARAM_LLONG => TypedValue::Int(p.value.l),
                sys::VIR_TYPED_PARAM_ULLONG => TypedValue::UInt(p.value.ul),
                sys::VIR_TYPED_PARAM_DOUBLE => TypedValue::Double(p.value.d),
                sys::VIR_TYPED_PARAM_BOOLEAN => TypedValue::Bool(p.value.b != 0),
                sys::VIR_TYPED_PARAM_STRING if !p.value.s.is_null() => {
                    TypedValue::String(CStr::from_ptr(p.value.s).to_string_lossy().into_owned())
                }
                _ => continue,
            }
        };
        out.push((field, value));
    }
    out
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
        // SAFETY: see the module doc.
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
        // SAFETY: the record's `params` holds `nparams` elements.
        let params = unsafe { copy_params(rec.params, rec.nparams) };
        out.push(StatsRecord { domain, params });
    }
    if !records.is_null() {
        // SAFETY: frees the list (and its records) exactly once.
        unsafe { sys::virDomainStatsRecordListFree(records) };
    }
    Ok(out)
}

/// A NULL-free array of C strings kept alive with its pointer list.
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const std::os::raw::c_char>,
}

impl CStrings {
    fn new(field: &str, items: &[String]) -> Result<Self, Error> {
        let owned = items
            .iter()
            .map(|s| cstring(field, s))
            .collect::<Result<Vec<_>, _>>()?;
        let ptrs = owned.iter().map(|c| c.as_ptr()).collect();
        Ok(CStrings {
            _owned: owned,
            ptrs,
        })
    }

    /// The pointer list, or null when empty (libvirt's "all").
    fn as_mut_ptr(&mut self) -> *mut *const std::os::raw::c_char {
        if self.ptrs.is_empty() {
            ptr::null_mut()
        } else {
            self.ptrs.as_mut_ptr()
        }
    }

    fn len(&self) -> c_uint {
        self.ptrs.len() as c_uint
    }
}

/// Copies a C string libvirt owns (null means empty).
///
/// # Safety
/// `p` must be null or a valid NUL-terminated string.
unsafe fn owned_str(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

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
        // SAFETY: each entry's strings are valid; `devAlias` holds
        // `ndevAlias` strings.
        let entry = unsafe {
            let fs = &*p;
            FsInfo {
                mountpoint: owned_str(fs.mountpoint),
                name: owned_str(fs.name),
                fstype: owned_str(fs.fstype),
                dev_aliases: (0..fs.ndevAlias)
                    .map(|j| owned_str(*fs.devAlias.add(j)))
                    .collect(),
            }
        };
        out.push(entry);
        // SAFETY: frees this entry exactly once, as documented.
        unsafe { sys::virDomainFSInfoFree(p) };
    }
    if !info.is_null() {
        // SAFETY: the array itself is freed with free(), as documented.
        unsafe { libc_free(info.cast()) };
    }
    Ok(out)
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut std::os::raw::c_void);
}

/// `virDomainAuthorizedSSHKeysGet`.
pub fn ssh_keys_get(dom: &Domain, user: &str) -> Result<Vec<String>, Error> {
    let user = cstring("user", user)?;
    let mut keys: *mut *mut std::os::raw::c_char = ptr::null_mut();
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
            out.push(owned_str(k));
            libc_free(k.cast());
        }
    }
    if !keys.is_null() {
        // SAFETY: the array is freed once with free(), as documented.
        unsafe { libc_free(keys.cast()) };
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
    // SAFETY: libvirt filled `n` parameters; freed once right after.
    let out = unsafe { copy_params(params, n) };
    // SAFETY: as documented for this call.
    unsafe { sys::virTypedParamsFree(params, n) };
    Ok(out)
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
    // SAFETY: libvirt filled `n` parameters; freed once right after.
    let out = unsafe { copy_params(params, n as c_int) };
    // SAFETY: as documented for this call.
    unsafe { sys::virTypedParamsFree(params, n as c_int) };
    Ok(out)
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
/// One DHCP lease, copied out of libvirt's record.
#[derive(Debug, Clone, Default)]
pub struct DhcpLease {
    /// The interface.
    pub iface: String,
    /// Expiry, seconds since the epoch.
    pub expiry_time: i64,
    /// Whether the address is IPv6.
    pub ipv6: bool,
    /// The MAC address.
    pub mac: String,
    /// The IAID.
    pub iaid: String,
    /// The address.
    pub ip_address: String,
    /// The prefix length.
    pub prefix: u32,
    /// The client's host name.
    pub hostname: String,
    /// The client id.
    pub client_id: String,
}

/// `virNetworkGetDHCPLeases` (not wrapped by the `virt` crate).
pub fn network_dhcp_leases(
    net: &virt::network::Network,
    mac: Option<&str>,
) -> Result<Vec<DhcpLease>, Error> {
    let mac = mac.map(|m| cstring("mac", m)).transpose()?;
    let mut leases: *mut sys::virNetworkDHCPLeasePtr = ptr::null_mut();
    // SAFETY: see the module doc; `leases` is a local out-pointer and `mac`
    // (or null, meaning all) lives until the call returns.
    let n = unsafe {
        sys::virNetworkGetDHCPLeases(
            net.as_ptr(),
            mac.as_ref().map_or(ptr::null(), |m| m.as_ptr()),
            &mut leases,
            0,
        )
    };
    if n < 0 {
        return Err(last_error());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: libvirt returned an array of `n` valid lease pointers.
        let lp = unsafe { *leases.add(i) };
        if lp.is_null() {
            continue;
        }
        // SAFETY: `lp` is a valid lease record until freed below, and its
        // strings are null or NUL-terminated strings it owns.
        let lease = unsafe {
            let l = &*lp;
            DhcpLease {
                iface: owned_str(l.iface),
                expiry_time: l.expirytime,
                ipv6: l.type_ == sys::VIR_IP_ADDR_TYPE_IPV6 as c_int,
                mac: owned_str(l.mac),
                iaid: owned_str(l.iaid),
                ip_address: owned_str(l.ipaddr),
                prefix: l.prefix as c_uint,
                hostname: owned_str(l.hostname),
                client_id: owned_str(l.clientid),
            }
        };
        out.push(lease);
        // SAFETY: each lease is freed exactly once, after its copy.
        unsafe { sys::virNetworkDHCPLeaseFree(lp) };
    }
    if !leases.is_null() {
        // SAFETY: libvirt documents the array itself as freed with free().
        unsafe { libc::free(leases.cast()) };
    }
    Ok(out)
}
