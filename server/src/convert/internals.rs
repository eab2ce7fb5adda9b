//! Conversions of the domain-internals RPCs (monitor, counters, tuning,
//! peeks, dumps): requests into validated `ops` inputs, `ops` answers into
//! messages.

use libvirt_grpc::v1;

use crate::{error::Error, ops::monitor::MonitorProtocol, validate};

/// Longest monitor command accepted (64 KiB): QMP and HMP commands are a
/// line or a small JSON object; the cap keeps a request from making QEMU
/// parse megabytes.
pub const MAX_MONITOR_COMMAND_BYTES: usize = 64 << 10;

/// A monitor command and its language, checked: present, at most
/// [`MAX_MONITOR_COMMAND_BYTES`], no NUL, and for QMP a JSON object (libvirt
/// would answer a malformed one with an internal error).
pub fn monitor_command(
    r: &v1::QemuMonitorCommandRequest,
) -> Result<(String, MonitorProtocol), Error> {
    use v1::QemuMonitorProtocol as P;
    let mut v = validate::Violations::default();
    let protocol = match P::try_from(r.protocol) {
        Ok(P::Unspecified | P::Qmp) => Some(MonitorProtocol::Qmp),
        Ok(P::Hmp) => Some(MonitorProtocol::Hmp),
        Err(_) => {
            v.add("protocol", "unknown protocol");
            None
        }
    };
    let text = v
        .check(validate::required_text("command", &r.command))
        .and_then(|()| {
            v.check(validate::max_bytes(
                "command",
                &r.command,
                MAX_MONITOR_COMMAND_BYTES,
            ))
        });
    if text.is_some() && protocol == Some(MonitorProtocol::Qmp) {
        match serde_json::from_str::<serde_json::Value>(&r.command) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => v.add("command", "a QMP command is a JSON object"),
            Err(e) => v.add("command", format!("is not JSON: {e}")),
        }
    }
    v.done(protocol.map(|p| (r.command.clone(), p)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn monitor_commands_are_checked() {
        let req =
            |command: &str, protocol: v1::QemuMonitorProtocol| v1::QemuMonitorCommandRequest {
                domain: None,
                command: command.into(),
                protocol: protocol as i32,
            };
        use v1::QemuMonitorProtocol as P;
        let (c, p) =
            monitor_command(&req(r#"{"execute":"query-status"}"#, P::Unspecified)).unwrap();
        assert_eq!(
            (c.as_str(), p),
            (r#"{"execute":"query-status"}"#, MonitorProtocol::Qmp)
        );
        assert_eq!(
            monitor_command(&req("info status", P::Hmp)).unwrap().1,
            MonitorProtocol::Hmp
        );
        assert_eq!(
            fields(monitor_command(&req("info status", P::Qmp)).unwrap_err()),
            ["command"]
        );
        assert_eq!(
            fields(monitor_command(&req("[1]", P::Qmp)).unwrap_err()),
            ["command"]
        );
        assert_eq!(
            fields(monitor_command(&req("", P::Hmp)).unwrap_err()),
            ["command"]
        );
        assert_eq!(
            fields(monitor_command(&req("a\0b", P::Hmp)).unwrap_err()),
            ["command"]
        );
        let long = "x".repeat(MAX_MONITOR_COMMAND_BYTES + 1);
        assert_eq!(
            fields(monitor_command(&req(&long, P::Hmp)).unwrap_err()),
            ["command"]
        );
        let mut bad = req("info", P::Hmp);
        bad.protocol = 9;
        assert_eq!(fields(monitor_command(&bad).unwrap_err()), ["protocol"]);
    }
}
