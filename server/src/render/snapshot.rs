//! Snapshot specs rendered to `<domainsnapshot>` XML.

use libvirt_grpc::v1::SnapshotSpec;

use super::{finish, io_error, text_element, writer};
use crate::{error::Error, validate};

/// Renders a snapshot spec.
pub fn render(spec: &SnapshotSpec) -> Result<String, Error> {
    if !spec.name.is_empty() {
        validate::object_name("spec.name", &spec.name)?;
    }
    validate::text("spec.description", &spec.description)?;
    let mut w = writer();
    w.create_element("domainsnapshot")
        .write_inner_content(|w| {
            if !spec.name.is_empty() {
                text_element(w, "name", &spec.name)?;
            }
            if !spec.description.is_empty() {
                text_element(w, "description", &spec.description)?;
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
    fn escapes_description() {
        let x = render(&SnapshotSpec {
            name: "s1".into(),
            description: "<b>&</b>".into(),
        })
        .unwrap();
        assert!(x.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{x}");
        assert!(render(&SnapshotSpec {
            name: "a/b".into(),
            description: String::new()
        })
        .is_err());
    }
}
