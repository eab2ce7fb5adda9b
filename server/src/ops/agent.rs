//! Guest agent operations: libvirt's typed agent calls, and the raw
//! `guest-exec` / `guest-file-*` JSON commands behind Exec and the file
//! calls. Every function blocks; services run them on `Lane::Slow`.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use libvirt_grpc::v1;
use serde_json::{json, Value};
use virt::{domain::Domain, sys};

use crate::{
    error::Error,
    libvirt_sys::{self, TypedValue},
};

/// Agent timeout (seconds) when the request carries no deadline.
pub const DEFAULT_AGENT_TIMEOUT_SECS: i32 = 30;

/// Sends one agent command and returns the `return` member of its answer.
pub fn command(dom: &Domain, cmd: &Value, timeout_secs: i32) -> Result<Value, Error> {
    let raw = dom.qemu_agent_command(&cmd.to_string(), timeout_secs, 0)?;
    let answer: Value = serde_json::from_str(&raw)
        .map_err(|e| Error::internal_from("agent answered with invalid JSON", e))?;
    Ok(answer.get("return").cloned().unwrap_or(Value::Null))
}

/// Sends a raw command (already validated JSON) and returns the raw answer.
pub fn raw_command(dom: &Domain, cmd: &str, timeout_secs: i32) -> Result<String, Error> {
    Ok(dom.qemu_agent_command(cmd, timeout_secs, 0)?)
}

fn unexpected(what: &str, v: &Value) -> Error {
    Error::internal(format!("unexpected agent answer to {what}: {v}"))
}

fn decode_b64(what: &str, v: Option<&Value>) -> Result<Vec<u8>, Error> {
    match v.and_then(Value::as_str) {
        None => Ok(Vec::new()),
        Some(s) => B64
            .decode(s)
            .map_err(|e| Error::internal_from(format!("agent sent invalid base64 in {what}"), e)),
    }
}

/// Starts `path args` in the guest (`guest-exec`); returns its pid.
pub fn exec_start(dom: &Domain, req: &v1::ExecRequest, timeout_secs: i32) -> Result<i64, Error> {
    let mut args = json!({
        "path": req.path,
        "arg": req.args,
        "capture-output": !req.discard_output,
    });
    if !req.env.is_empty() {
        args["env"] = json!(req.env);
    }
    if !req.stdin.is_empty() {
        args["input-data"] = json!(B64.encode(&req.stdin));
    }
    let ret = command(
        dom,
        &json!({"execute": "guest-exec", "arguments": args}),
        timeout_secs,
    )?;
    ret.get("pid")
        .and_then(Value::as_i64)
        .ok_or_else(|| unexpected("guest-exec", &ret))
}

/// One `guest-exec-status` answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExecStatus {
    /// The process has ended.
    pub exited: bool,
    /// Its exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Captured standard output (only once it has exited).
    pub stdout: Vec<u8>,
    /// Captured standard error (only once it has exited).
    pub stderr: Vec<u8>,
    /// The agent cut standard output short.
    pub stdout_truncated: bool,
    /// The agent cut standard error short.
    pub stderr_truncated: bool,
}

/// Polls a guest process (`guest-exec-status`). Once it reports `exited`,
/// the agent forgets the pid.
pub fn exec_status(dom: &Domain, pid: i64, timeout_secs: i32) -> Result<ExecStatus, Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
        timeout_secs,
    )?;
    parse_exec_status(&ret)
}

fn parse_exec_status(ret: &Value) -> Result<ExecStatus, Error> {
    let exited = ret
        .get("exited")
        .and_then(Value::as_bool)
        .ok_or_else(|| unexpected("guest-exec-status", ret))?;
    let int = |k: &str| {
        ret.get(k)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    let flag = |k: &str| ret.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(ExecStatus {
        exited,
        exit_code: int("exitcode"),
        signal: int("signal"),
        stdout: decode_b64("out-data", ret.get("out-data"))?,
        stderr: decode_b64("err-data", ret.get("err-data"))?,
        stdout_truncated: flag("out-truncated"),
        stderr_truncated: flag("err-truncated"),
    })
}

/// Opens a guest file (`guest-file-open`); returns its handle.
pub fn file_open(dom: &Domain, path: &str, mode: &str, timeout_secs: i32) -> Result<i64, Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": mode}}),
        timeout_secs,
    )?;
    ret.as_i64()
        .ok_or_else(|| unexpected("guest-file-open", &ret))
}

