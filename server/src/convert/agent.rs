//! `GuestAgentService` conversions: requests into validated `ops` inputs
//! (every bad field of a request in one `INVALID_ARGUMENT`), libvirt's and
//! the agent's answers into messages, and the libvirt flag bits of the
//! agent calls. Written once; handlers and `ops` call these.

use std::time::Duration;

use libvirt_grpc::v1;
use virt::sys;

use crate::{
    error::Error,
    libvirt_sys::{FsInfo, TypedValue},
    ops::{
        agent::{ExecSpec, SetTime, MAX_AGENT_TIMEOUT_SECS},
        guest_exec::ExecItem,
        guest_file::ReadItem,
    },
    validate::{self, Violations},
};

/// Largest file ReadGuestFile / WriteGuestFile move in one call.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest exec stdin.
pub const MAX_STDIN: usize = 1024 * 1024;

/// A raw agent command, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// The command, re-serialised (no NUL byte can reach libvirt: JSON
    /// escapes it).
    pub json: String,
    /// The caller's timeout, in (0, 300 s].
    pub timeout: Option<Duration>,
}

/// The agent timeout field: unset, or more than 0 and at most 300 s.
pub fn agent_timeout_field(
    field: &str,
    d: Option<&prost_types::Duration>,
) -> Result<Option<Duration>, Error> {
    let Some(d) = d else { return Ok(None) };
    let d = super::time::span(field, d)?;
    let max = Duration::from_secs(MAX_AGENT_TIMEOUT_SECS as u64);
    if d.is_zero() || d > max {
        return Err(Error::invalid(
            field,
            format!("must be more than 0 and at most {} s", max.as_secs()),
        ));
    }
    Ok(Some(d))
}

impl TryFrom<&v1::RunGuestAgentCommandRequest> for RawCommand {
    type Error = Error;

    fn try_from(r: &v1::RunGuestAgentCommandRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        let json = v.check(
            serde_json::from_str::<serde_json::Value>(&r.command_json)
                .map_err(|e| Error::invalid("command_json", format!("is not JSON: {e}")))
                .and_then(|cmd| {
                    if cmd.get("execute").is_some_and(serde_json::Value::is_string) {
                        Ok(cmd.to_string())
                    } else {
                        Err(Error::invalid(
                            "command_json",
                            "must be an object with an \"execute\" string",
                        ))
                    }
                }),
        );
        let timeout = v.check(agent_timeout_field("timeout", r.timeout.as_ref()));
        v.done(
            json.zip(timeout)
                .map(|(json, timeout)| RawCommand { json, timeout }),
        )
    }
}

impl TryFrom<v1::ExecGuestCommandRequest> for ExecSpec {
    type Error = Error;

    fn try_from(r: v1::ExecGuestCommandRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        v.check(validate::absolute_path("path", &r.path));
        for (i, a) in r.args.iter().enumerate() {
            v.check(validate::text(&format!("args[{i}]"), a));
        }
        for (i, e) in r.env.iter().enumerate() {
            let field = format!("env[{i}]");
            if v.check(validate::text(&field, e)).is_some() && !e.contains('=') {
                v.add(field, "must be NAME=value");
            }
        }
        if r.stdin.len() > MAX_STDIN {
            v.add("stdin", "is larger than 1 MiB");
        }
        v.finish()?;
        Ok(ExecSpec {
            path: r.path,
            args: r.args,
            env: r.env,
            stdin: r.stdin,
            capture_output: !r.discard_output,
        })
    }
}

/// A guest file range to read, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRange {
    /// Absolute path in the guest.
    pub path: String,
    /// Where to start.
    pub offset: i64,
    /// How many bytes at most; 0: to the end (64 MiB at most either way).
    pub length: u64,
}

impl TryFrom<&v1::ReadGuestFileRequest> for ReadRange {
    type Error = Error;

    fn try_from(r: &v1::ReadGuestFileRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        v.check(validate::absolute_path("path", &r.path));
        let offset = v.check(
            i64::try_from(r.offset_bytes)
                .map_err(|_| Error::invalid("offset_bytes", "is more than 2^63 - 1")),
        );
        if r.length_bytes > MAX_FILE_BYTES {
            v.add("length_bytes", "is more than 64 MiB: read it in parts");
        }
        v.done(offset.map(|offset| ReadRange {
            path: r.path.clone(),
            offset,
            length: r.length_bytes,
        }))
    }
}

