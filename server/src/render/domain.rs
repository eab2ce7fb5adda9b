//! `DomainSpec` -> libvirt domain XML: the spec's checks (every bad field
//! at once) and the writer; sizes in bytes become KiB, rounded up.

use libvirt_grpc::v1::{
    BootDevice, DiskBus, DiskDevice, DiskFormat, DiskSpec, DomainSpec, GraphicsSpec, GraphicsType,
    LifecycleAction, NicModel, NicSpec,
};

use super::{finish, io_error, quantity, text_element, writer, XmlWriter};
use crate::{error::Error, validate, validate::Violations};

/// Most disks, NICs or graphics devices one spec may list: more than a
/// machine type's PCI slots hold anyway.
pub const MAX_DEVICES: usize = 64;

/// Largest memory size a spec may give, in bytes: what rounds up to
/// `validate::MAX_MEMORY_KIB` KiB.
pub const MAX_MEMORY_BYTES: u64 = validate::MAX_MEMORY_KIB * 1024;

/// Checks a spec's fields; everything the renderer relies on is checked
/// here, and every bad field is reported in one `INVALID_ARGUMENT`.
pub fn validate_spec(spec: &DomainSpec) -> Result<(), Error> {
    let mut v = Violations::default();
    v.check(validate::object_name("spec.name", &spec.name));
    if !spec.uuid.is_empty() {
        v.check(validate::uuid("spec.uuid", &spec.uuid));
    }
    if spec.memory_bytes < 1 << 20 {
        v.add("spec.memory_bytes", "must be at least 1048576 (1 MiB)");
    }
    for (field, b) in [
        ("spec.memory_bytes", spec.memory_bytes),
        ("spec.max_memory_bytes", spec.max_memory_bytes),
    ] {
        if b > MAX_MEMORY_BYTES {
            v.add(
                field,
                format!("{b} is more than the largest size libvirt holds ({MAX_MEMORY_BYTES})"),
            );
        }
    }
    if spec.max_memory_bytes != 0 && spec.max_memory_bytes < spec.memory_bytes {
        v.add("spec.max_memory_bytes", "must not be below memory_bytes");
    }
    if spec.vcpus == 0 {
        v.add("spec.vcpus", "must be at least 1");
    }
    for (field, t) in [
        ("spec.domain_type", &spec.domain_type),
        ("spec.os_type", &spec.os_type),
        ("spec.arch", &spec.arch),
        ("spec.machine", &spec.machine),
        ("spec.title", &spec.title),
        ("spec.description", &spec.description),
    ] {
        v.check(validate::text(field, t));
    }
    if spec.title.contains('\n') {
        v.add("spec.title", "must be a single line");
    }
    if !spec.serial_log_path.is_empty() {
        v.check(validate::absolute_path(
            "spec.serial_log_path",
            &spec.serial_log_path,
        ));
    }
    if let Some(boot) = &spec.boot {
        for (i, d) in boot.devices.iter().enumerate() {
            if boot_device(*d).is_none() {
                v.add(format!("spec.boot.devices[{i}]"), "unknown boot device");
            }
        }
        for (field, p) in [
            ("spec.boot.kernel", &boot.kernel),
            ("spec.boot.initrd", &boot.initrd),
        ] {
            if !p.is_empty() {
                v.check(validate::absolute_path(field, p));
            }
        }
        v.check(validate::text("spec.boot.cmdline", &boot.cmdline));
        if boot.kernel.is_empty() && (!boot.initrd.is_empty() || !boot.cmdline.is_empty()) {
            v.add("spec.boot.kernel", "is required with initrd or cmdline");
        }
    }
    for (field, n) in [
        ("spec.disks", spec.disks.len()),
        ("spec.nics", spec.nics.len()),
        ("spec.graphics", spec.graphics.len()),
    ] {
        if n > MAX_DEVICES {
            v.add(
                field,
                format!("lists {n} devices; the limit is {MAX_DEVICES}"),
            );
        }
    }
    for (i, d) in spec.disks.iter().enumerate() {
        validate_disk(&mut v, i, d);
    }
    for (i, n) in spec.nics.iter().enumerate() {
        validate_nic(&mut v, i, n);
    }
    for (i, g) in spec.graphics.iter().enumerate() {
        if graphics_type(g.r#type).is_none() {
            v.add(
                format!("spec.graphics[{i}].type"),
                "must be GRAPHICS_TYPE_VNC or GRAPHICS_TYPE_SPICE",
            );
        }
        if !g.listen.is_empty() && g.listen.parse::<std::net::IpAddr>().is_err() {
            v.add(
                format!("spec.graphics[{i}].listen"),
                "must be an IP address (e.g. 127.0.0.1 or ::1)",
            );
        }
        if g.port > 65535 {
            v.add(format!("spec.graphics[{i}].port"), "must be at most 65535");
        }
    }
    if let Some(a) = &spec.on_lifecycle {
        for (field, raw, crash) in [
            ("spec.on_lifecycle.on_poweroff", a.on_poweroff, false),
            ("spec.on_lifecycle.on_reboot", a.on_reboot, false),
            ("spec.on_lifecycle.on_crash", a.on_crash, true),
        ] {
            match lifecycle_action(raw) {
                Some(Some("coredump-destroy" | "coredump-restart")) if !crash => {
                    v.add(field, "coredump actions are for on_crash only")
                }
                Some(_) => {}
                None => v.add(field, format!("unknown action {raw}")),
            }
        }
    }
    v.finish()
}