/// Closes a guest file handle (`guest-file-close`).
pub fn file_close(dom: &Domain, handle: i64, timeout_secs: i32) -> Result<(), Error> {
    command(
        dom,
        &json!({"execute": "guest-file-close", "arguments": {"handle": handle}}),
        timeout_secs,
    )?;
    Ok(())
}

/// Moves a guest file's position (`guest-file-seek`, whence `set` or `end`);
/// returns the new position.
pub fn file_seek(
    dom: &Domain,
    handle: i64,
    offset: i64,
    whence: &str,
    timeout_secs: i32,
) -> Result<u64, Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-file-seek",
                "arguments": {"handle": handle, "offset": offset, "whence": whence}}),
        timeout_secs,
    )?;
    ret.get("position")
        .and_then(Value::as_u64)
        .ok_or_else(|| unexpected("guest-file-seek", &ret))
}

/// Reads up to `count` bytes (`guest-file-read`); returns them and whether
/// the end of the file was reached.
pub fn file_read(
    dom: &Domain,
    handle: i64,
    count: usize,
    timeout_secs: i32,
) -> Result<(Vec<u8>, bool), Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-file-read", "arguments": {"handle": handle, "count": count}}),
        timeout_secs,
    )?;
    let data = decode_b64("buf-b64", ret.get("buf-b64"))?;
    let eof = ret.get("eof").and_then(Value::as_bool).unwrap_or(false);
    Ok((data, eof))
}

/// Writes bytes (`guest-file-write`); returns how many were written.
pub fn file_write(dom: &Domain, handle: i64, data: &[u8], timeout_secs: i32) -> Result<u64, Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-file-write",
                "arguments": {"handle": handle, "buf-b64": B64.encode(data)}}),
        timeout_secs,
    )?;
    ret.get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| unexpected("guest-file-write", &ret))
}

/// Whether the guest's file systems are frozen (`guest-fsfreeze-status`).
pub fn freeze_status(dom: &Domain, timeout_secs: i32) -> Result<v1::FreezeStatus, Error> {
    let ret = command(
        dom,
        &json!({"execute": "guest-fsfreeze-status"}),
        timeout_secs,
    )?;
    match ret.as_str() {
        Some("thawed") => Ok(v1::FreezeStatus::Thawed),
        Some("frozen") => Ok(v1::FreezeStatus::Frozen),
        _ => Err(unexpected("guest-fsfreeze-status", &ret)),
    }
}

/// Converts libvirt's interface list.
pub fn interfaces(list: Vec<virt::domain::Interface>) -> Vec<v1::GuestInterface> {
    list.into_iter()
        .map(|i| v1::GuestInterface {
            name: i.name,
            hwaddr: i.hwaddr.unwrap_or_default(),
            addresses: i
                .addrs
                .into_iter()
                .map(|a| v1::IpAddress {
                    r#type: match a.typed as u32 {
                        sys::VIR_IP_ADDR_TYPE_IPV4 => v1::IpAddressType::Ipv4,
                        sys::VIR_IP_ADDR_TYPE_IPV6 => v1::IpAddressType::Ipv6,
                        _ => v1::IpAddressType::Unspecified,
                    } as i32,
                    address: a.addr,
                    prefix: a.prefix as u32,
                })
                .collect(),
        })
        .collect()
}

/// Typed parameters looked up by name.
struct Params(std::collections::HashMap<String, TypedValue>);

