//! Where a domain's threads run besides its vCPUs: the emulator threads
//! and the IOThreads (add, delete, pin, read).

use super::{
    domain::{describe, lookup, DomainInfo, DomainKey},
    Connect,
};
use crate::{
    error::Error,
    libvirt_sys::{self, cpumap},
};

/// The CPU map of `cpus` for this host: a CPU the host does not have is
/// INVALID_ARGUMENT (naming `field`); also the host's CPU count.
pub fn host_cpumap(conn: &Connect, field: &str, cpus: &[u32]) -> Result<(Vec<u8>, u32), Error> {
    let host_cpus = conn.node_info()?.cpus;
    if let Some(bad) = cpus.iter().find(|cpu| **cpu >= host_cpus) {
        return Err(Error::invalid(
            field,
            format!("host CPU {bad} does not exist (the host has {host_cpus})"),
        ));
    }
    Ok((cpumap::map_of(cpus, host_cpus), host_cpus))
}

/// Pins the emulator threads to `cpus` (`flags`: VIR_DOMAIN_AFFECT_*).
pub fn pin_emulator(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    cpus: &[u32],
    flags: u32,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    let (map, _) = host_cpumap(conn, "cpus", cpus)?;
    dom.pin_emulator(&map, flags)?;
    describe(conn, host, &dom)
}

/// The host CPUs the emulator threads may run on.
pub fn emulator_pinning(conn: &Connect, key: &DomainKey, flags: u32) -> Result<Vec<u32>, Error> {
    let dom = lookup(conn, key)?;
    let host_cpus = conn.node_info()?.cpus;
    libvirt_sys::threads::emulator_pin_info(&dom, host_cpus, flags)
}

/// One IOThread and its host CPUs.
pub type IoThread = (u32, Vec<u32>);

/// The domain's IOThreads (`flags`: VIR_DOMAIN_AFFECT_CURRENT or CONFIG).
pub fn iothreads(conn: &Connect, key: &DomainKey, flags: u32) -> Result<Vec<IoThread>, Error> {
    let dom = lookup(conn, key)?;
    let host_cpus = conn.node_info()?.cpus;
    libvirt_sys::threads::iothread_info(&dom, host_cpus, flags)
}

/// What to do to one IOThread.
#[derive(Debug, Clone)]
pub enum IoThreadChange {
    /// Add it.
    Add,
    /// Remove it.
    Delete,
    /// Pin it to these host CPUs.
    Pin(Vec<u32>),
}

/// Changes IOThread `id` (`flags`: VIR_DOMAIN_AFFECT_*), then reads the
/// IOThreads of the definition changed (the live one when both were).
///
/// libvirt 9 reports an id in use as INVALID_ARG ("an IOThread is already
/// using iothread_id") and a missing one as INVALID_ARG ("cannot find
/// IOThread"): they become ALREADY_EXISTS and NOT_FOUND.
pub fn change_iothread(
    conn: &Connect,
    key: &DomainKey,
    id: u32,
    change: &IoThreadChange,
    flags: u32,
) -> Result<Vec<IoThread>, Error> {
    let dom = lookup(conn, key)?;
    let host_cpus = conn.node_info()?.cpus;
    let result = match change {
        IoThreadChange::Add => libvirt_sys::threads::add_iothread(&dom, id, flags),
        IoThreadChange::Delete => libvirt_sys::threads::delete_iothread(&dom, id, flags),
        IoThreadChange::Pin(cpus) => {
            let (map, _) = host_cpumap(conn, "cpus", cpus)?;
            libvirt_sys::threads::pin_iothread(&dom, id, &map, flags)
        }
    };
    result.map_err(|e| refine(e, id))?;
    libvirt_sys::threads::iothread_info(&dom, host_cpus, super::read_back_flags(flags))
}

fn refine(e: Error, id: u32) -> Error {
    let Error::Libvirt { error, .. } = &e else {
        return e;
    };
    let m = error.message();
    if m.contains("already") {
        Error::AlreadyExists(format!("IOThread {id} exists already ({m})"))
    } else if m.contains("cannot find IOThread") || m.contains("not found") {
        Error::NotFound(format!("the domain has no IOThread {id} ({m})"))
    } else if m.contains("being used") || m.contains("in use") {
        Error::FailedPrecondition(format!("IOThread {id} is in use: {m}"))
    } else {
        e
    }
}
