//! Network operations.

use std::collections::HashSet;

use libvirt_grpc::v1;
use virt::{connect::Connect, network::Network, sys};

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

/// The proto view of a network.
pub fn info(n: &Network, host: &str) -> Result<v1::Network, Error> {
    let xml = n.xml_desc(0)?;
    let bridge = n
        .bridge_name()
        .ok()
        .or_else(|| xml_query::attr(&xml, &["network", "bridge"], "name"))
        .unwrap_or_default();
    Ok(v1::Network {
        host: host.to_owned(),
        name: n.name()?,
        uuid: n.uuid_string()?,
        bridge,
        active: n.is_active()?,
        persistent: n.is_persistent()?,
        autostart: n.autostart()?,
        forward_mode: xml_query::attr(&xml, &["network", "forward"], "mode").unwrap_or_default(),
    })
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
) -> Result<v1::Network, Error> {
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

/// The network's DHCP leases.
pub fn leases(n: &Network, mac: Option<&str>) -> Result<Vec<v1::DhcpLease>, Error> {
    Ok(libvirt_sys::network_dhcp_leases(n, mac)?
        .into_iter()
        .map(|l| v1::DhcpLease {
            interface: l.iface,
            expiry_time: l.expiry_time,
            ipv6: l.ipv6,
            mac: l.mac,
            ip_address: l.ip_address,
            prefix: l.prefix,
            hostname: l.hostname,
            client_id: l.client_id,
            iaid: l.iaid,
        })
        .collect())
}
