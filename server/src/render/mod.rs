//! Structured specs rendered to libvirt XML with an XML writer that escapes
//! every text and attribute value, so no request field can inject markup.

pub mod blockjob;
pub mod domain;
pub mod network;
pub mod snapshot;
pub mod storage;

use quick_xml::{events::BytesText, Writer};

use crate::error::Error;

/// The writer every renderer uses.
pub(crate) type XmlWriter = Writer<Vec<u8>>;

/// A new indented writer.
pub(crate) fn writer() -> XmlWriter {
    Writer::new_with_indent(Vec::new(), b' ', 2)
}

/// The finished document as a string.
pub(crate) fn finish(w: XmlWriter) -> Result<String, Error> {
    String::from_utf8(w.into_inner())
        .map_err(|e| Error::internal_from("rendered XML is not UTF-8", e))
}

/// Writes `<name>text</name>` with `text` escaped.
pub(crate) fn text_element(w: &mut XmlWriter, name: &str, text: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// Writes `<name unit="unit">value</name>`, e.g. a memory size or capacity.
pub(crate) fn quantity(
    w: &mut XmlWriter,
    name: &str,
    unit: &str,
    value: u64,
) -> std::io::Result<()> {
    w.create_element(name)
        .with_attribute(("unit", unit))
        .write_text_content(BytesText::new(&value.to_string()))?;
    Ok(())
}

/// Turns a writer failure (only possible on I/O, which a `Vec` never has)
/// into an internal error.
pub(crate) fn io_error(e: std::io::Error) -> Error {
    Error::internal_from("cannot render XML", e)
}
