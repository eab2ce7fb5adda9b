//! Domain actions of the internals RPCs, each answering the domain as read
//! right after it: NMI, rename, power-management wakeup and the memory
//! statistics period.

use super::{
    domain::{describe, lookup, DomainInfo, DomainKey},
    Connect,
};
use crate::{error::Error, libvirt_sys};

/// `virDomainInjectNMI`.
pub fn inject_nmi(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    libvirt_sys::internals::inject_nmi(&dom)?;
    describe(conn, host, &dom)
}

/// `virDomainRename`; the domain read back under its new name.
pub fn rename(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    new_name: &str,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    dom.rename(new_name, 0)?;
    // A handle kept for the old name finds the domain under its new name
    // (and is dropped when read); drop it now.
    conn.handles().forget(key);
    let renamed = conn.lookup_domain_by_name(new_name)?;
    describe(conn, host, &renamed)
}

/// `virDomainPMWakeup`.
pub fn wakeup(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    dom.pm_wakeup(0)?;
    describe(conn, host, &dom)
}

/// `virDomainSetMemoryStatsPeriod` (`flags`: VIR_DOMAIN_AFFECT_*).
pub fn set_memory_stats_period(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    seconds: i32,
    flags: u32,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    dom.set_memory_stats_period(seconds, flags)?;
    describe(conn, host, &dom)
}
