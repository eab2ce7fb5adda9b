//! Snapshot specs rendered to `<domainsnapshot>` XML.

use libvirt_grpc::v1::{SnapshotDiskMode, SnapshotDiskSpec, SnapshotSpec, StorageVolumeFormat};

use super::{finish, io_error, text_element, writer, XmlWriter};
use crate::{
    error::Error,
    validate::{self, Violations},
};

/// Most disks a spec may name.
pub const MAX_DISKS: usize = 64;

/// One disk of a spec, checked: its name, libvirt's `snapshot` value (none
/// for the default) and, for an external one, its overlay file.
struct Disk<'a> {
    name: &'a str,
    mode: Option<&'static str>,
    file: Option<&'a str>,
}

/// Checks disk `i` of a spec; its violations go into `v`.
fn disk<'a>(v: &mut Violations, i: usize, d: &'a SnapshotDiskSpec) -> Option<Disk<'a>> {
    let field = |f: &str| format!("spec.disks[{i}].{f}");
    v.check(validate::object_name(&field("name"), &d.name));
    let mode = match SnapshotDiskMode::try_from(d.mode) {
        Ok(SnapshotDiskMode::Unspecified) => Some(None),
        Ok(SnapshotDiskMode::Internal) => Some(Some("internal")),
        Ok(SnapshotDiskMode::External) => Some(Some("external")),
        Ok(SnapshotDiskMode::Excluded) => Some(Some("no")),
        Err(_) => {
            v.add(
                field("mode"),
                format!("{} is not a SnapshotDiskMode", d.mode),
            );
            None
        }
    };
    let external = d.mode == SnapshotDiskMode::External as i32;
    match (external, d.file.is_empty()) {
        (true, true) => v.add(field("file"), "is required for an EXTERNAL disk"),
        (true, false) => {
            v.check(validate::absolute_path(&field("file"), &d.file));
        }
        (false, false) => v.add(field("file"), "is only for an EXTERNAL disk"),
        (false, true) => {}
    }
    let qcow2 = [StorageVolumeFormat::Unspecified, StorageVolumeFormat::Qcow2];
    match StorageVolumeFormat::try_from(d.format) {
        Ok(f) if qcow2.contains(&f) && (external || f == StorageVolumeFormat::Unspecified) => {}
        Ok(StorageVolumeFormat::Qcow2) => v.add(field("format"), "is only for an EXTERNAL disk"),
        _ => v.add(
            field("format"),
            format!(
                "{} is not offered: external overlays are qcow2 (QCOW2 or UNSPECIFIED)",
                d.format
            ),
        ),
    }
    Some(Disk {
        name: &d.name,
        mode: mode?,
        file: (external && !d.file.is_empty()).then_some(d.file.as_str()),
    })
}

/// Checks a spec's disks: each on its own, at most [`MAX_DISKS`], each name
/// once.
fn disks<'a>(v: &mut Violations, spec: &'a SnapshotSpec) -> Vec<Disk<'a>> {
    if spec.disks.len() > MAX_DISKS {
        v.add(
            "spec.disks",
            format!("has {} entries; the limit is {MAX_DISKS}", spec.disks.len()),
        );
        return Vec::new();
    }
    let mut out: Vec<Disk<'a>> = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        if spec.disks[..i].iter().any(|e| e.name == d.name) {
            v.add(
                format!("spec.disks[{i}].name"),
                format!("names disk '{}' a second time", d.name),
            );
        }
        if let Some(d) = disk(v, i, d) {
            out.push(d);
        }
    }
    out
}

fn write_disk(w: &mut XmlWriter, d: &Disk<'_>) -> std::io::Result<()> {
    let mut e = w.create_element("disk").with_attribute(("name", d.name));
    if let Some(mode) = d.mode {
        e = e.with_attribute(("snapshot", mode));
    }
    match d.file {
        Some(file) => {
            e.write_inner_content(|w| {
                w.create_element("driver")
                    .with_attribute(("type", "qcow2"))
                    .write_empty()?;
                w.create_element("source")
                    .with_attribute(("file", file))
                    .write_empty()?;
                Ok(())
            })?;
        }
        None => {
            e.write_empty()?;
        }
    }
    Ok(())
}