/// The guest file to write: its absolute path and the open mode (`w` or `a`).
pub fn write_target(t: &v1::WriteGuestFileTarget) -> Result<(String, &'static str), Error> {
    validate::absolute_path("target.path", &t.path)?;
    Ok((t.path.clone(), if t.append { "a" } else { "w" }))
}

/// Absolute mount points (empty: all).
pub fn mountpoints(mps: &[String]) -> Result<Vec<String>, Error> {
    let mut v = Violations::default();
    for (i, m) in mps.iter().enumerate() {
        v.check(validate::absolute_path(&format!("mountpoints[{i}]"), m));
    }
    v.finish()?;
    Ok(mps.to_vec())
}

/// The mount point to trim (`None`: all) and the minimum range.
pub fn trim(r: &v1::TrimGuestFilesystemsRequest) -> Result<(Option<String>, u64), Error> {
    if r.mountpoint.is_empty() {
        return Ok((None, r.minimum_bytes));
    }
    validate::absolute_path("mountpoint", &r.mountpoint)?;
    Ok((Some(r.mountpoint.clone()), r.minimum_bytes))
}

/// libvirt's VIR_DOMAIN_GUEST_INFO_* bit for a kind.
fn guest_info_bit(kind: v1::GuestInfoKind) -> u32 {
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

/// The `types` bits of virDomainGetGuestInfo (0, libvirt's "all", for no
/// kind).
pub fn guest_info_types(kinds: &[i32]) -> Result<u32, Error> {
    let mut v = Violations::default();
    let mut types = 0;
    for (i, k) in kinds.iter().enumerate() {
        match v1::GuestInfoKind::try_from(*k) {
            Ok(kind) if kind != v1::GuestInfoKind::Unspecified => types |= guest_info_bit(kind),
            _ => v.add(format!("kinds[{i}]"), "unknown kind"),
        }
    }
    v.finish()?;
    Ok(types)
}

/// virDomainGetHostname's flags for a source (0: the driver's default; the
/// test driver accepts no flag at all).
pub fn hostname_flags(source: i32) -> Result<u32, Error> {
    use v1::GuestHostnameSource as S;
    Ok(
        match S::try_from(source).map_err(|_| Error::invalid("source", "unknown source"))? {
            S::Unspecified => 0,
            S::Agent => sys::VIR_DOMAIN_GET_HOSTNAME_AGENT,
            S::Lease => sys::VIR_DOMAIN_GET_HOSTNAME_LEASE,
        },
    )
}

/// virDomainInterfaceAddresses' source (UNSPECIFIED: the agent).
pub fn interface_source(source: i32) -> Result<u32, Error> {
    use v1::GuestInterfaceAddressSource as S;
    Ok(
        match S::try_from(source).map_err(|_| Error::invalid("source", "unknown source"))? {
            S::Unspecified | S::Agent => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            S::Lease => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            S::Arp => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
        },
    )
}

/// How to set the guest clock: exactly one of `time` and `sync`.
pub fn set_time(r: &v1::SetGuestTimeRequest) -> Result<SetTime, Error> {
    match (&r.time, r.sync) {
        (Some(_), true) => Err(Error::invalid("time", "must be unset when sync is set")),
        (None, true) => Ok(SetTime::Sync),
        (None, false) => Err(Error::invalid("time", "is required unless sync is set")),
        (Some(t), false) => {
            if t.seconds < 0 || t.nanos < 0 || t.nanos >= 1_000_000_000 {
                return Err(Error::invalid(
                    "time",
                    "must not be before the Unix epoch, with nanos in [0, 1e9)",
                ));
            }
            Ok(SetTime::At(t.seconds, t.nanos))
        }
    }
}

/// The `user` field: required, no NUL bytes.
fn user(v: &mut Violations, user: &str) {
    v.check(validate::required_text("user", user));
}

/// Most keys one change may carry: libvirt's remote protocol refuses more
/// (REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX).
pub const MAX_KEYS: usize = 2048;

/// Longest key line accepted (an OpenSSH key with options and a comment is
/// a few KiB at most).
pub const MAX_KEY_BYTES: usize = 16 << 10;

/// Keys: at least one and at most [`MAX_KEYS`], each one line of at most
/// [`MAX_KEY_BYTES`].
fn keys(v: &mut Violations, keys: &[String]) {
    if keys.is_empty() {
        v.add("keys", "at least one key is required");
    }
    if keys.len() > MAX_KEYS {
        v.add(
            "keys",
            format!(
                "{} keys; at most {MAX_KEYS} in one call (libvirt's limit)",
                keys.len()
            ),
        );
        return;
    }
    for (i, k) in keys.iter().enumerate() {
        let field = format!("keys[{i}]");
        if v.check(validate::required_text(&field, k)).is_some()
            && v.check(validate::max_bytes(&field, k, MAX_KEY_BYTES))
                .is_some()
            && k.contains('\n')
        {
            v.add(field, "must be one line");
        }
    }
}

/// A password change: user, password, and libvirt's flags.
pub fn password(r: &v1::SetGuestUserPasswordRequest) -> Result<u32, Error> {
    let mut v = Violations::default();
    user(&mut v, &r.user);
    v.check(validate::required_text("password", &r.password));
    v.finish()?;
    Ok(if r.encrypted {
        sys::VIR_DOMAIN_PASSWORD_ENCRYPTED
    } else {
        0
    })
}

/// The user of a key listing.
pub fn key_user(u: &str) -> Result<(), Error> {
    let mut v = Violations::default();
    user(&mut v, u);
    v.finish()
}

/// Which way a key change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Append the keys.
    Add,
    /// Remove the keys.
    Remove,
}

