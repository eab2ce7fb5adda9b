//! `NetworkService` conversions: requests into `ops::network` inputs
//! (libvirt flag bits, update numbers, the definition's XML) and its answers
//! into messages (forward mode names as `NetworkForwardMode`, lease expiry
//! as a `Timestamp`).

use libvirt_grpc::v1::{
    self, create_network_request, define_network_request, update_network_request,
    NetworkForwardMode,
};
use virt::sys;

use crate::{
    error::Error,
    ops::network::{DhcpLease, NetworkInfo, NetworkSteps, NetworkUpdate},
    render::network as render,
    validate::{self, Violations},
};

/// The API's forward mode for libvirt's `<forward mode>` name (`None`: no
/// `<forward>`, an isolated network).
pub fn forward_mode(name: Option<&str>) -> NetworkForwardMode {
    use NetworkForwardMode as M;
    match name {
        None => M::None,
        Some("nat") => M::Nat,
        Some("route") => M::Route,
        Some("open") => M::Open,
        Some("bridge") => M::Bridge,
        Some("private") => M::Private,
        Some("vepa") => M::Vepa,
        Some("passthrough") => M::Passthrough,
        Some("hostdev") => M::Hostdev,
        Some(_) => M::Unknown,
    }
}

impl From<NetworkInfo> for v1::Network {
    fn from(n: NetworkInfo) -> Self {
        v1::Network {
            forward_mode: forward_mode(n.forward_mode.as_deref()) as i32,
            host: n.host,
            name: n.name,
            uuid: n.uuid,
            bridge: n.bridge,
            active: n.active,
            persistent: n.persistent,
            autostart: n.autostart,
        }
    }
}

impl From<DhcpLease> for v1::DhcpLease {
    fn from(l: DhcpLease) -> Self {
        v1::DhcpLease {
            interface: l.iface,
            // libvirt reports 0 for a lease without expiry.
            expire_time: (l.expiry_time > 0).then(|| super::time::unix_seconds(l.expiry_time)),
            ipv6: l.ipv6,
            mac: l.mac,
            ip_address: l.ip_address,
            prefix: l.prefix,
            hostname: l.hostname,
            client_id: l.client_id,
            iaid: l.iaid,
        }
    }
}

/// The flag of one filter axis: `a` for the first value, `b` for the
/// second, 0 for UNSPECIFIED; any other number is a violation of `field`.
fn filter_flag(v: &mut Violations, field: &str, value: i32, a: u32, b: u32) -> u32 {
    match value {
        0 => 0,
        1 => a,
        2 => b,
        other => {
            v.add(field, format!("{other} is not a known filter value"));
            0
        }
    }
}

/// libvirt's VIR_CONNECT_LIST_NETWORKS_* flags for a listing's filters;
/// every bad filter in one error.
pub fn list_flags(r: &v1::ListNetworksRequest) -> Result<u32, Error> {
    // RunFilter, PersistenceFilter and AutostartFilter all number their
    // two values 1 and 2 (checked by the unit test below).
    let mut v = Violations::default();
    let flags = filter_flag(
        &mut v,
        "run_filter",
        r.run_filter,
        sys::VIR_CONNECT_LIST_NETWORKS_ACTIVE,
        sys::VIR_CONNECT_LIST_NETWORKS_INACTIVE,
    ) | filter_flag(
        &mut v,
        "persistence_filter",
        r.persistence_filter,
        sys::VIR_CONNECT_LIST_NETWORKS_PERSISTENT,
        sys::VIR_CONNECT_LIST_NETWORKS_TRANSIENT,
    ) | filter_flag(
        &mut v,
        "autostart_filter",
        r.autostart_filter,
        sys::VIR_CONNECT_LIST_NETWORKS_AUTOSTART,
        sys::VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART,
    );
    v.finish()?;
    Ok(flags)
}

/// libvirt's VIR_NETWORK_XML_* flags for `GetNetworkXml`.
pub fn xml_flags(inactive: bool) -> u32 {
    if inactive {
        sys::VIR_NETWORK_XML_INACTIVE
    } else {
        0
    }
}

