//! Keys for `send-key`: numbers in any code set, or linux names.

use libvirt_grpc_client::v1;

use super::Failure;

/// A code set by short name (`linux`, `xt_kbd`).
pub(crate) fn parse_codeset(s: &str) -> Result<v1::KeyCodeSet, Failure> {
    let full = format!("KEY_CODE_SET_{}", s.to_ascii_uppercase().replace('-', "_"));
    v1::KeyCodeSet::from_str_name(&full)
        .filter(|c| *c != v1::KeyCodeSet::Unspecified)
        .ok_or_else(|| Failure::Input(format!("unknown key code set {s:?}")))
}

/// Linux input event codes of the keys people send most.
const LINUX_KEYS: &[(&str, u32)] = &[
    ("ESC", 1),
    ("1", 2),
    ("2", 3),
    ("3", 4),
    ("4", 5),
    ("5", 6),
    ("6", 7),
    ("7", 8),
    ("8", 9),
    ("9", 10),
    ("0", 11),
    ("BACKSPACE", 14),
    ("TAB", 15),
    ("Q", 16),
    ("W", 17),
    ("E", 18),
    ("R", 19),
    ("T", 20),
    ("Y", 21),
    ("U", 22),
    ("I", 23),
    ("O", 24),
    ("P", 25),
    ("ENTER", 28),
    ("LEFTCTRL", 29),
    ("A", 30),
    ("S", 31),
    ("D", 32),
    ("F", 33),
    ("G", 34),
    ("H", 35),
    ("J", 36),
    ("K", 37),
    ("L", 38),
    ("LEFTSHIFT", 42),
    ("Z", 44),
    ("X", 45),
    ("C", 46),
    ("V", 47),
    ("B", 48),
    ("N", 49),
    ("M", 50),
    ("RIGHTSHIFT", 54),
    ("LEFTALT", 56),
    ("SPACE", 57),
    ("F1", 59),
    ("F2", 60),
    ("F3", 61),
    ("F4", 62),
    ("F5", 63),
    ("F6", 64),
    ("F7", 65),
    ("F8", 66),
    ("F9", 67),
    ("F10", 68),
    ("F11", 87),
    ("F12", 88),
    ("RIGHTCTRL", 97),
    ("SYSRQ", 99),
    ("RIGHTALT", 100),
    ("HOME", 102),
    ("UP", 103),
    ("PAGEUP", 104),
    ("LEFT", 105),
    ("RIGHT", 106),
    ("END", 107),
    ("DOWN", 108),
    ("PAGEDOWN", 109),
    ("INSERT", 110),
    ("DELETE", 111),
    ("POWER", 116),
];

pub(crate) fn key_code(key: &str, set: v1::KeyCodeSet) -> Result<u32, Failure> {
    if let Ok(n) = key.parse::<u32>() {
        return Ok(n);
    }
    let upper = key.to_ascii_uppercase();
    let bare = upper.strip_prefix("KEY_").unwrap_or(&upper);
    if set == v1::KeyCodeSet::Linux {
        if let Some((_, code)) = LINUX_KEYS.iter().find(|(n, _)| *n == bare) {
            return Ok(*code);
        }
    }
    Err(Failure::Input(format!(
        "unknown key {key:?} (a number, or a linux key name such as KEY_ENTER)"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_number_or_linux_name() {
        let l = v1::KeyCodeSet::Linux;
        assert_eq!(key_code("28", l).ok(), Some(28));
        assert_eq!(key_code("KEY_ENTER", l).ok(), Some(28));
        assert_eq!(key_code("leftctrl", l).ok(), Some(29));
        assert!(key_code("KEY_ENTER", v1::KeyCodeSet::Xt).is_err());
        assert_eq!(parse_codeset("xt_kbd").ok(), Some(v1::KeyCodeSet::XtKbd));
        assert!(parse_codeset("nope").is_err());
    }
}