impl Params {
    fn str(&self, k: &str) -> String {
        self.0
            .get(k)
            .and_then(TypedValue::as_str)
            .unwrap_or_default()
            .to_owned()
    }
    fn u64(&self, k: &str) -> u64 {
        self.0.get(k).and_then(TypedValue::as_u64).unwrap_or(0)
    }
    fn i64(&self, k: &str) -> i64 {
        self.0.get(k).and_then(TypedValue::as_i64).unwrap_or(0)
    }
    fn bool(&self, k: &str) -> bool {
        matches!(self.0.get(k), Some(TypedValue::Bool(true)))
    }
    fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
    fn count(&self, k: &str) -> u64 {
        // Bounded so that a corrupt count cannot make us loop for long.
        self.u64(k).min(4096)
    }
}

/// libvirt's VIR_DOMAIN_GUEST_INFO_* bit for a kind.
pub fn guest_info_type(kind: v1::GuestInfoKind) -> u32 {
    use v1::GuestInfoKind as K;
    match kind {
        K::Unspecified => 0,
        K::Users => sys::VIR_DOMAIN_GUEST_INFO_USERS,
        K::Os => sys::VIR_DOMAIN_GUEST_INFO_OS,
        K::Timezone => sys::VIR_DOMAIN_GUEST_INFO_TIMEZONE,
        K::Hostname => sys::VIR_DOMAIN_GUEST_INFO_HOSTNAME,
        K::Filesystems => sys::VIR_DOMAIN_GUEST_INFO_FILESYSTEM,
        K::Disks => sys::VIR_DOMAIN_GUEST_INFO_DISKS,
        K::Interfaces => sys::VIR_DOMAIN_GUEST_INFO_INTERFACES,
    }
}

/// `virDomainGetGuestInfo`, parsed into typed messages.
pub fn guest_info(dom: &Domain, types: u32) -> Result<v1::GetGuestInfoResponse, Error> {
    let params = libvirt_sys::guest_info(dom, types)?;
    Ok(parse_guest_info(params))
}

fn parse_guest_info(params: Vec<(String, TypedValue)>) -> v1::GetGuestInfoResponse {
    let p = Params(params.into_iter().collect());
    let os =
        p.0.keys()
            .any(|k| k.starts_with("os."))
            .then(|| v1::GuestOs {
                id: p.str("os.id"),
                name: p.str("os.name"),
                pretty_name: p.str("os.pretty-name"),
                version: p.str("os.version"),
                version_id: p.str("os.version-id"),
                kernel_release: p.str("os.kernel-release"),
                kernel_version: p.str("os.kernel-version"),
                machine: p.str("os.machine"),
                variant: p.str("os.variant"),
                variant_id: p.str("os.variant-id"),
            });
    let users = (0..p.count("user.count"))
        .map(|i| v1::GuestUser {
            name: p.str(&format!("user.{i}.name")),
            domain: p.str(&format!("user.{i}.domain")),
            login_time_ms: p.u64(&format!("user.{i}.login-time")),
        })
        .collect();
    let timezone =
        (p.has("timezone.name") || p.has("timezone.offset")).then(|| v1::GuestTimezone {
            name: p.str("timezone.name"),
            offset_seconds: p.i64("timezone.offset") as i32,
        });
    let filesystems = (0..p.count("fs.count"))
        .map(|i| {
            let f = |k: &str| format!("fs.{i}.{k}");
            v1::GuestFilesystem {
                mountpoint: p.str(&f("mountpoint")),
                name: p.str(&f("name")),
                fstype: p.str(&f("fstype")),
                total_bytes: p.u64(&f("total-bytes")),
                used_bytes: p.u64(&f("used-bytes")),
                disks: (0..p.count(&f("disk.count")))
                    .map(|j| v1::GuestFilesystemDisk {
                        alias: p.str(&f(&format!("disk.{j}.alias"))),
                        serial: p.str(&f(&format!("disk.{j}.serial"))),
                        device: p.str(&f(&format!("disk.{j}.device"))),
                    })
                    .collect(),
            }
        })
        .collect();
    let disks = (0..p.count("disk.count"))
        .map(|i| {
            let f = |k: &str| format!("disk.{i}.{k}");
            v1::GuestDisk {
                name: p.str(&f("name")),
                partition: p.bool(&f("partition")),
                dependencies: (0..p.count(&f("dependency.count")))
                    .map(|j| p.str(&f(&format!("dependency.{j}.name"))))
                    .collect(),
                serial: p.str(&f("serial")),
                alias: p.str(&f("alias")),
                guest_alias: p.str(&f("guest_alias")),
            }
        })
        .collect();
    let interfaces = (0..p.count("if.count"))
        .map(|i| {
            let f = |k: &str| format!("if.{i}.{k}");
            v1::GuestInterface {
                name: p.str(&f("name")),
                hwaddr: p.str(&f("hwaddr")),
                addresses: (0..p.count(&f("addr.count")))
                    .map(|j| v1::IpAddress {
                        r#type: match p.str(&f(&format!("addr.{j}.type"))).as_str() {
                            "ipv4" => v1::IpAddressType::Ipv4,
                            "ipv6" => v1::IpAddressType::Ipv6,
                            _ => v1::IpAddressType::Unspecified,
                        } as i32,
                        address: p.str(&f(&format!("addr.{j}.addr"))),
                        prefix: p.u64(&f(&format!("addr.{j}.prefix"))) as u32,
                    })
                    .collect(),
            }
        })
        .collect();
    v1::GetGuestInfoResponse {
        os,
        users,
        timezone,
        hostname: p.str("hostname"),
        filesystems,
        disks,
        interfaces,
    }
}

