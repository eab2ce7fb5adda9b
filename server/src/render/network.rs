//! Network specs rendered to libvirt XML.

use std::net::Ipv4Addr;

use libvirt_grpc::v1::{DhcpHost, NetworkForwardMode, NetworkSpec};

use super::{finish, io_error, text_element, writer, XmlWriter};
use crate::{
    error::Error,
    validate::{self, Violations},
};

/// Longest Linux interface name.
const MAX_BRIDGE_LEN: usize = 15;

fn ipv4(field: &str, v: &str) -> Result<Ipv4Addr, Error> {
    v.parse()
        .map_err(|_| Error::invalid(field, format!("'{v}' is not an IPv4 address")))
}

fn mac(field: &str, v: &str) -> Result<(), Error> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::invalid(field, format!("'{v}' is not a MAC address")));
    }
    Ok(())
}

/// Checks a DHCP reservation, recording every bad field.
fn check_dhcp_host(v: &mut Violations, field: &str, h: &DhcpHost) {
    if h.mac.is_empty() && h.name.is_empty() {
        v.add(field, "set mac or name");
    }
    if !h.mac.is_empty() {
        v.check(mac(&format!("{field}.mac"), &h.mac));
    }
    if !h.name.is_empty() {
        v.check(validate::object_name(&format!("{field}.name"), &h.name));
    }
    v.check(ipv4(&format!("{field}.ip"), &h.ip));
}

/// Checks a DHCP reservation: every bad field in one error.
pub fn validate_dhcp_host(field: &str, h: &DhcpHost) -> Result<(), Error> {
    let mut v = Violations::default();
    check_dhcp_host(&mut v, field, h);
    v.finish()
}

/// The `<forward mode>` a spec's mode renders to (`None`: no `<forward>`),
/// or the violation of a mode a spec cannot render.
fn spec_forward_mode(mode: i32) -> Result<Option<&'static str>, Error> {
    use NetworkForwardMode as M;
    match M::try_from(mode) {
        Ok(M::Unspecified | M::None) => Ok(None),
        Ok(M::Nat) => Ok(Some("nat")),
        Ok(M::Route) => Ok(Some("route")),
        Ok(M::Open) => Ok(Some("open")),
        Ok(_) => Err(Error::invalid(
            "spec.forward_mode",
            "a spec renders NONE, NAT, ROUTE or OPEN; use xml for the other modes",
        )),
        Err(_) => Err(Error::invalid(
            "spec.forward_mode",
            format!("{mode} is not a NetworkForwardMode"),
        )),
    }
}

/// Checks a network spec: every bad field in one error.
pub fn validate_spec(s: &NetworkSpec) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check(validate::object_name("spec.name", &s.name));
    if !s.bridge.is_empty() {
        v.check(validate::object_name("spec.bridge", &s.bridge));
        if s.bridge.len() > MAX_BRIDGE_LEN {
            v.add(
                "spec.bridge",
                format!("is longer than {MAX_BRIDGE_LEN} characters"),
            );
        }
    }
    v.check(spec_forward_mode(s.forward_mode));
    if s.ip_address.is_empty() {
        if s.dhcp_range.is_some() || !s.dhcp_hosts.is_empty() {
            v.add("spec.ip_address", "DHCP needs an address");
        }
        return v.finish();
    }
    v.check(ipv4("spec.ip_address", &s.ip_address));
    if s.prefix == 0 || s.prefix > 32 {
        v.add("spec.prefix", "must be 1 to 32");
    }
    if let Some(r) = &s.dhcp_range {
        let a = v.check(ipv4("spec.dhcp_range.start", &r.start));
        let b = v.check(ipv4("spec.dhcp_range.end", &r.end));
        if matches!((a, b), (Some(a), Some(b)) if a > b) {
            v.add("spec.dhcp_range", "start is after end");
        }
    }
    for (i, h) in s.dhcp_hosts.iter().enumerate() {
        check_dhcp_host(&mut v, &format!("spec.dhcp_hosts[{i}]"), h);
    }
    v.finish()
}

/// Renders a network spec.
pub fn render(s: &NetworkSpec) -> Result<String, Error> {
    validate_spec(s)?;
    let mut w = writer();
    w.create_element("network")
        .write_inner_content(|w| write_network(w, s))
        .map_err(io_error)?;
    finish(w)
}

