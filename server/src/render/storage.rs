//! Storage pool and volume specs rendered to libvirt XML.

use libvirt_grpc::v1::{StoragePoolSpec, StoragePoolType, StorageVolumeSpec};

use super::{finish, io_error, quantity, text_element, writer, XmlWriter};
use crate::{
    convert::storage::{volume_format_in_request, writable_volume_format},
    error::Error,
    validate,
};

/// A volume name: non-empty, no `/`, no NUL, not `.` or `..` (libvirt joins
/// it to the pool's directory, so these are what could escape it).
pub fn volume_name(field: &str, name: &str) -> Result<(), Error> {
    validate::required_text(field, name)?;
    if name.contains('/') {
        return Err(Error::invalid(field, "must not contain '/'"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(field, "must not be '.' or '..'"));
    }
    // Volume names are file names in most pools: NAME_MAX.
    validate::max_bytes(field, name, MAX_VOLUME_NAME_BYTES)
}

/// Longest volume name, in bytes (a file name's limit, NAME_MAX).
pub const MAX_VOLUME_NAME_BYTES: usize = 255;

/// A byte offset and length of a volume transfer: within what a file
/// offset (a signed 64-bit `off_t`) can address.
pub fn transfer_range(offset: u64, length: u64) -> Result<(), Error> {
    let end = offset.checked_add(length).filter(|e| *e <= i64::MAX as u64);
    if end.is_none() {
        return Err(Error::invalid(
            "offset",
            format!(
                "offset {offset} plus length {length} is past the largest file offset (2^63 - 1)"
            ),
        ));
    }
    Ok(())
}

/// A size field that must be positive.
pub fn positive_size(field: &str, v: u64) -> Result<u64, Error> {
    if v == 0 {
        return Err(Error::invalid(field, "must be positive"));
    }
    // A volume is a file or device whose size is an off_t: libvirt would
    // answer INTERNAL ("Failed to truncate ... Invalid argument").
    if v > i64::MAX as u64 {
        return Err(Error::invalid(field, "is more than 2^63 - 1 bytes"));
    }
    Ok(v)
}

/// Checks a pool spec: every bad field in one `INVALID_ARGUMENT`.
pub fn validate_pool(spec: &StoragePoolSpec) -> Result<StoragePoolType, Error> {
    let mut v = validate::Violations::default();
    v.check(validate::object_name("spec.name", &spec.name));
    let ty = match StoragePoolType::try_from(spec.r#type) {
        Ok(StoragePoolType::Unspecified) => {
            v.add("spec.type", "is required");
            None
        }
        Ok(
            t @ (StoragePoolType::Dir
            | StoragePoolType::Fs
            | StoragePoolType::Netfs
            | StoragePoolType::Logical),
        ) => Some(t),
        Ok(t) => {
            v.add(
                "spec.type",
                format!(
                    "a spec renders DIR, FS, NETFS or LOGICAL pools; define a {} pool from raw XML",
                    t.as_str_name()
                ),
            );
            None
        }
        Err(_) => {
            v.add("spec.type", format!("unknown pool type {}", spec.r#type));
            None
        }
    };
    for (f, val) in [
        ("spec.source_host", &spec.source_host),
        ("spec.source_name", &spec.source_name),
        ("spec.source_format", &spec.source_format),
    ] {
        v.check(validate::text(f, val));
    }
    let need_target = !matches!(ty, Some(StoragePoolType::Logical));
    if need_target || !spec.target_path.is_empty() {
        v.check(validate::absolute_path(
            "spec.target_path",
            &spec.target_path,
        ));
    }
    match ty {
        Some(StoragePoolType::Fs) => {
            v.check(validate::absolute_path(
                "spec.source_device",
                &spec.source_device,
            ));
        }
        Some(StoragePoolType::Netfs) => {
            v.check(validate::required_text(
                "spec.source_host",
                &spec.source_host,
            ));
            v.check(validate::absolute_path("spec.source_dir", &spec.source_dir));
        }
        Some(StoragePoolType::Logical) => {
            if !spec.source_device.is_empty() {
                v.check(validate::absolute_path(
                    "spec.source_device",
                    &spec.source_device,
                ));
            }
            if !spec.source_name.is_empty() {
                v.check(validate::object_name("spec.source_name", &spec.source_name));
            }
        }
        _ => {}
    }
    v.done(ty)
}

/// Renders a pool spec.
pub fn render_pool(spec: &StoragePoolSpec) -> Result<String, Error> {
    let ty = validate_pool(spec)?;
    let type_name = match ty {
        StoragePoolType::Fs => "fs",
        StoragePoolType::Netfs => "netfs",
        StoragePoolType::Logical => "logical",
        _ => "dir",
    };
    let mut w = writer();
    w.create_element("pool")
        .with_attribute(("type", type_name))
        .write_inner_content(|w| write_pool(w, spec, ty))
        .map_err(io_error)?;
    finish(w)
}

fn write_pool(w: &mut XmlWriter, s: &StoragePoolSpec, ty: StoragePoolType) -> std::io::Result<()> {
    text_element(w, "name", &s.name)?;
    if ty != StoragePoolType::Dir {
        w.create_element("source").write_inner_content(|w| {
            match ty {
                StoragePoolType::Fs => {
                    w.create_element("device")
                        .with_attribute(("path", s.source_device.as_str()))
                        .write_empty()?;
                }
                StoragePoolType::Netfs => {
                    w.create_element("host")
                        .with_attribute(("name", s.source_host.as_str()))
                        .write_empty()?;
                    w.create_element("dir")
                        .with_attribute(("path", s.source_dir.as_str()))
                        .write_empty()?;
                }
                StoragePoolType::Logical => {
                    if !s.source_device.is_empty() {
                        w.create_element("device")
                            .with_attribute(("path", s.source_device.as_str()))
                            .write_empty()?;
                    }
                    let vg = if s.source_name.is_empty() {
                        &s.name
                    } else {
                        &s.source_name
                    };
                    text_element(w, "name", vg)?;
                }
                _ => {}
            }
            if !s.source_format.is_empty() && ty != StoragePoolType::Logical {
                w.create_element("format")
                    .with_attribute(("type", s.source_format.as_str()))
                    .write_empty()?;
            }
            Ok(())
        })?;
    }
    if !s.target_path.is_empty() {
        w.create_element("target")
            .write_inner_content(|w| text_element(w, "path", &s.target_path))?;
    }
    Ok(())
}

/// Renders a volume spec; `at` is the request field holding it (for the
/// names of bad fields, all reported at once).
pub fn render_volume(spec: &StorageVolumeSpec, at: &str) -> Result<String, Error> {
    let mut v = validate::Violations::default();
    v.check(volume_name(&format!("{at}.name"), &spec.name));
    let capacity = v.check(positive_size(
        &format!("{at}.capacity_bytes"),
        spec.capacity_bytes,
    ));
    let allocation = spec.allocation_bytes;
    let format = v
        .check(writable_volume_format(&format!("{at}.format"), spec.format))
        .flatten();
    let backing_format = v
        .check(volume_format_in_request(
            &format!("{at}.backing_store_format"),
            spec.backing_store_format,
        ))
        .flatten();
    if !spec.backing_store_path.is_empty() {
        let field = format!("{at}.backing_store_path");
        v.check(validate::absolute_path(&field, &spec.backing_store_path));
        if format != Some("qcow2") {
            v.add(field, "a backing store needs format QCOW2");
        }
    }
    let capacity = v.done(capacity)?;
    let mut w = writer();
    w.create_element("volume")
        .write_inner_content(|w| {
            text_element(w, "name", &spec.name)?;
            quantity(w, "capacity", "bytes", capacity)?;
            quantity(w, "allocation", "bytes", allocation)?;
            if let Some(f) = format {
                target_format(w, f)?;
            }
            if !spec.backing_store_path.is_empty() {
                w.create_element("backingStore").write_inner_content(|w| {
                    text_element(w, "path", &spec.backing_store_path)?;
                    w.create_element("format")
                        .with_attribute(("type", backing_format.unwrap_or("raw")))
                        .write_empty()?;
                    Ok(())
                })?;
            }
            Ok(())
        })
        .map_err(io_error)?;
    finish(w)
}

/// Writes `<target><format type="f"/></target>`.
fn target_format(w: &mut XmlWriter, f: &str) -> std::io::Result<()> {
    w.create_element("target").write_inner_content(|w| {
        w.create_element("format")
            .with_attribute(("type", f))
            .write_empty()?;
        Ok(())
    })?;
    Ok(())
}

/// The XML of a new volume of only a name, a capacity and a format: a
/// clone's, or a core dump's.
pub fn render_clone(name: &str, capacity: u64, format: Option<&str>) -> Result<String, Error> {
    let mut w = writer();
    w.create_element("volume")
        .write_inner_content(|w| {
            text_element(w, "name", name)?;
            quantity(w, "capacity", "bytes", capacity)?;
            if let Some(f) = format {
                target_format(w, f)?;
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

    #[test]
    fn pool_kinds_render_and_escape() {
        let mut s = StoragePoolSpec {
            name: "p1".into(),
            r#type: StoragePoolType::Dir as i32,
            target_path: "/var/tmp/a&b".into(),
            ..Default::default()
        };
        let x = render_pool(&s).unwrap();
        assert!(
            x.contains("<pool type=\"dir\">") && x.contains("/var/tmp/a&amp;b"),
            "{x}"
        );
        s.r#type = StoragePoolType::Netfs as i32;
        s.source_host = "nfs.example".into();
        s.source_dir = "/export".into();
        let x = render_pool(&s).unwrap();
        assert!(x.contains("<host name=\"nfs.example\"/>"), "{x}");
        s.r#type = StoragePoolType::Logical as i32;
        s.target_path.clear();
        assert!(render_pool(&s).unwrap().contains("<name>p1</name>"));
        s.r#type = StoragePoolType::Fs as i32;
        s.target_path = "/mnt/x".into();
        assert!(render_pool(&s).is_err(), "fs without device accepted");
        s.source_device = "/dev/vdb".into();
        assert!(render_pool(&s)
            .unwrap()
            .contains("<device path=\"/dev/vdb\"/>"));
        s.target_path = "/mnt/../etc".into();
        assert!(render_pool(&s).is_err());
    }

    #[test]
    fn volume_checks() {
        let mut v = StorageVolumeSpec {
            name: "a.qcow2".into(),
            format: libvirt_grpc::v1::StorageVolumeFormat::Qcow2 as i32,
            capacity_bytes: 1 << 20,
            ..Default::default()
        };
        assert!(render_volume(&v, "spec")
            .unwrap()
            .contains("<format type=\"qcow2\"/>"));
        v.name = "a/b".into();
        assert!(render_volume(&v, "spec").is_err());
        v.name = "ok".into();
        v.capacity_bytes = 0;
        v.format = 1;
        let Err(Error::InvalidArgument(bad)) = render_volume(&v, "spec") else {
            panic!("bad spec accepted");
        };
        let fields: Vec<_> = bad.into_iter().map(|b| b.field).collect();
        assert_eq!(fields, ["spec.capacity_bytes", "spec.format"]);
    }
}
