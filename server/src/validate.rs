//! Checks on request fields that every service shares. Each returns
//! `INVALID_ARGUMENT` naming the field, before anything is sent to libvirt.

use crate::error::{Error, Violation};

/// Collects every bad field of a request, so that one `BadRequest` names
/// them all instead of only the first.
///
/// ```ignore
/// let mut v = Violations::default();
/// let name = v.check(validate::required_text("name", &r.name));
/// v.check(validate::absolute_path("path", &r.path));
/// v.finish()?; // INVALID_ARGUMENT with both violations, if both are bad
/// ```
///
/// An error that is not about a field (an unknown host) is kept too and
/// answered when no field is bad.
#[derive(Debug, Default)]
pub struct Violations {
    bad: Vec<Violation>,
    other: Option<Error>,
}

impl Violations {
    /// Records a check's failure; the value when it passed.
    pub fn check<T>(&mut self, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(Error::InvalidArgument(bad)) => {
                self.bad.extend(bad);
                None
            }
            Err(e) => {
                self.other.get_or_insert(e);
                None
            }
        }
    }

    /// Records a violation found by hand.
    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.bad.push(Violation {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// `INVALID_ARGUMENT` naming every bad field, the other error when no
    /// field was bad, or `Ok`.
    pub fn finish(self) -> Result<(), Error> {
        if !self.bad.is_empty() {
            return Err(Error::InvalidArgument(self.bad));
        }
        self.other.map_or(Ok(()), Err)
    }

    /// Like [`finish`](Self::finish), then the checked value: for a
    /// `TryFrom` that ends with every field's value in hand.
    pub fn done<T>(self, value: Option<T>) -> Result<T, Error> {
        self.finish()?;
        value.ok_or_else(|| Error::internal("a checked value is missing"))
    }
}

/// Longest object name a structured spec may carry.
pub const MAX_NAME_LEN: usize = 200;

/// A name for an object the server renders XML for: 1 to 200 characters from
/// ASCII letters, digits and `_ . - + :`, not starting with `.` or `-`.
///
/// libvirt itself accepts more (names are only forbidden to hold `/`), but
/// names that travel into file names, bridge names and shell-facing tools
/// are safer kept plain; raw XML remains the way to use anything else.
pub fn object_name(field: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "is {} characters long; the limit is {MAX_NAME_LEN}",
                name.chars().count()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ':')))
    {
        return Err(Error::invalid(
            field,
            format!("contains {bad:?}; only letters, digits and _ . - + : are allowed"),
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(Error::invalid(field, "must not start with '.' or '-'"));
    }
    Ok(())
}

/// Text passed to libvirt as a C string: no NUL bytes.
pub fn text(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL bytes"));
    }
    Ok(())
}

