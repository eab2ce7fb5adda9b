//! `DomainSpec` -> libvirt domain XML.

use libvirt_grpc::v1::{DiskSpec, DomainSpec, GraphicsSpec, NicSpec};

use super::{finish, io_error, quantity, text_element, writer, XmlWriter};
use crate::{error::Error, validate};

/// Most disks, NICs or graphics devices one spec may list: more than a
/// machine type's PCI slots hold anyway.
pub const MAX_DEVICES: usize = 64;

/// Checks a spec's fields; everything the renderer relies on is checked here.
pub fn validate_spec(spec: &DomainSpec) -> Result<(), Error> {
    validate::object_name("spec.name", &spec.name)?;
    if !spec.uuid.is_empty() {
        validate::uuid("spec.uuid", &spec.uuid)?;
    }
    if spec.memory_kib < 1024 {
        return Err(Error::invalid(
            "spec.memory_kib",
            "must be at least 1024 KiB",
        ));
    }
    validate::memory_kib("spec.memory_kib", spec.memory_kib)?;
    validate::memory_kib("spec.max_memory_kib", spec.max_memory_kib)?;
    if spec.max_memory_kib != 0 && spec.max_memory_kib < spec.memory_kib {
        return Err(Error::invalid(
            "spec.max_memory_kib",
            "must not be below memory_kib",
        ));
    }
    if spec.vcpus == 0 {
        return Err(Error::invalid("spec.vcpus", "must be at least 1"));
    }
    for (field, v) in [
        ("spec.domain_type", &spec.domain_type),
        ("spec.os_type", &spec.os_type),
        ("spec.arch", &spec.arch),
        ("spec.machine", &spec.machine),
        ("spec.title", &spec.title),
        ("spec.description", &spec.description),
    ] {
        validate::text(field, v)?;
    }
    if spec.title.contains('\n') {
        return Err(Error::invalid("spec.title", "must be a single line"));
    }
    if !spec.serial_log_path.is_empty() {
        validate::absolute_path("spec.serial_log_path", &spec.serial_log_path)?;
    }
    if let Some(boot) = &spec.boot {
        for d in &boot.devices {
            if !matches!(d.as_str(), "hd" | "cdrom" | "network" | "fd") {
                return Err(Error::invalid(
                    "spec.boot.devices",
                    format!("unknown boot device '{d}'"),
                ));
            }
        }
        for (field, v) in [
            ("spec.boot.kernel", &boot.kernel),
            ("spec.boot.initrd", &boot.initrd),
        ] {
            if !v.is_empty() {
                validate::absolute_path(field, v)?;
            }
        }
        validate::text("spec.boot.cmdline", &boot.cmdline)?;
        if boot.kernel.is_empty() && (!boot.initrd.is_empty() || !boot.cmdline.is_empty()) {
            return Err(Error::invalid(
                "spec.boot.kernel",
                "is required with initrd or cmdline",
            ));
        }
    }
    for (field, n) in [
        ("spec.disks", spec.disks.len()),
        ("spec.nics", spec.nics.len()),
        ("spec.graphics", spec.graphics.len()),
    ] {
        if n > MAX_DEVICES {
            return Err(Error::invalid(
                field,
                format!("lists {n} devices; the limit is {MAX_DEVICES}"),
            ));
        }
    }
    for (i, d) in spec.disks.iter().enumerate() {
        validate_disk(i, d)?;
    }
    for (i, n) in spec.nics.iter().enumerate() {
        validate_nic(i, n)?;
    }
    for (i, g) in spec.graphics.iter().enumerate() {
        if !matches!(g.kind.as_str(), "vnc" | "spice") {
            return Err(Error::invalid(
                format!("spec.graphics[{i}].kind"),
                "must be 'vnc' or 'spice'",
            ));
        }
        if !g.listen.is_empty() && g.listen.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(
                format!("spec.graphics[{i}].listen"),
                "must be an IP address (e.g. 127.0.0.1 or ::1)",
            ));
        }
        if g.port > 65535 {
            return Err(Error::invalid(
                format!("spec.graphics[{i}].port"),
                "must be at most 65535",
            ));
        }
    }
    if let Some(a) = &spec.on_lifecycle {
        const ACTIONS: &[&str] = &["destroy", "restart", "preserve", "rename-restart"];
        for (field, v, extra) in [
            ("spec.on_lifecycle.on_poweroff", &a.on_poweroff, false),
            ("spec.on_lifecycle.on_reboot", &a.on_reboot, false),
            ("spec.on_lifecycle.on_crash", &a.on_crash, true),
        ] {
            let ok = v.is_empty()
                || ACTIONS.contains(&v.as_str())
                || (extra && matches!(v.as_str(), "coredump-destroy" | "coredump-restart"));
            if !ok {
                return Err(Error::invalid(field, format!("unknown action '{v}'")));
            }
        }
    }
    Ok(())
}

