//! Checks on request fields that every service shares. Each returns
//! `INVALID_ARGUMENT` naming the field, before anything is sent to libvirt.

use crate::error::Error;

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

/// Text that must be present and passed to libvirt as a C string.
pub fn required_text(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    text(field, value)
}

/// A UUID in any form `uuid` parses; returns the canonical hyphenated form.
pub fn uuid(field: &str, value: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|e| Error::invalid(field, format!("'{value}' is not a UUID: {e}")))
}

/// An absolute host path without `..` components and NUL bytes.
pub fn absolute_path(field: &str, value: &str) -> Result<(), Error> {
    text(field, value)?;
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
}
