//! Reads a few values out of libvirt XML descriptions (a pool's type, a
//! volume's format, a snapshot's parent) with quick-xml's reader. Paths are
//! element names from the root, e.g. `["volume", "target", "format"]`.

use quick_xml::{
    escape::{resolve_predefined_entity, unescape},
    events::Event,
    Reader,
};

/// The value of attribute `attr` of the first element at `path`.
pub fn attr(xml: &str, path: &[&str], attr: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) if at(&stack, path, e.name().as_ref()) => {
                return e
                    .try_get_attribute(attr)
                    .ok()
                    .flatten()
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()));
            }
            Event::Start(e) => stack.push(e.name().as_ref().to_vec()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The values of attribute `attr` of every element at `path` that has it,
/// in document order; empty when the XML cannot be read to its end.
pub fn attrs(xml: &str, path: &[&str], attr: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    loop {
        let Ok(event) = reader.read_event() else {
            return Vec::new();
        };
        let opens = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) if at(&stack, path, e.name().as_ref()) => {
                if let Some(v) = e
                    .try_get_attribute(attr)
                    .ok()
                    .flatten()
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                {
                    out.push(v);
                }
                if opens {
                    stack.push(e.name().as_ref().to_vec());
                }
            }
            Event::Start(e) => stack.push(e.name().as_ref().to_vec()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// The text content of the first element at `path`.
pub fn text(xml: &str, path: &[&str]) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut inside = false;
    let mut out = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if !inside && at(&stack, path, e.name().as_ref()) {
                    inside = true;
                }
                stack.push(e.name().as_ref().to_vec());
            }
            Event::Empty(e) if !inside && at(&stack, path, e.name().as_ref()) => {
                return Some(String::new());
            }
            Event::Text(t) if inside => {
                let raw = t.decode().ok()?;
                out.push_str(&unescape(&raw).ok()?);
            }
            Event::GeneralRef(r) if inside => {
                let name = r.decode().ok()?;
                if let Some(s) = resolve_predefined_entity(&name) {
                    out.push_str(s);
                } else if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                }
            }
            Event::CData(c) if inside => {
                out.push_str(&String::from_utf8_lossy(&c));
            }
            Event::End(_) => {
                stack.pop();
                if inside && stack.len() < path.len() {
                    return Some(out);
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Every namespace declaration (`xmlns` or `xmlns:P` attribute) of every
/// element, as (attribute name, unescaped value), in document order, up to
/// where quick-xml stops reading.
pub fn namespace_declarations(xml: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) => {
                for a in e.attributes().flatten() {
                    let key = a.key.as_ref();
                    if key != b"xmlns" && !key.starts_with(b"xmlns:") {
                        continue;
                    }
                    let value = match a.unescape_value() {
                        Ok(v) => v.into_owned(),
                        Err(_) => String::from_utf8_lossy(&a.value).into_owned(),
                    };
                    out.push((String::from_utf8_lossy(key).into_owned(), value));
                }
            }
            Ok(Event::Eof) | Err(_) => return out,
            Ok(_) => {}
        }
    }
}

/// Whether quick-xml reads `xml` to its end without an error and finds a
/// root element.
pub fn is_well_formed(xml: &str) -> bool {
    let mut reader = Reader::from_str(xml);
    let mut root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return root,
            Ok(Event::Start(_) | Event::Empty(_)) => root = true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

fn at(stack: &[Vec<u8>], path: &[&str], name: &[u8]) -> bool {
    stack.len() + 1 == path.len()
        && stack
            .iter()
            .zip(path)
            .all(|(s, p)| s.as_slice() == p.as_bytes())
        && path.last().map(|l| l.as_bytes()) == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attributes_and_text() {
        let xml = "<volume type='file'><name>a &amp; b</name><target><path>/p</path>\
                   <format type='qcow2'/></target></volume>";
        assert_eq!(attr(xml, &["volume"], "type").as_deref(), Some("file"));
        assert_eq!(
            attr(xml, &["volume", "target", "format"], "type").as_deref(),
            Some("qcow2")
        );
        assert_eq!(text(xml, &["volume", "name"]).as_deref(), Some("a & b"));
        assert_eq!(
            text(xml, &["volume", "target", "path"]).as_deref(),
            Some("/p")
        );
        assert_eq!(text(xml, &["volume", "nothing"]), None);
    }

    #[test]
    fn reads_every_matching_attribute() {
        let xml = "<domainsnapshot><disks>\
                   <disk name='vda'><source file='/a &amp; b'/></disk>\
                   <disk name='vdb' snapshot='no'/>\
                   <disk name='vdc'><source file='/c'></source></disk>\
                   </disks><source file='/not-a-disk'/></domainsnapshot>";
        assert_eq!(
            attrs(xml, &["domainsnapshot", "disks", "disk", "source"], "file"),
            ["/a & b", "/c"]
        );
        assert_eq!(
            attrs(xml, &["domainsnapshot", "disks", "disk"], "name"),
            ["vda", "vdb", "vdc"]
        );
        assert!(attrs("<a><b x='1'></a>", &["a", "b"], "x").is_empty());
    }
}