/// A key change: checks the user and keys; virDomainAuthorizedSSHKeysSet's
/// flags for it.
pub fn key_change(u: &str, ks: &[String], change: KeyChange) -> Result<u32, Error> {
    let mut v = Violations::default();
    user(&mut v, u);
    keys(&mut v, ks);
    v.finish()?;
    Ok(match change {
        KeyChange::Add => sys::VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND,
        KeyChange::Remove => sys::VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE,
    })
}

/// The cpu list (`1,3`) and the online flag of a SetGuestVcpus.
pub fn set_vcpus(r: &v1::SetGuestVcpusRequest) -> Result<(String, bool), Error> {
    let mut v = Violations::default();
    if r.vcpus.is_empty() {
        v.add("vcpus", "at least one vCPU is required");
    }
    use v1::GuestVcpuState as S;
    let online = match S::try_from(r.state) {
        Ok(S::Online) => Some(true),
        Ok(S::Offline) => Some(false),
        Ok(S::Unspecified) => {
            v.add("state", "is required (ONLINE or OFFLINE)");
            None
        }
        Err(_) => {
            v.add("state", "unknown state");
            None
        }
    };
    let map = r
        .vcpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    v.done(online.map(|o| (map, o)))
}

/// A point in time from seconds and nanoseconds since the Unix epoch.
pub fn timestamp(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds,
        nanos: nanos.clamp(0, 999_999_999),
    }
}

/// The agent's freeze status word.
pub fn freeze_status(s: &str) -> v1::GuestFreezeStatus {
    match s {
        "thawed" => v1::GuestFreezeStatus::Thawed,
        "frozen" => v1::GuestFreezeStatus::Frozen,
        _ => v1::GuestFreezeStatus::Unknown,
    }
}

/// One virDomainGetFSInfo entry.
pub fn filesystem_mount(f: FsInfo) -> v1::GuestFilesystemMount {
    v1::GuestFilesystemMount {
        mountpoint: f.mountpoint,
        name: f.name,
        fstype: f.fstype,
        disk_aliases: f.dev_aliases,
    }
}

/// An address family: libvirt's number (virDomainInterfaceAddresses) or
/// the guest info's word.
fn ip_type_code(code: i64) -> v1::GuestIpAddressType {
    match u32::try_from(code) {
        Ok(sys::VIR_IP_ADDR_TYPE_IPV4) => v1::GuestIpAddressType::Ipv4,
        Ok(sys::VIR_IP_ADDR_TYPE_IPV6) => v1::GuestIpAddressType::Ipv6,
        _ => v1::GuestIpAddressType::Unknown,
    }
}

fn ip_type_word(word: &str) -> v1::GuestIpAddressType {
    match word {
        "ipv4" => v1::GuestIpAddressType::Ipv4,
        "ipv6" => v1::GuestIpAddressType::Ipv6,
        _ => v1::GuestIpAddressType::Unknown,
    }
}