/// libvirt's name for a lifecycle action: `Some(None)` for UNSPECIFIED
/// (left out), `None` for an unknown value.
fn lifecycle_action(raw: i32) -> Option<Option<&'static str>> {
    use LifecycleAction as A;
    Some(Some(match A::try_from(raw).ok()? {
        A::Unspecified => return Some(None),
        A::Destroy => "destroy",
        A::Restart => "restart",
        A::Preserve => "preserve",
        A::RenameRestart => "rename-restart",
        A::CoredumpDestroy => "coredump-destroy",
        A::CoredumpRestart => "coredump-restart",
    }))
}

/// libvirt's name for a boot device; `None` for UNSPECIFIED or unknown.
fn boot_device(raw: i32) -> Option<&'static str> {
    use BootDevice as B;
    match B::try_from(raw).ok()? {
        B::Unspecified => None,
        B::Hd => Some("hd"),
        B::Cdrom => Some("cdrom"),
        B::Network => Some("network"),
        B::Fd => Some("fd"),
    }
}

/// libvirt's name for a graphics type; `None` for UNSPECIFIED or unknown.
fn graphics_type(raw: i32) -> Option<&'static str> {
    match GraphicsType::try_from(raw).ok()? {
        GraphicsType::Unspecified => None,
        GraphicsType::Vnc => Some("vnc"),
        GraphicsType::Spice => Some("spice"),
    }
}

/// libvirt's bus name; UNSPECIFIED is virtio.
fn disk_bus(raw: i32) -> Option<&'static str> {
    use DiskBus as B;
    Some(match B::try_from(raw).ok()? {
        B::Unspecified | B::Virtio => "virtio",
        B::Sata => "sata",
        B::Scsi => "scsi",
        B::Ide => "ide",
        B::Usb => "usb",
    })
}

/// libvirt's disk device name; UNSPECIFIED is a disk.
fn disk_device(raw: i32) -> Option<&'static str> {
    use DiskDevice as D;
    Some(match D::try_from(raw).ok()? {
        D::Unspecified | D::Disk => "disk",
        D::Cdrom => "cdrom",
    })
}

/// The driver's image type name; UNSPECIFIED is raw.
fn disk_format(raw: i32) -> Option<&'static str> {
    use DiskFormat as F;
    Some(match F::try_from(raw).ok()? {
        F::Unspecified | F::Raw => "raw",
        F::Qcow2 => "qcow2",
        F::Vmdk => "vmdk",
        F::Vdi => "vdi",
        F::Vhdx => "vhdx",
        F::Vpc => "vpc",
    })
}

/// libvirt's NIC model name; UNSPECIFIED is virtio.
fn nic_model(raw: i32) -> Option<&'static str> {
    use NicModel as M;
    Some(match M::try_from(raw).ok()? {
        M::Unspecified | M::Virtio => "virtio",
        M::E1000 => "e1000",
        M::E1000e => "e1000e",
        M::Rtl8139 => "rtl8139",
        M::Vmxnet3 => "vmxnet3",
    })
}

