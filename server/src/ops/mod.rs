//! The operations layer: every libvirt call the server makes, as plain
//! blocking functions over a `&Connect`. Services run them through
//! `HostPool::run`, which puts them on the blocking pool.

pub mod agent;
pub mod domain;
pub mod guest_exec;
pub mod guest_file;
pub mod host;
pub mod network;
pub mod screenshot;
pub mod snapshot;
pub mod storage;
pub mod volume_transfer;

use crate::error::Error;

/// The libvirt connection every operation runs on (what `HostPool::run`
/// hands out), named here so that callers above `ops` need not import the
/// `virt` crate.
pub use virt::connect::Connect;

/// For listings: reading an object that vanished between the listing and the
/// read (another client deleted it) is not an error of the listing; it is
/// simply no longer there. Other errors pass through.
pub fn unless_vanished<T>(r: Result<T, Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// What an object's definition was before a define replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorDefinition {
    /// Persistent, with this XML.
    Persistent(String),
    /// Transient: running without a definition.
    Transient,
}

/// An object's persistent definition, read with `read(flags)`: its inactive
/// XML, or its current XML where the driver lacks the inactive flag (the
/// test driver answers "unsupported flags"; its objects have no separate
/// live definition). `None` when neither can be read.
pub fn config_xml(
    read: impl Fn(u32) -> Result<String, virt::error::Error>,
    inactive_flag: u32,
) -> Option<String> {
    match read(inactive_flag) {
        Ok(xml) => Some(xml),
        Err(e) if crate::error::is_unsupported(&e) => read(0).ok(),
        Err(_) => None,
    }
}