/// libvirt's interface list.
pub fn interfaces(list: Vec<virt::domain::Interface>) -> Vec<v1::GuestInterface> {
    list.into_iter()
        .map(|i| v1::GuestInterface {
            name: i.name,
            hwaddr: i.hwaddr.unwrap_or_default(),
            addresses: i
                .addrs
                .into_iter()
                .map(|a| v1::GuestIpAddress {
                    r#type: ip_type_code(a.typed) as i32,
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

/// A login time in milliseconds since the Unix epoch.
fn login_time(ms: u64) -> Option<prost_types::Timestamp> {
    let ms = i64::try_from(ms).ok()?;
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

/// virDomainGetGuestInfo's typed parameters as the answer.
pub fn guest_info(params: Vec<(String, TypedValue)>) -> v1::GetGuestInfoResponse {
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
        .map(|i| {
            let k = format!("user.{i}.login-time");
            v1::GuestUser {
                name: p.str(&format!("user.{i}.name")),
                domain: p.str(&format!("user.{i}.domain")),
                login_time: p.has(&k).then(|| login_time(p.u64(&k))).flatten(),
            }
        })
        .collect();
    let timezone =
        (p.has("timezone.name") || p.has("timezone.offset")).then(|| v1::GuestTimezone {
            name: p.str("timezone.name"),
            utc_offset: p.has("timezone.offset").then(|| prost_types::Duration {
                seconds: p.i64("timezone.offset"),
                nanos: 0,
            }),
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
                    .map(|j| v1::GuestIpAddress {
                        r#type: ip_type_word(&p.str(&f(&format!("addr.{j}.type")))) as i32,
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

/// virDomainGetGuestVcpus' typed parameters as the answer.
pub fn guest_vcpus(params: Vec<(String, TypedValue)>) -> Result<v1::GetGuestVcpusResponse, Error> {
    let p = Params(params.into_iter().collect());
    Ok(v1::GetGuestVcpusResponse {
        vcpus: parse_cpu_list(&p.str("vcpus"))?,
        online: parse_cpu_list(&p.str("online"))?,
        offlinable: parse_cpu_list(&p.str("offlinable"))?,
    })
}

impl From<ExecItem> for v1::ExecGuestCommandResponse {
    fn from(item: ExecItem) -> Self {
        use v1::exec_guest_command_response::Item;
        let item = match item {
            ExecItem::Started { pid } => Item::Started(v1::GuestExecStarted { pid }),
            ExecItem::Stdout(b) => Item::Stdout(b),
            ExecItem::Stderr(b) => Item::Stderr(b),
            ExecItem::Exited {
                exit_code,
                signal,
                stdout_truncated,
                stderr_truncated,
            } => {
                use v1::guest_exec_exited::Status as S;
                Item::Exited(v1::GuestExecExited {
                    status: match (exit_code, signal) {
                        (_, Some(sig)) => Some(S::Signal(sig)),
                        (Some(code), None) => Some(S::ExitCode(code)),
                        (None, None) => None,
                    },
                    stdout_truncated,
                    stderr_truncated,
                })
            }
        };
        v1::ExecGuestCommandResponse { item: Some(item) }
    }
}

impl From<ReadItem> for v1::ReadGuestFileResponse {
    fn from(item: ReadItem) -> Self {
        use v1::read_guest_file_response::Item;
        let item = match item {
            ReadItem::Started {
                file_size,
                expected,
            } => Item::Started(v1::ReadGuestFileStarted {
                file_size_bytes: file_size,
                expected_bytes: expected,
            }),
            ReadItem::Data(d) => Item::Data(d),
        };
        v1::ReadGuestFileResponse { item: Some(item) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn agent_timeouts_are_bounded() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(agent_timeout_field("t", None).unwrap(), None);
        assert_eq!(
            agent_timeout_field("t", Some(&d(300, 0))).unwrap(),
            Some(Duration::from_secs(300))
        );
        assert!(agent_timeout_field("t", Some(&d(300, 1))).is_err());
        assert!(agent_timeout_field("t", Some(&d(0, 0))).is_err());
        assert!(agent_timeout_field("t", Some(&d(-1, 0))).is_err());
    }

    #[test]
    fn exec_specs_report_every_bad_field() {
        let r = v1::ExecGuestCommandRequest {
            path: "rel".into(),
            args: vec!["a\0".into()],
            env: vec!["NOEQUALS".into()],
            stdin: vec![0; MAX_STDIN + 1],
            ..Default::default()
        };
        assert_eq!(
            fields(ExecSpec::try_from(r).unwrap_err()),
            ["path", "args[0]", "env[0]", "stdin"]
        );
    }

    #[test]
    fn set_time_needs_one_of_time_and_sync() {
        let mut r = v1::SetGuestTimeRequest::default();
        assert!(set_time(&r).is_err());
        r.sync = true;
        assert_eq!(set_time(&r).unwrap(), SetTime::Sync);
        r.time = Some(timestamp(5, 0));
        assert!(set_time(&r).is_err());
        r.sync = false;
        assert_eq!(set_time(&r).unwrap(), SetTime::At(5, 0));
    }

    #[test]
    fn vcpus_keys_and_mountpoints() {
        let r = v1::SetGuestVcpusRequest {
            vcpus: vec![1, 3],
            state: v1::GuestVcpuState::Offline as i32,
            ..Default::default()
        };
        assert_eq!(set_vcpus(&r).unwrap(), ("1,3".to_owned(), false));
        let r = v1::SetGuestVcpusRequest::default();
        assert_eq!(fields(set_vcpus(&r).unwrap_err()), ["vcpus", "state"]);
        let add = KeyChange::Add;
        assert_eq!(
            key_change("u", &["ssh-ed25519 AAAA a".into()], add).unwrap(),
            sys::VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND
        );
        assert_eq!(
            fields(key_change("", &[], add).unwrap_err()),
            ["user", "keys"]
        );
        assert!(key_change("u", &["a\nb".into()], KeyChange::Remove).is_err());
        let many = vec!["ssh-ed25519 AAAA a".to_owned(); MAX_KEYS + 1];
        assert_eq!(fields(key_change("u", &many, add).unwrap_err()), ["keys"]);
        assert!(key_change("u", &many[..MAX_KEYS], add).is_ok());
        let long = "a".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            fields(key_change("u", &[long], add).unwrap_err()),
            ["keys[0]"]
        );
        assert!(mountpoints(&["/".into()]).is_ok());
        assert!(mountpoints(&["rel".into()]).is_err());
        assert_eq!(guest_info_types(&[]).unwrap(), 0);
        assert_eq!(
            fields(guest_info_types(&[0, 99]).unwrap_err()),
            ["kinds[0]", "kinds[1]"]
        );
    }

    #[test]
    fn guest_info_parses() {
        let s = |v: &str| TypedValue::String(v.into());
        let params = vec![
            ("os.id".to_owned(), s("debian")),
            ("hostname".to_owned(), s("h")),
            ("user.count".to_owned(), TypedValue::UInt(1)),
            ("user.0.name".to_owned(), s("root")),
            ("user.0.login-time".to_owned(), TypedValue::UInt(1_500)),
            ("timezone.offset".to_owned(), TypedValue::Int(-3600)),
            ("if.count".to_owned(), TypedValue::UInt(1)),
            ("if.0.name".to_owned(), s("lo")),
            ("if.0.addr.count".to_owned(), TypedValue::UInt(2)),
            ("if.0.addr.0.type".to_owned(), s("ipv4")),
            ("if.0.addr.0.addr".to_owned(), s("127.0.0.1")),
            ("if.0.addr.0.prefix".to_owned(), TypedValue::UInt(8)),
            ("if.0.addr.1.type".to_owned(), s("ipx")),
        ];
        let r = guest_info(params);
        assert_eq!(r.os.unwrap().id, "debian");
        assert_eq!(r.hostname, "h");
        let t = r.users[0].login_time.unwrap();
        assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
        assert_eq!(r.timezone.unwrap().utc_offset.unwrap().seconds, -3600);
        let a = &r.interfaces[0].addresses;
        assert_eq!(a[0].address, "127.0.0.1");
        assert_eq!(a[0].prefix, 8);
        assert_eq!(a[0].r#type, v1::GuestIpAddressType::Ipv4 as i32);
        assert_eq!(a[1].r#type, v1::GuestIpAddressType::Unknown as i32);
    }

    #[test]
    fn freeze_words() {
        assert_eq!(freeze_status("frozen"), v1::GuestFreezeStatus::Frozen);
        assert_eq!(freeze_status("thawed"), v1::GuestFreezeStatus::Thawed);
        assert_eq!(freeze_status("new"), v1::GuestFreezeStatus::Unknown);
    }
}