/// Parses a libvirt cpu list (`0-3,5`) into numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, Error> {
    let bad = || Error::internal(format!("libvirt sent an invalid cpu list '{s}'"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a || b - a > 65536 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// `virDomainGetGuestVcpus`, parsed.
pub fn guest_vcpus(dom: &Domain) -> Result<v1::GetGuestVcpusResponse, Error> {
    let p = Params(libvirt_sys::guest_vcpus(dom)?.into_iter().collect());
    Ok(v1::GetGuestVcpusResponse {
        vcpus: parse_cpu_list(&p.str("vcpus"))?,
        online: parse_cpu_list(&p.str("online"))?,
        offlinable: parse_cpu_list(&p.str("offlinable"))?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn exec_status_parses() {
        let v = json!({"exited": true, "exitcode": 3, "out-data": "aGk=", "err-truncated": true});
        let s = parse_exec_status(&v).unwrap();
        assert!(s.exited);
        assert_eq!(s.exit_code, Some(3));
        assert_eq!(s.stdout, b"hi");
        assert!(s.stderr_truncated);
        assert!(parse_exec_status(&json!({})).is_err());
    }

    #[test]
    fn guest_info_parses() {
        let params = vec![
            ("os.id".to_owned(), TypedValue::String("debian".into())),
            ("hostname".to_owned(), TypedValue::String("h".into())),
            ("if.count".to_owned(), TypedValue::UInt(1)),
            ("if.0.name".to_owned(), TypedValue::String("lo".into())),
            ("if.0.addr.count".to_owned(), TypedValue::UInt(1)),
            (
                "if.0.addr.0.type".to_owned(),
                TypedValue::String("ipv4".into()),
            ),
            (
                "if.0.addr.0.addr".to_owned(),
                TypedValue::String("127.0.0.1".into()),
            ),
            ("if.0.addr.0.prefix".to_owned(), TypedValue::UInt(8)),
        ];
        let r = parse_guest_info(params);
        assert_eq!(r.os.unwrap().id, "debian");
        assert_eq!(r.hostname, "h");
        assert!(r.timezone.is_none());
        assert_eq!(r.interfaces[0].addresses[0].address, "127.0.0.1");
        assert_eq!(r.interfaces[0].addresses[0].prefix, 8);
    }
}
