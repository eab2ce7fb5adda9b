//! Network calls the `virt` crate does not wrap: DHCP leases.

use std::{
    os::raw::{c_int, c_uint},
    ptr,
};

use virt::{network::Network, sys};

use super::{copy_c_str, cstring, last_error};
use crate::error::Error;

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
pub fn network_dhcp_leases(net: &Network, mac: Option<&str>) -> Result<Vec<DhcpLease>, Error> {
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
                iface: copy_c_str(l.iface),
                expiry_time: l.expirytime,
                ipv6: l.type_ == sys::VIR_IP_ADDR_TYPE_IPV6 as c_int,
                mac: copy_c_str(l.mac),
                iaid: copy_c_str(l.iaid),
                ip_address: copy_c_str(l.ipaddr),
                prefix: l.prefix as c_uint,
                hostname: copy_c_str(l.hostname),
                client_id: copy_c_str(l.clientid),
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