/// Renders one `<host>` of a DHCP section.
pub fn render_dhcp_host(h: &DhcpHost) -> Result<String, Error> {
    validate_dhcp_host("dhcp_host", h)?;
    let mut w = writer();
    write_host(&mut w, h).map_err(io_error)?;
    finish(w)
}

fn write_host(w: &mut XmlWriter, h: &DhcpHost) -> std::io::Result<()> {
    let mut e = w.create_element("host");
    if !h.mac.is_empty() {
        e = e.with_attribute(("mac", h.mac.as_str()));
    }
    if !h.name.is_empty() {
        e = e.with_attribute(("name", h.name.as_str()));
    }
    e.with_attribute(("ip", h.ip.as_str())).write_empty()?;
    Ok(())
}

fn write_network(w: &mut XmlWriter, s: &NetworkSpec) -> std::io::Result<()> {
    text_element(w, "name", &s.name)?;
    if let Ok(Some(m)) = spec_forward_mode(s.forward_mode) {
        w.create_element("forward")
            .with_attribute(("mode", m))
            .write_empty()?;
    }
    if !s.bridge.is_empty() {
        w.create_element("bridge")
            .with_attribute(("name", s.bridge.as_str()))
            .write_empty()?;
    }
    if !s.ip_address.is_empty() {
        let prefix = s.prefix.to_string();
        w.create_element("ip")
            .with_attribute(("address", s.ip_address.as_str()))
            .with_attribute(("prefix", prefix.as_str()))
            .write_inner_content(|w| {
                if s.dhcp_range.is_none() && s.dhcp_hosts.is_empty() {
                    return Ok(());
                }
                w.create_element("dhcp").write_inner_content(|w| {
                    if let Some(r) = &s.dhcp_range {
                        w.create_element("range")
                            .with_attribute(("start", r.start.as_str()))
                            .with_attribute(("end", r.end.as_str()))
                            .write_empty()?;
                    }
                    for h in &s.dhcp_hosts {
                        write_host(w, h)?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use libvirt_grpc::v1::DhcpRange;

    #[test]
    fn renders_nat_with_dhcp() {
        let s = NetworkSpec {
            name: "n1".into(),
            bridge: "br-n1".into(),
            forward_mode: NetworkForwardMode::Nat as i32,
            ip_address: "192.168.150.1".into(),
            prefix: 24,
            dhcp_range: Some(DhcpRange {
                start: "192.168.150.10".into(),
                end: "192.168.150.20".into(),
            }),
            dhcp_hosts: vec![DhcpHost {
                mac: "52:54:00:00:00:01".into(),
                name: "h1".into(),
                ip: "192.168.150.5".into(),
            }],
        };
        let x = render(&s).unwrap();
        assert!(x.contains("<forward mode=\"nat\"/>"), "{x}");
        assert!(x.contains("<range start=\"192.168.150.10\" end=\"192.168.150.20\"/>"));
        assert!(x.contains("mac=\"52:54:00:00:00:01\""));
        let mut bad = s.clone();
        bad.prefix = 33;
        assert!(render(&bad).is_err());
        let mut bad = s.clone();
        bad.dhcp_hosts[0].mac = "zz".into();
        assert!(render(&bad).is_err());
        let mut bad = s.clone();
        bad.ip_address.clear();
        assert!(render(&bad).is_err());
        let mut bad = s;
        bad.forward_mode = NetworkForwardMode::Hostdev as i32;
        assert!(render(&bad).is_err());
        bad.forward_mode = NetworkForwardMode::None as i32;
        assert!(!render(&bad).unwrap().contains("<forward"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let s = NetworkSpec {
            name: "a b".into(),
            forward_mode: 99,
            ip_address: "x".into(),
            prefix: 0,
            dhcp_hosts: vec![DhcpHost::default()],
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) = validate_spec(&s) else {
            panic!("not INVALID_ARGUMENT");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.name",
                "spec.forward_mode",
                "spec.ip_address",
                "spec.prefix",
                "spec.dhcp_hosts[0]",
                "spec.dhcp_hosts[0].ip"
            ]
        );
    }
}