/// The XML of a definition: raw XML checked, or a spec rendered.
fn source_xml(xml: Option<&str>, spec: Option<&v1::NetworkSpec>) -> Result<String, Error> {
    match (xml, spec) {
        (Some(x), _) => {
            validate::required_xml("xml", x)?;
            Ok(x.to_owned())
        }
        (None, Some(s)) => render::render(s),
        (None, None) => Err(Error::invalid("source", "set one of xml or spec")),
    }
}

/// A checked `DefineNetwork`: the XML and the steps after the define.
#[derive(Debug, Clone)]
pub struct Define {
    /// The network's XML.
    pub xml: String,
    /// Autostart and start.
    pub steps: NetworkSteps,
}

impl TryFrom<&v1::DefineNetworkRequest> for Define {
    type Error = Error;

    fn try_from(r: &v1::DefineNetworkRequest) -> Result<Self, Error> {
        use define_network_request::Source;
        let xml = match &r.source {
            Some(Source::Xml(x)) => source_xml(Some(x), None)?,
            Some(Source::Spec(s)) => source_xml(None, Some(s))?,
            None => source_xml(None, None)?,
        };
        Ok(Define {
            xml,
            steps: NetworkSteps {
                start: r.start,
                autostart: r.autostart,
            },
        })
    }
}

/// The XML of a `CreateNetwork`.
pub fn create_xml(r: &v1::CreateNetworkRequest) -> Result<String, Error> {
    use create_network_request::Source;
    match &r.source {
        Some(Source::Xml(x)) => source_xml(Some(x), None),
        Some(Source::Spec(s)) => source_xml(None, Some(s)),
        None => source_xml(None, None),
    }
}

/// libvirt's VIR_NETWORK_UPDATE_AFFECT_* flags for a scope; none set
/// means CURRENT.
fn affect_flags(scope: Option<&v1::ModifyScope>) -> u32 {
    let mut flags = sys::VIR_NETWORK_UPDATE_AFFECT_CURRENT;
    if let Some(s) = scope {
        if s.live {
            flags |= sys::VIR_NETWORK_UPDATE_AFFECT_LIVE;
        }
        if s.config {
            flags |= sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG;
        }
    }
    flags
}

/// libvirt's number for an update section.
fn section_number(s: v1::NetworkSection) -> u32 {
    use v1::NetworkSection as S;
    match s {
        S::Unspecified => sys::VIR_NETWORK_SECTION_NONE,
        S::Bridge => sys::VIR_NETWORK_SECTION_BRIDGE,
        S::Domain => sys::VIR_NETWORK_SECTION_DOMAIN,
        S::Ip => sys::VIR_NETWORK_SECTION_IP,
        S::IpDhcpHost => sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
        S::IpDhcpRange => sys::VIR_NETWORK_SECTION_IP_DHCP_RANGE,
        S::Forward => sys::VIR_NETWORK_SECTION_FORWARD,
        S::ForwardInterface => sys::VIR_NETWORK_SECTION_FORWARD_INTERFACE,
        S::ForwardPf => sys::VIR_NETWORK_SECTION_FORWARD_PF,
        S::Portgroup => sys::VIR_NETWORK_SECTION_PORTGROUP,
        S::DnsHost => sys::VIR_NETWORK_SECTION_DNS_HOST,
        S::DnsTxt => sys::VIR_NETWORK_SECTION_DNS_TXT,
        S::DnsSrv => sys::VIR_NETWORK_SECTION_DNS_SRV,
    }
}

impl TryFrom<&v1::UpdateNetworkRequest> for NetworkUpdate {
    type Error = Error;

