//! The operations layer: every libvirt call the server makes, as plain
//! blocking functions over a `&Connect`. Services run them through
//! `HostPool::run`, which puts them on the blocking pool.

pub mod actions;
pub mod agent;
pub mod blockjob;
pub mod cache;
pub mod console;
pub mod counters;
pub mod domain;
pub mod dump;
pub mod external_files;
pub mod guest_exec;
pub mod guest_file;
pub mod host;
pub mod lookup;
pub mod migrate;
pub mod monitor;
pub mod network;
pub mod peek;
pub mod release;
pub mod screenshot;
pub mod snapshot;
pub mod storage;
pub mod threads;
pub mod tunables;
pub mod tuning;
pub mod volume_transfer;

use std::{ops::Deref, sync::Arc};

use crate::error::Error;

/// The libvirt connection every operation runs on (what `HostPool::run`
/// hands out): libvirt's connection (it dereferences to `virt`'s
/// `Connect`), and the domain handles and facts kept for its host
/// ([`cache`]).
#[derive(Clone)]
pub struct Connect {
    conn: virt::connect::Connect,
    handles: Arc<cache::Handles>,
    facts: Arc<cache::Facts>,
}

impl Connect {
    /// A connection of a host whose handles and facts are these.
    pub fn new(
        conn: virt::connect::Connect,
        handles: Arc<cache::Handles>,
        facts: Arc<cache::Facts>,
    ) -> Self {
        Connect {
            conn,
            handles,
            facts,
        }
    }

    /// A connection that keeps nothing between calls (its facts are never
    /// live): for tools and tests that call `ops` outside a pool.
    pub fn unpooled(conn: virt::connect::Connect) -> Self {
        Connect::new(conn, Arc::default(), Arc::default())
    }

    /// Opens `uri` as an [`unpooled`](Self::unpooled) connection.
    pub fn open_unpooled(uri: &str) -> Result<Self, Error> {
        Ok(Connect::unpooled(virt::connect::Connect::open(Some(uri))?))
    }

    /// The domain handles kept for this connection's host.
    pub fn handles(&self) -> &cache::Handles {
        &self.handles
    }

    /// The facts kept for this connection's host.
    pub fn facts(&self) -> &cache::Facts {
        &self.facts
    }
}

impl Deref for Connect {
    type Target = virt::connect::Connect;

    fn deref(&self) -> &virt::connect::Connect {
        &self.conn
    }
}

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

/// What to read back after a change made with `flags`
/// (VIR_DOMAIN_AFFECT_*): the persistent definition when only it changed,
/// else the current one.
pub fn read_back_flags(flags: u32) -> u32 {
    if flags == virt::sys::VIR_DOMAIN_AFFECT_CONFIG {
        virt::sys::VIR_DOMAIN_AFFECT_CONFIG
    } else {
        virt::sys::VIR_DOMAIN_AFFECT_CURRENT
    }
}