fn validate_disk(i: usize, d: &DiskSpec) -> Result<(), Error> {
    let f = |name: &str| format!("spec.disks[{i}].{name}");
    let has_path = !d.source_path.is_empty();
    let has_vol = !d.source_pool.is_empty() || !d.source_volume.is_empty();
    if has_path == has_vol {
        return Err(Error::invalid(
            f("source_path"),
            "set either source_path or source_pool + source_volume",
        ));
    }
    if has_path {
        validate::absolute_path(&f("source_path"), &d.source_path)?;
    } else {
        validate::object_name(&f("source_pool"), &d.source_pool)?;
        validate::required_text(&f("source_volume"), &d.source_volume)?;
        if d.source_volume.contains('/') {
            return Err(Error::invalid(f("source_volume"), "must not contain '/'"));
        }
    }
    if d.target_dev.is_empty()
        || d.target_dev.len() > 32
        || !d
            .target_dev
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(Error::invalid(
            f("target_dev"),
            "must be a device name like 'vda'",
        ));
    }
    if !matches!(
        d.bus.as_str(),
        "" | "virtio" | "sata" | "scsi" | "ide" | "usb"
    ) {
        return Err(Error::invalid(f("bus"), format!("unknown bus '{}'", d.bus)));
    }
    if !matches!(d.device.as_str(), "" | "disk" | "cdrom") {
        return Err(Error::invalid(
            f("device"),
            format!("unknown device '{}'", d.device),
        ));
    }
    if !d.format.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            f("format"),
            "must be a format name like 'qcow2'",
        ));
    }
    Ok(())
}

fn validate_nic(i: usize, n: &NicSpec) -> Result<(), Error> {
    let f = |name: &str| format!("spec.nics[{i}].{name}");
    if n.network.is_empty() == n.bridge.is_empty() {
        return Err(Error::invalid(
            f("network"),
            "set exactly one of network or bridge",
        ));
    }
    if !n.network.is_empty() {
        validate::object_name(&f("network"), &n.network)?;
    }
    if !n.bridge.is_empty() {
        validate::object_name(&f("bridge"), &n.bridge)?;
    }
    if !n.mac.is_empty() {
        let parts: Vec<&str> = n.mac.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(Error::invalid(
                f("mac"),
                format!("'{}' is not a MAC address", n.mac),
            ));
        }
    }
    if !n
        .model
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(
            f("model"),
            "must be a model name like 'virtio'",
        ));
    }
    Ok(())
}