/// Text of at most `limit` bytes.
pub fn max_bytes(field: &str, value: &str, limit: usize) -> Result<(), Error> {
    if value.len() > limit {
        return Err(Error::invalid(
            field,
            format!("is {} bytes long; the limit is {limit} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Text that must be present and passed to libvirt as a C string.
pub fn required_text(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    text(field, value)
}

/// Largest raw XML document a request may carry (1 MiB). libvirt's own
/// domain, pool, volume and network descriptions are a few KiB; the cap keeps
/// one request from making libvirt (and its daemon) parse and store megabytes.
pub const MAX_XML_BYTES: usize = 1 << 20;

/// Raw libvirt XML that must be present: see [`xml`].
pub fn required_xml(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    xml(field, value)
}

/// Raw libvirt XML (possibly empty) as libvirt will parse it: at most
/// [`MAX_XML_BYTES`], no NUL bytes, no document type declaration and no
/// entity declaration anywhere (so no entity can expand, and what the server
/// checks is what libvirt reads), and no encoding declaration other than
/// UTF-8 (libxml2 would otherwise decode the text differently from us).
pub fn xml(field: &str, value: &str) -> Result<(), Error> {
    text(field, value)?;
    max_bytes(field, value, MAX_XML_BYTES)?;
    for decl in ["<!DOCTYPE", "<!ENTITY"] {
        if contains_ignore_ascii_case(value, decl) {
            return Err(Error::invalid(
                field,
                format!(
                    "must not contain a '{decl}' declaration: document types and entities are refused"
                ),
            ));
        }
    }
    if let Some(encoding) = declared_encoding(value) {
        if !encoding.eq_ignore_ascii_case("utf-8") && !encoding.eq_ignore_ascii_case("utf8") {
            return Err(Error::invalid(
                field,
                format!("declares encoding '{encoding}'; only UTF-8 is accepted"),
            ));
        }
    }
    if value.contains("xmlns") {
        for (name, uri) in crate::xml_query::namespace_declarations(value) {
            if uri.is_empty() && name == "xmlns" {
                continue; // undeclares the default namespace
            }
            namespace_uri(&format!("{field} ({name})"), &uri)?;
        }
    }
    Ok(())
}

/// Longest XML namespace URI a request may give.
pub const MAX_NAMESPACE_URI_BYTES: usize = 1024;

/// An XML namespace name: a URI of 1 to [`MAX_NAMESPACE_URI_BYTES`] bytes
/// without whitespace, control characters, `<`, `>`, `&`, `"` or `'`.
/// libvirt writes a namespace back into the definitions it stores without
/// escaping it, so one of those characters would leave a definition (or a
/// running guest's status file) that libvirtd cannot load after a restart:
/// the guest would be lost to it.
pub fn namespace_uri(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "a namespace URI must not be empty"));
    }
    max_bytes(field, value, MAX_NAMESPACE_URI_BYTES)?;
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '&' | '"' | '\''))
    {
        return Err(Error::invalid(
            field,
            format!(
                "namespace URI contains {c:?}: libvirt would store it unescaped, leaving XML it cannot read back"
            ),
        ));
    }
    Ok(())
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The `encoding` of a leading `<?xml ...?>` declaration, if one is given.
fn declared_encoding(value: &str) -> Option<&str> {
    let rest = value.trim_start_matches('\u{feff}').trim_start();
    let decl = rest.strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let after = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?;
    let after = after.trim_start();
    let quote = after.chars().next()?;
    if quote != '"' && quote != '\'' {
        return Some(after);
    }
    let inner = &after[1..];
    Some(&inner[..inner.find(quote)?])
}

/// An XML namespace prefix, as libvirt requires of a metadata element's
/// key: 1 to 64 ASCII letters, digits, `_`, `-` and `.`, starting with a
/// letter or `_`, and not starting with `xml` (reserved by XML itself).
pub fn xml_prefix(field: &str, value: &str) -> Result<(), Error> {
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !first_ok || !rest_ok || value.len() > 64 || value.to_ascii_lowercase().starts_with("xml") {
        return Err(Error::invalid(
            field,
            "must be an XML namespace prefix: a letter or '_', then letters, digits, '_', '-' or '.', at most 64, not starting with 'xml'",
        ));
    }
    Ok(())
}

/// Largest memory size in KiB a request may give: the byte count must fit
/// libvirt's signed 64-bit sizes (8 EiB).
pub const MAX_MEMORY_KIB: u64 = (i64::MAX as u64) / 1024;

/// A memory size in KiB that libvirt can hold ([`MAX_MEMORY_KIB`]).
pub fn memory_kib(field: &str, kib: u64) -> Result<(), Error> {
    if kib > MAX_MEMORY_KIB {
        return Err(Error::invalid(
            field,
            format!("{kib} KiB is more than the largest size libvirt holds ({MAX_MEMORY_KIB} KiB)"),
        ));
    }
    Ok(())
}

/// A count of vCPUs (or IOThreads) that this host's driver allows for the
/// domain type: libvirt allocates per-vCPU structures while it parses a
/// definition, so a larger count must never reach it.
pub fn vcpu_count(field: &str, count: u64, host_max: u32) -> Result<(), Error> {
    if count > u64::from(host_max) {
        return Err(Error::invalid(
            field,
            format!("{count} is more than this host allows for the domain type ({host_max})"),
        ));
    }
    Ok(())
}

/// A UUID in any form `uuid` parses; returns the canonical hyphenated form.
pub fn uuid(field: &str, value: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| Error::invalid(field, format!("'{value}' is not a UUID: {e}")))
}

