//! Network operations: every libvirt call `NetworkService` makes, and the
//! rollback of a half-done define. Answers are plain values
//! ([`NetworkInfo`], [`DhcpLease`]); `convert::network` makes messages of
//! them.

use std::collections::HashSet;

use super::Connect;
use virt::{network::Network, sys};

pub use crate::libvirt_sys::DhcpLease;

use super::PriorDefinition;
use crate::{error::Error, libvirt_sys, xml_query};

/// How a request identifies a network, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkKey {
    /// By name.
    Name(String),
    /// By canonical UUID.
    Uuid(String),
}

/// Finds a network.
pub fn lookup(conn: &Connect, key: &NetworkKey) -> Result<Network, Error> {
    Ok(match key {
        NetworkKey::Name(n) => conn.lookup_network_by_name(n)?,
        NetworkKey::Uuid(u) => conn.lookup_network_by_uuid_string(u)?,
    })
}

/// A network as read from libvirt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The configured host.
    pub host: String,
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: String,
    /// Its bridge device (from the XML where the driver has no call for it).
    pub bridge: String,
    /// Whether it runs.
    pub active: bool,
    /// Whether it has a persistent definition.
    pub persistent: bool,
    /// Whether it starts with the daemon.
    pub autostart: bool,
    /// Its `<forward mode>` as libvirt names it; `None` without `<forward>`.
    pub forward_mode: Option<String>,
}

/// Reads a network.
pub fn info(n: &Network, host: &str) -> Result<NetworkInfo, Error> {
    let xml = n.xml_desc(0)?;
    let bridge = n
        .bridge_name()
        .ok()
        .or_else(|| xml_query::attr(&xml, &["network", "bridge"], "name"))
        .unwrap_or_default();
    let forward_mode = xml_query::attr(&xml, &["network", "forward"], "mode");
    Ok(NetworkInfo {
        host: host.to_owned(),
        name: n.name()?,
        uuid: n.uuid_string()?,
        bridge,
        active: n.is_active()?,
        persistent: n.is_persistent()?,
        autostart: n.autostart()?,
        forward_mode,
    })
}

/// The networks `flags` (VIR_CONNECT_LIST_NETWORKS_*) select; one that
/// vanishes while being read is left out.
pub fn list(conn: &Connect, host: &str, flags: u32) -> Result<Vec<NetworkInfo>, Error> {
    conn.list_all_networks(flags)?
        .iter()
        .map(|n| super::unless_vanished(info(n, host)))
        .filter_map(Result::transpose)
        .collect()
}

/// Reads a network by key.
pub fn get(conn: &Connect, key: &NetworkKey, host: &str) -> Result<NetworkInfo, Error> {
    info(&lookup(conn, key)?, host)
}

/// A network's XML (`flags`: VIR_NETWORK_XML_*).
pub fn xml(conn: &Connect, key: &NetworkKey, flags: u32) -> Result<String, Error> {
    Ok(lookup(conn, key)?.xml_desc(flags)?)
}

/// Creates and starts a transient network.
pub fn create(conn: &Connect, host: &str, xml: &str) -> Result<NetworkInfo, Error> {
    let n = conn.create_network_xml(xml)?;
    info(&n, host)
}

/// Starts a defined network.
pub fn start(conn: &Connect, key: &NetworkKey, host: &str) -> Result<NetworkInfo, Error> {
    let n = lookup(conn, key)?;
    n.create()?;
    info(&n, host)
}

/// Stops a network (virNetworkDestroy). A transient network is gone
/// afterwards: it is described as it was before, inactive.
pub fn stop(conn: &Connect, key: &NetworkKey, host: &str) -> Result<NetworkInfo, Error> {
    let n = lookup(conn, key)?;
    let before = info(&n, host)?;
    n.destroy()?;
    match conn.lookup_network_by_uuid_string(&before.uuid) {
        Ok(n) => info(&n, host),
        Err(e) if crate::error::is_not_found(&e) => Ok(NetworkInfo {
            active: false,
            ..before
        }),
        Err(e) => Err(e.into()),
    }
}

/// Removes a network's persistent definition.
pub fn undefine(conn: &Connect, key: &NetworkKey) -> Result<(), Error> {
    Ok(lookup(conn, key)?.undefine()?)
}

/// Sets autostart.
pub fn set_autostart(
    conn: &Connect,
    key: &NetworkKey,
    host: &str,
    on: bool,
) -> Result<NetworkInfo, Error> {
    let n = lookup(conn, key)?;
    n.set_autostart(on)?;
    info(&n, host)
}

