//! Guest agent operations: every libvirt call behind `GuestAgentService`.
//! libvirt's typed agent calls (file systems, guest info, host name,
//! addresses, time, users, keys, vCPUs) and the raw agent JSON commands
//! (`guest-ping`, `guest-exec*`, `guest-file-*`, `guest-fsfreeze-status`),
//! built and parsed here. Every function blocks; services run them on
//! `Lane::Slow`. The streamed transfers live in [`super::guest_file`] and
//! [`super::guest_exec`]; they use the `file_*` and `exec_status` helpers
//! below on a domain they looked up once.
//!
//! Agent timeouts: the JSON commands get [`agent_timeout`] (the time left to
//! the request's deadline, 1 s to 300 s, or 30 s without one).

use std::time::Duration;

use super::Connect;
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use libvirt_grpc::v1;
use serde_json::{json, Value};
use tokio::time::Instant;
use virt::domain::Domain;

use super::domain::{lookup, DomainKey};
use crate::{convert::agent as convert, error::Error, libvirt_sys};

/// Agent timeout (seconds) when the request carries no deadline.
pub const DEFAULT_AGENT_TIMEOUT_SECS: i32 = 30;
/// Longest agent timeout the server hands libvirt (seconds).
pub const MAX_AGENT_TIMEOUT_SECS: i32 = 300;

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> i64 {
    i64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The agent timeout (seconds) for a call that must finish by `deadline`:
/// the time left, rounded up to a second, at least 1 s and at most 300 s;
/// 30 s without a deadline.
pub fn agent_timeout(deadline: Option<Instant>) -> i32 {
    match deadline {
        None => DEFAULT_AGENT_TIMEOUT_SECS,
        Some(d) => {
            let left = ceil_secs(d.saturating_duration_since(Instant::now()));
            left.clamp(1, i64::from(MAX_AGENT_TIMEOUT_SECS)) as i32
        }
    }
}

/// The agent timeout for a raw command: the caller's own (already checked
/// to be in (0, 300 s]), rounded up and never past the request's deadline;
/// without one, [`agent_timeout`].
pub fn command_timeout(requested: Option<Duration>, deadline: Option<Instant>) -> i32 {
    match requested {
        None => agent_timeout(deadline),
        Some(r) => {
            let r = ceil_secs(r).clamp(1, i64::from(MAX_AGENT_TIMEOUT_SECS)) as i32;
            match deadline {
                None => r,
                Some(_) => r.min(agent_timeout(deadline)),
            }
        }
    }
}

/// Sends one agent command and returns the `return` member of its answer.
fn command(dom: &Domain, cmd: &Value, timeout_secs: i32) -> Result<Value, Error> {
    let raw = dom.qemu_agent_command(&cmd.to_string(), timeout_secs, 0)?;
    let answer: Value = serde_json::from_str(&raw)
        .map_err(|e| Error::internal_from("agent answered with invalid JSON", e))?;
    Ok(answer.get("return").cloned().unwrap_or(Value::Null))
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

/// `guest-ping`.
pub fn ping(c: &Connect, key: &DomainKey, timeout_secs: i32) -> Result<(), Error> {
    let d = lookup(c, key)?;
    command(&d, &json!({"execute": "guest-ping"}), timeout_secs)?;
    Ok(())
}

/// Sends a raw command (already validated, re-serialised JSON) and returns
/// the agent's raw answer.
pub fn raw_command(
    c: &Connect,
    key: &DomainKey,
    cmd: &str,
    timeout_secs: i32,
) -> Result<String, Error> {
    let d = lookup(c, key)?;
    Ok(d.qemu_agent_command(cmd, timeout_secs, 0)?)
}

/// A program to run in the guest (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// Absolute path of the program.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `NAME=value` entries; empty: the agent's environment.
    pub env: Vec<String>,
    /// Bytes for its standard input.
    pub stdin: Vec<u8>,
    /// Capture standard output and error.
    pub capture_output: bool,
}

/// The `guest-exec` command for `spec`.
fn exec_command(spec: &ExecSpec) -> Value {
    let mut args = json!({
        "path": spec.path,
        "arg": spec.args,
        "capture-output": spec.capture_output,
    });
    if !spec.env.is_empty() {
        args["env"] = json!(spec.env);
    }
    if !spec.stdin.is_empty() {
        args["input-data"] = json!(B64.encode(&spec.stdin));
    }
    json!({"execute": "guest-exec", "arguments": args})
}

/// Starts `spec` in the guest (`guest-exec`); returns the domain (for the
/// polls, which do not look it up again) and the guest pid.
pub fn exec_start(
    c: &Connect,
    key: &DomainKey,
    spec: &ExecSpec,
    timeout_secs: i32,
) -> Result<(Domain, i64), Error> {
    let d = lookup(c, key)?;
    let ret = command(&d, &exec_command(spec), timeout_secs)?;
    let pid = ret
        .get("pid")
        .and_then(Value::as_i64)
        .ok_or_else(|| unexpected("guest-exec", &ret))?;
    Ok((d, pid))
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

/// Looks the domain up and opens a guest file (`guest-file-open`, mode `r`,
/// `w` or `a`); returns the domain and the handle.
pub fn file_open(
    c: &Connect,
    key: &DomainKey,
    path: &str,
    mode: &str,
    timeout_secs: i32,
) -> Result<(Domain, i64), Error> {
    let d = lookup(c, key)?;
    let ret = command(
        &d,
        &json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": mode}}),
        timeout_secs,
    )?;
    let h = ret
        .as_i64()
        .ok_or_else(|| unexpected("guest-file-open", &ret))?;
    Ok((d, h))
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
pub fn freeze_status(
    c: &Connect,
    key: &DomainKey,
    timeout_secs: i32,
) -> Result<v1::GuestFreezeStatus, Error> {
    let d = lookup(c, key)?;
    let ret = command(
        &d,
        &json!({"execute": "guest-fsfreeze-status"}),
        timeout_secs,
    )?;
    ret.as_str()
        .map(convert::freeze_status)
        .ok_or_else(|| unexpected("guest-fsfreeze-status", &ret))
}

/// `virDomainFSFreeze`: freezes `mountpoints` (all when empty); returns
/// how many were frozen.
pub fn fs_freeze(c: &Connect, key: &DomainKey, mountpoints: &[String]) -> Result<u32, Error> {
    libvirt_sys::fs_freeze(&lookup(c, key)?, mountpoints)
}

/// `virDomainFSThaw`: thaws `mountpoints` (all when empty); returns how
/// many were thawed.
pub fn fs_thaw(c: &Connect, key: &DomainKey, mountpoints: &[String]) -> Result<u32, Error> {
    libvirt_sys::fs_thaw(&lookup(c, key)?, mountpoints)
}

/// `virDomainFSTrim` of `mountpoint` (all when `None`).
pub fn fs_trim(
    c: &Connect,
    key: &DomainKey,
    mountpoint: Option<&str>,
    minimum_bytes: u64,
) -> Result<(), Error> {
    libvirt_sys::fs_trim(&lookup(c, key)?, mountpoint, minimum_bytes)
}

/// `virDomainGetFSInfo`.
pub fn filesystems(c: &Connect, key: &DomainKey) -> Result<Vec<v1::GuestFilesystemMount>, Error> {
    let list = libvirt_sys::fs_info(&lookup(c, key)?)?;
    Ok(list.into_iter().map(convert::filesystem_mount).collect())
}

/// `virDomainGetGuestInfo` for the `types` groups (0: all), parsed.
pub fn guest_info(
    c: &Connect,
    key: &DomainKey,
    types: u32,
) -> Result<v1::GetGuestInfoResponse, Error> {
    let params = libvirt_sys::guest_info(&lookup(c, key)?, types)?;
    Ok(convert::guest_info(params))
}

/// `virDomainGetHostname` with `flags` (the source).
pub fn hostname(c: &Connect, key: &DomainKey, flags: u32) -> Result<String, Error> {
    Ok(lookup(c, key)?.hostname(flags)?)
}

/// `virDomainInterfaceAddresses` from `source`.
pub fn interface_addresses(
    c: &Connect,
    key: &DomainKey,
    source: u32,
) -> Result<Vec<v1::GuestInterface>, Error> {
    let list = lookup(c, key)?.interface_addresses(source, 0)?;
    Ok(convert::interfaces(list))
}

/// `virDomainGetTime`: seconds and nanoseconds since the Unix epoch.
pub fn time(c: &Connect, key: &DomainKey) -> Result<(i64, i32), Error> {
    Ok(lookup(c, key)?.time(0)?)
}

/// How to set the guest's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// To this many seconds and nanoseconds since the Unix epoch.
    At(i64, i32),
    /// From the domain's RTC.
    Sync,
}

/// `virDomainSetTime`.
pub fn set_time(c: &Connect, key: &DomainKey, to: SetTime) -> Result<(), Error> {
    let (secs, nanos, flags) = match to {
        SetTime::At(s, n) => (s, n, 0),
        SetTime::Sync => (0, 0, virt::sys::VIR_DOMAIN_TIME_SYNC),
    };
    Ok(lookup(c, key)?.set_time(secs, nanos, flags)?)
}

/// `virDomainSetUserPassword` (`flags`: ENCRYPTED or 0).
pub fn set_user_password(
    c: &Connect,
    key: &DomainKey,
    user: &str,
    password: &str,
    flags: u32,
) -> Result<(), Error> {
    lookup(c, key)?.set_user_password(user, password, flags)?;
    Ok(())
}

/// `virDomainAuthorizedSSHKeysGet`.
pub fn authorized_keys(c: &Connect, key: &DomainKey, user: &str) -> Result<Vec<String>, Error> {
    libvirt_sys::ssh_keys_get(&lookup(c, key)?, user)
}

/// `virDomainAuthorizedSSHKeysSet` (`flags`: APPEND or REMOVE).
pub fn set_authorized_keys(
    c: &Connect,
    key: &DomainKey,
    user: &str,
    keys: &[String],
    flags: u32,
) -> Result<(), Error> {
    libvirt_sys::ssh_keys_set(&lookup(c, key)?, user, keys, flags)
}

/// `virDomainGetGuestVcpus`, parsed.
pub fn guest_vcpus(c: &Connect, key: &DomainKey) -> Result<v1::GetGuestVcpusResponse, Error> {
    convert::guest_vcpus(libvirt_sys::guest_vcpus(&lookup(c, key)?)?)
}

/// `virDomainSetGuestVcpus`: `cpumap` is a cpu list like `1,3`.
pub fn set_guest_vcpus(
    c: &Connect,
    key: &DomainKey,
    cpumap: &str,
    online: bool,
) -> Result<(), Error> {
    libvirt_sys::set_guest_vcpus(&lookup(c, key)?, cpumap, online)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn agent_timeouts_follow_the_deadline() {
        assert_eq!(agent_timeout(None), DEFAULT_AGENT_TIMEOUT_SECS);
        let soon = Instant::now() + Duration::from_millis(1500);
        assert_eq!(agent_timeout(Some(soon)), 2);
        assert_eq!(agent_timeout(Some(Instant::now())), 1);
        let far = Instant::now() + Duration::from_secs(10_000);
        assert_eq!(agent_timeout(Some(far)), MAX_AGENT_TIMEOUT_SECS);
    }

    #[test]
    fn command_timeouts() {
        // Unset: as every agent call.
        assert_eq!(command_timeout(None, None), DEFAULT_AGENT_TIMEOUT_SECS);
        // Rounded up to whole seconds.
        assert_eq!(command_timeout(Some(Duration::from_millis(1200)), None), 2);
        assert_eq!(command_timeout(Some(Duration::from_secs(300)), None), 300);
        // Never past the deadline.
        let soon = Instant::now() + Duration::from_millis(2500);
        assert_eq!(
            command_timeout(Some(Duration::from_secs(60)), Some(soon)),
            3
        );
        assert_eq!(command_timeout(Some(Duration::from_secs(1)), Some(soon)), 1);
    }

    #[test]
    fn exec_commands() {
        let spec = ExecSpec {
            path: "/bin/cat".into(),
            args: vec!["-".into()],
            env: vec![],
            stdin: b"hi".to_vec(),
            capture_output: true,
        };
        let c = exec_command(&spec);
        assert_eq!(c["execute"], "guest-exec");
        assert_eq!(c["arguments"]["input-data"], "aGk=");
        assert!(c["arguments"].get("env").is_none());
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
}