/// Longest host path a request may name (PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;

/// An absolute host path of at most [`MAX_PATH_BYTES`], without `..`
/// components and NUL bytes.
pub fn absolute_path(field: &str, value: &str) -> Result<(), Error> {
    text(field, value)?;
    max_bytes(field, value, MAX_PATH_BYTES)?;
    let p = std::path::Path::new(value);
    if !p.is_absolute() {
        return Err(Error::invalid(
            field,
            format!("'{value}' is not an absolute path"),
        ));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::invalid(
            field,
            format!("'{value}' must not contain '..'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_uris() {
        assert!(namespace_uri("u", "http://example.org/ns/1.0").is_ok());
        assert!(namespace_uri("u", "urn:x:y?a=1;b=2").is_ok());
        for bad in [
            "", "urn:a<b", "urn:a&b", "urn:a b", "urn:a\"b", "urn:a'b", "urn:a\nb",
        ] {
            assert!(namespace_uri("u", bad).is_err(), "{bad:?} accepted");
        }
        assert!(namespace_uri("u", &"a".repeat(2000)).is_err());
        // In raw XML, declarations are checked once unescaped.
        let xml = |ns: &str| {
            format!("<domain><metadata><a:i xmlns:a=\"{ns}\">x</a:i></metadata></domain>")
        };
        assert!(xml_check(&xml("http://example.org/a")).is_ok());
        assert!(xml_check(&xml("urn:x&lt;y")).is_err());
        assert!(xml_check(&xml("urn:x&#60;y")).is_err());
        assert!(xml_check(&xml("urn:x&amp;y")).is_err());
        assert!(xml_check("<a xmlns=''><b/></a>").is_ok());
        assert!(xml_check("<a xmlns:q='&lt;'/>").is_err());
    }

    fn xml_check(v: &str) -> Result<(), Error> {
        xml("xml", v)
    }

    #[test]
    fn names() {
        assert!(object_name("n", "web-01.example_x+y:z").is_ok());
        for bad in ["", "a<b", "a&b", "a\"b", "a'b", "a/b", "-x", ".x", "a b"] {
            assert!(object_name("n", bad).is_err(), "{bad:?} accepted");
        }
        assert!(object_name("n", &"a".repeat(200)).is_ok());
        assert!(object_name("n", &"a".repeat(10_000)).is_err());
    }

    #[test]
    fn paths_and_uuids() {
        assert!(absolute_path("p", "/var/lib/x.img").is_ok());
        assert!(absolute_path("p", "relative").is_err());
        assert!(absolute_path("p", "/var/../etc").is_err());
        assert!(uuid("u", "not-a-uuid").is_err());
        assert_eq!(
            uuid("u", "6695EB01F6A44304AAA9F5E2D7B1D4B0")
                .ok()
                .as_deref(),
            Some("6695eb01-f6a4-4304-aaa9-f5e2d7b1d4b0")
        );
        assert!(text("t", "a\0b").is_err());
    }

    #[test]
    fn raw_xml() {
        assert!(required_xml("x", "<domain type='test'><name>a</name></domain>").is_ok());
        assert!(required_xml("x", "").is_err());
        assert!(xml("x", "").is_ok());
        let bomb = "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaa'>]><d>&a;</d>";
        assert!(xml("x", bomb).is_err());
        assert!(xml("x", "<d><![CDATA[<!doctype x>]]></d>").is_err());
        assert!(xml("x", "<!ENTITY x 'y'><d/>").is_err());
        assert!(xml("x", &format!("<d>{}</d>", "a".repeat(MAX_XML_BYTES))).is_err());
        assert!(xml("x", "<?xml version='1.0' encoding='UTF-8'?><d/>").is_ok());
        assert!(xml("x", "<?xml version=\"1.0\" encoding=\"utf-8\"?><d/>").is_ok());
        assert!(xml("x", "<?xml version='1.0' encoding='UTF-7'?><d/>").is_err());
        assert!(xml("x", "<?xml version='1.0' encoding = \"UTF-16\"?><d/>").is_err());
        assert!(xml("x", "<?xml version='1.0'?><d/>").is_ok());
    }
}