/// One `virNetworkUpdate` call, its numbers already libvirt's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkUpdate {
    /// VIR_NETWORK_UPDATE_COMMAND_*.
    pub command: u32,
    /// VIR_NETWORK_SECTION_*.
    pub section: u32,
    /// The parent `<ip>` index; -1 for the first that fits.
    pub parent_index: i32,
    /// The item's XML.
    pub xml: String,
    /// VIR_NETWORK_UPDATE_AFFECT_*.
    pub flags: u32,
}

/// Changes one section of a network.
pub fn update(
    conn: &Connect,
    key: &NetworkKey,
    host: &str,
    u: &NetworkUpdate,
) -> Result<NetworkInfo, Error> {
    let n = lookup(conn, key)?;
    n.update(u.command, u.section, u.parent_index, &u.xml, u.flags)?;
    info(&n, host)
}

/// A network's DHCP leases, of one MAC address or (`None`) all.
pub fn leases(
    conn: &Connect,
    key: &NetworkKey,
    mac: Option<&str>,
) -> Result<Vec<DhcpLease>, Error> {
    let n = lookup(conn, key)?;
    libvirt_sys::network_dhcp_leases(&n, mac)
}

/// What `DefineNetwork` asks for beyond the definition itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkSteps {
    /// Have the network running.
    pub start: bool,
    /// Turn autostart on.
    pub autostart: bool,
}

/// Defines a network (or replaces the definition of an existing one), then
/// sets autostart and starts it as asked. A failure undoes only what this
/// call did: a network that did not exist before is stopped (if this call
/// started it) and undefined; a network that existed keeps running if it
/// ran, and gets its previous definition and autostart setting back (a
/// running transient network becomes transient again).
///
/// `start` on a running network is a no-op: it keeps running with its
/// current configuration, and the new definition applies at its next start.
pub fn define(
    conn: &Connect,
    host: &str,
    xml: &str,
    steps: NetworkSteps,
) -> Result<NetworkInfo, Error> {
    // As for pools: the UUIDs that exist decide what the undo may remove,
    // whatever the XML says.
    let before = conn
        .list_all_networks(0)?
        .iter()
        .map(Network::uuid_string)
        .collect::<Result<HashSet<_>, _>>()?;
    let prior = prior_network(conn, xml)?;
    let n = conn.define_network_xml(xml)?;
    let uuid = n.uuid_string()?;
    let existed = before.contains(&uuid);
    let prior = prior.and_then(|(u, prior)| (u == uuid).then_some(prior));
    let mut autostart_set = false;
    let mut started = false;
    let steps_result = (|| {
        if steps.autostart && !n.autostart()? {
            n.set_autostart(true)?;
            autostart_set = true;
        }
        if steps.start && !n.is_active()? {
            n.create()?;
            started = true;
        }
        info(&n, host)
    })();
    let e = match steps_result {
        Ok(info) => return Ok(info),
        Err(e) => e,
    };
    let warn = |what: &str, r: Result<(), virt::error::Error>| {
        if let Err(e) = r {
            tracing::warn!(error = %e, "undoing a failed network define: cannot {what}");
        }
    };
    if started {
        warn("stop the network", n.destroy());
    }
    if !existed {
        warn("undefine the network", n.undefine());
        return Err(e);
    }
    if autostart_set {
        warn("turn autostart off again", n.set_autostart(false));
    }
    match prior {
        Some(PriorDefinition::Persistent(config)) => warn(
            "restore the previous definition",
            conn.define_network_xml(&config).map(|_| ()),
        ),
        // It was transient: undefining a running network keeps it running.
        Some(PriorDefinition::Transient) => warn("make the network transient again", n.undefine()),
        None => tracing::warn!(
            "undoing a failed network define: the previous definition of an existing network is unknown"
        ),
    }
    Err(e)
}

/// The UUID and definition of the existing network the XML names (by name
/// or UUID), if there is one and its definition can be read.
fn prior_network(conn: &Connect, xml: &str) -> Result<Option<(String, PriorDefinition)>, Error> {
    // A failed lookup finds nothing; the UUID listing still guards the undo.
    let found = xml_query::text(xml, &["network", "name"])
        .and_then(|n| conn.lookup_network_by_name(&n).ok())
        .or_else(|| {
            xml_query::text(xml, &["network", "uuid"])
                .and_then(|u| conn.lookup_network_by_uuid_string(u.trim()).ok())
        });
    let Some(n) = found else {
        return Ok(None);
    };
    let prior = if n.is_persistent()? {
        match super::config_xml(|f| n.xml_desc(f), sys::VIR_NETWORK_XML_INACTIVE) {
            Some(config) => PriorDefinition::Persistent(config),
            None => return Ok(None),
        }
    } else {
        PriorDefinition::Transient
    };
    Ok(Some((n.uuid_string()?, prior)))
}