/// Renders a validated spec. `default_type` is used when the spec leaves
/// `domain_type` empty.
pub fn render(spec: &DomainSpec, default_type: &str) -> Result<String, Error> {
    validate_spec(spec)?;
    let canonical;
    let spec = if spec.uuid.is_empty() {
        spec
    } else {
        // libvirt reads plain or hyphenated hex only; callers may send the
        // `{...}` or `urn:uuid:` forms that validation accepts.
        canonical = DomainSpec {
            uuid: validate::uuid("spec.uuid", &spec.uuid)?,
            ..spec.clone()
        };
        &canonical
    };
    let mut w = writer();
    let dtype = if spec.domain_type.is_empty() {
        default_type
    } else {
        spec.domain_type.as_str()
    };
    w.create_element("domain")
        .with_attribute(("type", dtype))
        .write_inner_content(|w| write_domain(w, spec))
        .map_err(io_error)?;
    finish(w)
}

fn write_domain(w: &mut XmlWriter, spec: &DomainSpec) -> std::io::Result<()> {
    text_element(w, "name", &spec.name)?;
    if !spec.uuid.is_empty() {
        text_element(w, "uuid", &spec.uuid)?;
    }
    if !spec.title.is_empty() {
        text_element(w, "title", &spec.title)?;
    }
    if !spec.description.is_empty() {
        text_element(w, "description", &spec.description)?;
    }
    let max = if spec.max_memory_kib == 0 {
        spec.memory_kib
    } else {
        spec.max_memory_kib
    };
    quantity(w, "memory", "KiB", max)?;
    quantity(w, "currentMemory", "KiB", spec.memory_kib)?;
    text_element(w, "vcpu", &spec.vcpus.to_string())?;
    w.create_element("os").write_inner_content(|w| {
        let mut t = w.create_element("type");
        if !spec.arch.is_empty() {
            t = t.with_attribute(("arch", spec.arch.as_str()));
        }
        if !spec.machine.is_empty() {
            t = t.with_attribute(("machine", spec.machine.as_str()));
        }
        let os_type = if spec.os_type.is_empty() {
            "hvm"
        } else {
            &spec.os_type
        };
        t.write_text_content(quick_xml::events::BytesText::new(os_type))?;
        if let Some(boot) = &spec.boot {
            if !boot.kernel.is_empty() {
                text_element(w, "kernel", &boot.kernel)?;
            }
            if !boot.initrd.is_empty() {
                text_element(w, "initrd", &boot.initrd)?;
            }
            if !boot.cmdline.is_empty() {
                text_element(w, "cmdline", &boot.cmdline)?;
            }
            for d in &boot.devices {
                w.create_element("boot")
                    .with_attribute(("dev", d.as_str()))
                    .write_empty()?;
            }
        }
        Ok(())
    })?;
    let hvm = spec.os_type.is_empty() || spec.os_type == "hvm";
    if hvm && !spec.disable_acpi {
        w.create_element("features").write_inner_content(|w| {
            w.create_element("acpi").write_empty()?;
            Ok(())
        })?;
    }
    if let Some(a) = &spec.on_lifecycle {
        for (name, v) in [
            ("on_poweroff", &a.on_poweroff),
            ("on_reboot", &a.on_reboot),
            ("on_crash", &a.on_crash),
        ] {
            if !v.is_empty() {
                text_element(w, name, v)?;
            }
        }
    }
    w.create_element("devices").write_inner_content(|w| {
        for d in &spec.disks {
            write_disk(w, d)?;
        }
        for n in &spec.nics {
            write_nic(w, n)?;
        }
        for g in &spec.graphics {
            write_graphics(w, g)?;
        }
        if spec.serial_log_path.is_empty() {
            w.create_element("serial")
                .with_attribute(("type", "pty"))
                .write_empty()?;
        } else {
            w.create_element("serial")
                .with_attribute(("type", "file"))
                .write_inner_content(|w| {
                    w.create_element("source")
                        .with_attribute(("path", spec.serial_log_path.as_str()))
                        .write_empty()?;
                    Ok(())
                })?;
        }
        if spec.guest_agent_channel {
            w.create_element("channel")
                .with_attribute(("type", "unix"))
                .write_inner_content(|w| {
                    w.create_element("target")
                        .with_attribute(("type", "virtio"))
                        .with_attribute(("name", "org.qemu.guest_agent.0"))
                        .write_empty()?;
                    Ok(())
                })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_disk(w: &mut XmlWriter, d: &DiskSpec) -> std::io::Result<()> {
    let kind = if d.source_path.is_empty() {
        "volume"
    } else {
        "file"
    };
    let device = if d.device.is_empty() {
        "disk"
    } else {
        &d.device
    };
    w.create_element("disk")
        .with_attribute(("type", kind))
        .with_attribute(("device", device))
        .write_inner_content(|w| {
            let format = if d.format.is_empty() {
                "raw"
            } else {
                &d.format
            };
            w.create_element("driver")
                .with_attribute(("name", "qemu"))
                .with_attribute(("type", format))
                .write_empty()?;
            if d.source_path.is_empty() {
                w.create_element("source")
                    .with_attribute(("pool", d.source_pool.as_str()))
                    .with_attribute(("volume", d.source_volume.as_str()))
                    .write_empty()?;
            } else {
                w.create_element("source")
                    .with_attribute(("file", d.source_path.as_str()))
                    .write_empty()?;
            }
            let bus = if d.bus.is_empty() { "virtio" } else { &d.bus };
            w.create_element("target")
                .with_attribute(("dev", d.target_dev.as_str()))
                .with_attribute(("bus", bus))
                .write_empty()?;
            if d.read_only {
                w.create_element("readonly").write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_nic(w: &mut XmlWriter, n: &NicSpec) -> std::io::Result<()> {
    let (kind, attr, value) = if n.network.is_empty() {
        ("bridge", "bridge", n.bridge.as_str())
    } else {
        ("network", "network", n.network.as_str())
    };
    w.create_element("interface")
        .with_attribute(("type", kind))
        .write_inner_content(|w| {
            w.create_element("source")
                .with_attribute((attr, value))
                .write_empty()?;
            if !n.mac.is_empty() {
                w.create_element("mac")
                    .with_attribute(("address", n.mac.as_str()))
                    .write_empty()?;
            }
            let model = if n.model.is_empty() {
                "virtio"
            } else {
                &n.model
            };
            w.create_element("model")
                .with_attribute(("type", model))
                .write_empty()?;
            Ok(())
        })?;
    Ok(())
}

fn write_graphics(w: &mut XmlWriter, g: &GraphicsSpec) -> std::io::Result<()> {
    let listen = if g.listen.is_empty() {
        "127.0.0.1"
    } else {
        &g.listen
    };
    let port = g.port.to_string();
    let mut e = w
        .create_element("graphics")
        .with_attribute(("type", g.kind.as_str()))
        .with_attribute(("listen", listen));
    if g.autoport {
        e = e.with_attribute(("autoport", "yes"));
    } else {
        e = e.with_attribute(("port", port.as_str()));
    }
    e.write_empty()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "vm1".into(),
            memory_kib: 65536,
            vcpus: 1,
            description: "<b>&\"quoted'</b>".into(),
            ..Default::default()
        }
    }

    #[test]
    fn escapes_text() {
        let xml = render(&spec(), "qemu").unwrap();
        assert!(xml.contains("<domain type=\"qemu\">"), "{xml}");
        assert!(
            xml.contains("&lt;b&gt;&amp;&quot;quoted&apos;&lt;/b&gt;"),
            "{xml}"
        );
        assert!(!xml.contains("<b>"));
    }

    #[test]
    fn rejects_bad_fields() {
        let mut s = spec();
        s.name = "a<b".into();
        assert!(render(&s, "qemu").is_err());
        let mut s = spec();
        s.memory_kib = 0;
        assert!(render(&s, "qemu").is_err());
        let mut s = spec();
        s.disks.push(DiskSpec {
            source_path: "/x.img".into(),
            target_dev: "vda\"/><evil".into(),
            ..Default::default()
        });
        assert!(render(&s, "qemu").is_err());
    }
}
