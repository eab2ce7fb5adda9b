//! Network specs rendered to libvirt XML.

use std::net::Ipv4Addr;

use libvirt_grpc::v1::{DhcpHost, ForwardMode, NetworkSpec};

use super::{finish, io_error, text_element, writer, XmlWriter};
use crate::{error::Error, validate};

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

/// Checks a DHCP reservation.
pub fn validate_dhcp_host(field: &str, h: &DhcpHost) -> Result<(), Error> {
    if h.mac.is_empty() && h.name.is_empty() {
        return Err(Error::invalid(field, "set mac or name"));
    }
    if !h.mac.is_empty() {
        mac(&format!("{field}.mac"), &h.mac)?;
    }
    if !h.name.is_empty() {
        validate::object_name(&format!("{field}.name"), &h.name)?;
    }
    ipv4(&format!("{field}.ip"), &h.ip)?;
    Ok(())
}

/// Checks a network spec.
pub fn validate_spec(s: &NetworkSpec) -> Result<(), Error> {
    validate::object_name("spec.name", &s.name)?;
    if !s.bridge.is_empty() {
        validate::object_name("spec.bridge", &s.bridge)?;
        if s.bridge.len() > MAX_BRIDGE_LEN {
            return Err(Error::invalid(
                "spec.bridge",
                format!("is longer than {MAX_BRIDGE_LEN} characters"),
            ));
        }
    }
    ForwardMode::try_from(s.forward_mode)
        .map_err(|_| Error::invalid("spec.forward_mode", "unknown forward mode"))?;
    if s.ip_address.is_empty() {
        if s.dhcp_range.is_some() || !s.dhcp_hosts.is_empty() {
            return Err(Error::invalid("spec.ip_address", "DHCP needs an address"));
        }
        return Ok(());
    }
    ipv4("spec.ip_address", &s.ip_address)?;
    if s.prefix == 0 || s.prefix > 32 {
        return Err(Error::invalid("spec.prefix", "must be 1 to 32"));
    }
    if let Some(r) = &s.dhcp_range {
        let a = ipv4("spec.dhcp_range.start", &r.start)?;
        let b = ipv4("spec.dhcp_range.end", &r.end)?;
        if a > b {
            return Err(Error::invalid("spec.dhcp_range", "start is after end"));
        }
    }
    for (i, h) in s.dhcp_hosts.iter().enumerate() {
        validate_dhcp_host(&format!("spec.dhcp_hosts[{i}]"), h)?;
    }
    Ok(())
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
    let mode = match ForwardMode::try_from(s.forward_mode) {
        Ok(ForwardMode::Nat) => Some("nat"),
        Ok(ForwardMode::Route) => Some("route"),
        Ok(ForwardMode::Open) => Some("open"),
        _ => None,
    };
    if let Some(m) = mode {
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
            forward_mode: ForwardMode::Nat as i32,
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
        let mut bad = s;
        bad.ip_address.clear();
        assert!(render(&bad).is_err());
    }
}
