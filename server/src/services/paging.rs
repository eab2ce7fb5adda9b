//! Paging shared by every `List*` call: pages are ordered by name, and a
//! page token is the hex of the last name returned. Tokens are opaque to
//! clients, stable across calls, and never skip an object created between
//! pages.

use crate::error::Error;

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Page size when a request sets none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The effective page size of a request's `page_size`.
pub fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// The token that resumes after `name`.
pub fn encode_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The name a token resumes after.
pub fn decode_token(token: &str) -> Result<String, Error> {
    let bad = || Error::invalid("page_token", "is not a token this server issued");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// The name an empty or issued token resumes after (`None`: from the start).
pub fn after(token: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        Ok(None)
    } else {
        decode_token(token).map(Some)
    }
}

/// One page of `items` (in any order) by `name`: those after the token's
/// name, sorted, at most `page_size`, and the next page's token (empty on
/// the last page).
pub fn page_by_name<T>(
    mut items: Vec<T>,
    name: impl Fn(&T) -> &str,
    page_size_requested: u32,
    token: &str,
) -> Result<(Vec<T>, String), Error> {
    let after = after(token)?;
    let size = page_size(page_size_requested);
    items.retain(|i| after.as_deref().is_none_or(|a| name(i) > a));
    items.sort_by(|a, b| name(a).cmp(name(b)));
    let next = next_token(&mut items, size, &name);
    Ok((items, next))
}

/// Cuts `items` (already in page order) to `size` and returns the token of
/// the page after it (empty when nothing follows).
pub fn next_token<T>(items: &mut Vec<T>, size: usize, name: impl Fn(&T) -> &str) -> String {
    let more = items.len() > size;
    items.truncate(size);
    match (more, items.last()) {
        (true, Some(last)) => encode_token(name(last)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = encode_token("vm-ä1");
        assert_eq!(decode_token(&t).ok().as_deref(), Some("vm-ä1"));
        assert!(decode_token("zz").is_err());
        assert!(decode_token("abc").is_err());
    }

    #[test]
    fn pages_by_name() {
        let items = vec!["c", "a", "e", "b", "d"];
        let (p1, t1) = page_by_name(items.clone(), |s| s, 2, "").unwrap_or_default();
        assert_eq!(p1, vec!["a", "b"]);
        let (p2, t2) = page_by_name(items.clone(), |s| s, 2, &t1).unwrap_or_default();
        assert_eq!(p2, vec!["c", "d"]);
        let (p3, t3) = page_by_name(items, |s| s, 2, &t2).unwrap_or_default();
        assert_eq!((p3, t3.as_str()), (vec!["e"], ""));
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000), MAX_PAGE_SIZE);
    }
}