/// Renders a snapshot spec; every bad field in one `INVALID_ARGUMENT`.
pub fn render(spec: &SnapshotSpec) -> Result<String, Error> {
    let mut v = Violations::default();
    if !spec.name.is_empty() {
        v.check(validate::object_name("spec.name", &spec.name));
    }
    v.check(validate::text("spec.description", &spec.description));
    let disks = disks(&mut v, spec);
    v.finish()?;
    let mut w = writer();
    w.create_element("domainsnapshot")
        .write_inner_content(|w| {
            if !spec.name.is_empty() {
                text_element(w, "name", &spec.name)?;
            }
            if !spec.description.is_empty() {
                text_element(w, "description", &spec.description)?;
            }
            if !disks.is_empty() {
                w.create_element("disks")
                    .write_inner_content(|w| disks.iter().try_for_each(|d| write_disk(w, d)))?;
            }
            Ok(())
        })
        .map_err(io_error)?;
    finish(w)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    fn disk(name: &str, mode: SnapshotDiskMode, file: &str) -> SnapshotDiskSpec {
        SnapshotDiskSpec {
            name: name.into(),
            mode: mode as i32,
            file: file.into(),
            ..Default::default()
        }
    }

    #[test]
    fn escapes_description() {
        let x = render(&SnapshotSpec {
            name: "s1".into(),
            description: "<b>&</b>".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(x.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{x}");
        assert!(!x.contains("<disks"), "{x}");
        assert!(render(&SnapshotSpec {
            name: "a/b".into(),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn renders_each_disk_mode() {
        let x = render(&SnapshotSpec {
            name: "s".into(),
            disks: vec![
                disk("vda", SnapshotDiskMode::External, "/r/o'v&.qcow2"),
                disk("vdb", SnapshotDiskMode::Excluded, ""),
                disk("vdc", SnapshotDiskMode::Internal, ""),
                disk("vdd", SnapshotDiskMode::Unspecified, ""),
            ],
            ..Default::default()
        })
        .unwrap();
        let at = |p: &[&str], a: &str| crate::xml_query::attrs(&x, p, a);
        let disk = ["domainsnapshot", "disks", "disk"];
        assert_eq!(at(&disk, "name"), ["vda", "vdb", "vdc", "vdd"]);
        assert_eq!(at(&disk, "snapshot"), ["external", "no", "internal"]);
        assert_eq!(
            at(&["domainsnapshot", "disks", "disk", "source"], "file"),
            ["/r/o'v&.qcow2"]
        );
        assert_eq!(
            at(&["domainsnapshot", "disks", "disk", "driver"], "type"),
            ["qcow2"]
        );
    }

    #[test]
    fn every_bad_disk_field_is_named() {
        let e = render(&SnapshotSpec {
            name: "bad name".into(),
            disks: vec![
                disk("vda", SnapshotDiskMode::External, ""),
                disk("vdb", SnapshotDiskMode::Internal, "/r/x"),
                disk("vda", SnapshotDiskMode::External, "relative"),
                SnapshotDiskSpec {
                    name: "vdc".into(),
                    mode: 9,
                    format: StorageVolumeFormat::Raw as i32,
                    ..Default::default()
                },
                SnapshotDiskSpec {
                    name: "vdd".into(),
                    format: StorageVolumeFormat::Qcow2 as i32,
                    ..Default::default()
                },
                disk("", SnapshotDiskMode::External, "/r/../etc/x"),
            ],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(e),
            [
                "spec.name",
                "spec.disks[0].file",
                "spec.disks[1].file",
                "spec.disks[2].name",
                "spec.disks[2].file",
                "spec.disks[3].mode",
                "spec.disks[3].format",
                "spec.disks[4].format",
                "spec.disks[5].name",
                "spec.disks[5].file",
            ]
        );
        let many = SnapshotSpec {
            disks: (0..=MAX_DISKS)
                .map(|i| disk(&format!("d{i}"), SnapshotDiskMode::Excluded, ""))
                .collect(),
            ..Default::default()
        };
        assert_eq!(fields(render(&many).unwrap_err()), ["spec.disks"]);
    }
}