    /// Every bad field of the request (the reference aside) in one error.
    fn try_from(r: &v1::UpdateNetworkRequest) -> Result<Self, Error> {
        use update_network_request::Item;
        use v1::{NetworkSection as S, NetworkUpdateCommand as C};
        let mut v = Violations::default();
        let command = match C::try_from(r.command) {
            Ok(C::Modify) => Some(sys::VIR_NETWORK_UPDATE_COMMAND_MODIFY),
            Ok(C::Delete) => Some(sys::VIR_NETWORK_UPDATE_COMMAND_DELETE),
            Ok(C::AddLast) => Some(sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST),
            Ok(C::AddFirst) => Some(sys::VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST),
            Ok(C::Unspecified) | Err(_) => {
                v.add("command", "choose MODIFY, DELETE, ADD_LAST or ADD_FIRST");
                None
            }
        };
        let (xml, implied) = match &r.item {
            Some(Item::Xml(x)) => (
                v.check(validate::required_xml("xml", x).map(|()| x.clone())),
                None,
            ),
            Some(Item::DhcpHost(h)) => (v.check(render::render_dhcp_host(h)), Some(S::IpDhcpHost)),
            None => {
                v.add("item", "set one of xml or dhcp_host");
                (None, None)
            }
        };
        let section = match (S::try_from(r.section), implied) {
            (Ok(S::Unspecified), Some(s)) => Some(s),
            (Ok(s), Some(i)) if s != i => {
                v.add("section", "dhcp_host items belong to IP_DHCP_HOST");
                None
            }
            (Ok(S::Unspecified), None) => {
                v.add("section", "is required");
                None
            }
            (Err(_), _) => {
                v.add("section", format!("{} is not a NetworkSection", r.section));
                None
            }
            (Ok(s), _) => Some(s),
        };
        if r.parent_index < -1 {
            v.add("parent_index", "must be -1 or an index");
        }
        let flags = affect_flags(r.scope.as_ref());
        let parts = command.zip(section).zip(xml);
        v.done(parts.map(|((command, section), xml)| NetworkUpdate {
            command,
            section: section_number(section),
            parent_index: r.parent_index,
            xml,
            flags,
        }))
    }
}

/// The MAC filter of `GetNetworkDhcpLeases` (`None`: every lease).
pub fn lease_mac(mac: &str) -> Result<Option<String>, Error> {
    validate::text("mac", mac)?;
    Ok((!mac.is_empty()).then(|| mac.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shared_filters_number_their_values_one_and_two() {
        assert_eq!(v1::RunFilter::Active as i32, 1);
        assert_eq!(v1::RunFilter::Inactive as i32, 2);
        assert_eq!(v1::PersistenceFilter::Persistent as i32, 1);
        assert_eq!(v1::PersistenceFilter::Transient as i32, 2);
        assert_eq!(v1::AutostartFilter::Autostart as i32, 1);
        assert_eq!(v1::AutostartFilter::NoAutostart as i32, 2);
    }

    #[test]
    fn list_flags_name_every_bad_filter() {
        let r = v1::ListNetworksRequest {
            run_filter: v1::RunFilter::Inactive as i32,
            persistence_filter: v1::PersistenceFilter::Transient as i32,
            ..Default::default()
        };
        assert_eq!(
            list_flags(&r).unwrap(),
            sys::VIR_CONNECT_LIST_NETWORKS_INACTIVE | sys::VIR_CONNECT_LIST_NETWORKS_TRANSIENT
        );
        assert_eq!(list_flags(&v1::ListNetworksRequest::default()).unwrap(), 0);
        let bad = v1::ListNetworksRequest {
            run_filter: 7,
            autostart_filter: 9,
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) = list_flags(&bad) else {
            panic!("not INVALID_ARGUMENT");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["run_filter", "autostart_filter"]);
    }

    #[test]
    fn forward_modes() {
        assert_eq!(forward_mode(None), NetworkForwardMode::None);
        assert_eq!(forward_mode(Some("nat")), NetworkForwardMode::Nat);
        assert_eq!(forward_mode(Some("hostdev")), NetworkForwardMode::Hostdev);
        assert_eq!(forward_mode(Some("newer")), NetworkForwardMode::Unknown);
    }

    #[test]
    fn an_update_defaults_to_the_current_definition() {
        let r = v1::UpdateNetworkRequest {
            command: v1::NetworkUpdateCommand::AddLast as i32,
            item: Some(update_network_request::Item::DhcpHost(v1::DhcpHost {
                mac: "52:54:00:00:00:01".into(),
                name: String::new(),
                ip: "10.0.0.2".into(),
            })),
            ..Default::default()
        };
        let u = NetworkUpdate::try_from(&r).unwrap();
        assert_eq!(u.flags, sys::VIR_NETWORK_UPDATE_AFFECT_CURRENT);
        assert_eq!(u.section, sys::VIR_NETWORK_SECTION_IP_DHCP_HOST);
        assert_eq!(u.parent_index, 0);
    }
}
