//! The destination `<disk>` XML of a block copy.

use super::{finish, io_error, writer};
use crate::error::Error;

/// `<disk type='file'><source file='...'/><driver type='...'/></disk>`;
/// without a format libvirt keeps the disk's own.
pub fn copy_destination(file: &str, format: Option<&str>) -> Result<String, Error> {
    let mut w = writer();
    w.create_element("disk")
        .with_attribute(("type", "file"))
        .write_inner_content(|w| {
            w.create_element("source")
                .with_attribute(("file", file))
                .write_empty()?;
            if let Some(f) = format {
                w.create_element("driver")
                    .with_attribute(("type", f))
                    .write_empty()?;
            }
            Ok(())
        })
        .map_err(io_error)?;
    finish(w)
}

/// The destination of a copy into a volume at `path`: `<disk type='file'>`
/// with `<source file>`, or for a block volume `<disk type='block'>` with
/// `<source dev>`; without a format libvirt keeps the disk's own.
pub fn copy_to_volume(path: &str, block: bool, format: Option<&str>) -> Result<String, Error> {
    let (kind, attr) = if block {
        ("block", "dev")
    } else {
        ("file", "file")
    };
    let mut w = writer();
    w.create_element("disk")
        .with_attribute(("type", kind))
        .write_inner_content(|w| {
            w.create_element("source")
                .with_attribute((attr, path))
                .write_empty()?;
            if let Some(f) = format {
                w.create_element("driver")
                    .with_attribute(("type", f))
                    .write_empty()?;
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
    fn escapes_the_file_and_names_the_format() {
        let x = copy_destination("/r/a'&b.qcow2", Some("qcow2")).unwrap();
        assert_eq!(
            crate::xml_query::attr(&x, &["disk", "source"], "file").as_deref(),
            Some("/r/a'&b.qcow2")
        );
        assert_eq!(
            crate::xml_query::attr(&x, &["disk", "driver"], "type").as_deref(),
            Some("qcow2")
        );
        let plain = copy_destination("/r/x", None).unwrap();
        assert!(!plain.contains("driver"), "{plain}");
        let v = copy_to_volume("/dev/vg/l<1>", true, Some("raw")).unwrap();
        assert_eq!(
            crate::xml_query::attr(&v, &["disk"], "type").as_deref(),
            Some("block")
        );
        assert_eq!(
            crate::xml_query::attr(&v, &["disk", "source"], "dev").as_deref(),
            Some("/dev/vg/l<1>")
        );
        let f = copy_to_volume("/p/v.qcow2", false, None).unwrap();
        assert_eq!(
            crate::xml_query::attr(&f, &["disk", "source"], "file").as_deref(),
            Some("/p/v.qcow2")
        );
    }
}