fn validate_disk(v: &mut Violations, i: usize, d: &DiskSpec) {
    let f = |name: &str| format!("spec.disks[{i}].{name}");
    let has_path = !d.source_path.is_empty();
    let has_vol = !d.source_pool.is_empty() || !d.source_volume.is_empty();
    if has_path == has_vol {
        v.add(
            f("source_path"),
            "set either source_path or source_pool + source_volume",
        );
    } else if has_path {
        v.check(validate::absolute_path(&f("source_path"), &d.source_path));
    } else {
        v.check(validate::object_name(&f("source_pool"), &d.source_pool));
        v.check(validate::required_text(
            &f("source_volume"),
            &d.source_volume,
        ));
        if d.source_volume.contains('/') {
            v.add(f("source_volume"), "must not contain '/'");
        }
    }
    if d.target_dev.is_empty()
        || d.target_dev.len() > 32
        || !d
            .target_dev
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        v.add(f("target_dev"), "must be a device name like 'vda'");
    }
    if disk_bus(d.bus).is_none() {
        v.add(f("bus"), format!("unknown bus {}", d.bus));
    }
    if disk_device(d.device).is_none() {
        v.add(f("device"), format!("unknown device {}", d.device));
    }
    if disk_format(d.format).is_none() {
        v.add(f("format"), format!("unknown format {}", d.format));
    }
}

fn validate_nic(v: &mut Violations, i: usize, n: &NicSpec) {
    let f = |name: &str| format!("spec.nics[{i}].{name}");
    if n.network.is_empty() == n.bridge.is_empty() {
        v.add(f("network"), "set exactly one of network or bridge");
    }
    if !n.network.is_empty() {
        v.check(validate::object_name(&f("network"), &n.network));
    }
    if !n.bridge.is_empty() {
        v.check(validate::object_name(&f("bridge"), &n.bridge));
    }
    if !n.mac.is_empty() {
        let parts: Vec<&str> = n.mac.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            v.add(f("mac"), format!("'{}' is not a MAC address", n.mac));
        }
    }
    if nic_model(n.model).is_none() {
        v.add(f("model"), format!("unknown model {}", n.model));
    }
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
    let max = if spec.max_memory_bytes == 0 {
        spec.memory_bytes
    } else {
        spec.max_memory_bytes
    };
    quantity(w, "memory", "KiB", max.div_ceil(1024))?;
    quantity(w, "currentMemory", "KiB", spec.memory_bytes.div_ceil(1024))?;
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
            for d in boot.devices.iter().filter_map(|d| boot_device(*d)) {
                w.create_element("boot")
                    .with_attribute(("dev", d))
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
        for (name, raw) in [
            ("on_poweroff", a.on_poweroff),
            ("on_reboot", a.on_reboot),
            ("on_crash", a.on_crash),
        ] {
            if let Some(Some(action)) = lifecycle_action(raw) {
                text_element(w, name, action)?;
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
    let device = disk_device(d.device).unwrap_or("disk");
    w.create_element("disk")
        .with_attribute(("type", kind))
        .with_attribute(("device", device))
        .write_inner_content(|w| {
            let format = disk_format(d.format).unwrap_or("raw");
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
            let bus = disk_bus(d.bus).unwrap_or("virtio");
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
            let model = nic_model(n.model).unwrap_or("virtio");
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
        .with_attribute(("type", graphics_type(g.r#type).unwrap_or("vnc")))
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
            memory_bytes: 64 << 20,
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
        s.memory_bytes = 0;
        assert!(render(&s, "qemu").is_err());
        let mut s = spec();
        s.memory_bytes = (64 << 20) + 1;
        let xml = render(&s, "qemu").unwrap();
        assert!(
            xml.contains("<currentMemory unit=\"KiB\">65537</currentMemory>"),
            "{xml}"
        );
        let mut s = spec();
        s.disks.push(DiskSpec {
            source_path: "/x.img".into(),
            target_dev: "vda\"/><evil".into(),
            ..Default::default()
        });
        assert!(render(&s, "qemu").is_err());
    }

    #[test]
    fn every_bad_field_at_once() {
        let mut s = spec();
        s.name = String::new();
        s.vcpus = 0;
        s.nics.push(NicSpec {
            model: 99,
            ..Default::default()
        });
        s.on_lifecycle = Some(libvirt_grpc::v1::LifecycleActions {
            on_poweroff: LifecycleAction::CoredumpDestroy as i32,
            ..Default::default()
        });
        let Err(Error::InvalidArgument(v)) = validate_spec(&s) else {
            panic!("not INVALID_ARGUMENT")
        };
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.name",
                "spec.vcpus",
                "spec.nics[0].network",
                "spec.nics[0].model",
                "spec.on_lifecycle.on_poweroff"
            ]
        );
    }
}
