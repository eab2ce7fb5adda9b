//! Network operations.

use libvirt_grpc::v1;
use virt::{connect::Connect, network::Network};

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
