//! Conversions of the domain-internals RPCs (monitor, counters, tuning,
//! peeks, dumps): requests into validated `ops` inputs, `ops` answers into
//! messages.

use std::{collections::HashMap, time::Duration};

use libvirt_grpc::v1;
use virt::sys;

use super::{domain::scope_flags, time};
use crate::{
    error::Error,
    ops::{
        dump::DumpPlan,
        monitor::MonitorProtocol,
        peek::{AddressSpace, MAX_PEEK_BYTES},
        storage::VolumeKey,
    },
    validate,
};

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

/// Longest disk or interface name (a target or a host path) accepted.
pub const MAX_DEVICE_NAME_BYTES: usize = 4096;

/// A disk or interface name: present, no NUL, at most
/// [`MAX_DEVICE_NAME_BYTES`].
pub fn device_name(field: &str, name: &str) -> Result<String, Error> {
    validate::required_text(field, name)?;
    validate::max_bytes(field, name, MAX_DEVICE_NAME_BYTES)?;
    Ok(name.to_owned())
}

/// A libvirt counter (-1 or any negative: not reported).
fn counter(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// Nanoseconds as a Duration (negative: not reported).
fn nanos(v: Option<i64>) -> Option<prost_types::Duration> {
    counter(v).map(|ns| time::duration(Duration::from_nanos(ns)))
}

/// One disk's typed counters (virDomainBlockStatsFlags field names) as
/// the API's message.
pub fn block_stats(disk: String, f: &HashMap<String, i64>) -> v1::DomainBlockStats {
    let get = |name: &str| f.get(name).copied();
    v1::DomainBlockStats {
        disk,
        read_requests: counter(get("rd_operations")),
        read_bytes: counter(get("rd_bytes")),
        read_time: nanos(get("rd_total_times")),
        write_requests: counter(get("wr_operations")),
        write_bytes: counter(get("wr_bytes")),
        write_time: nanos(get("wr_total_times")),
        flush_requests: counter(get("flush_operations")),
        flush_time: nanos(get("flush_total_times")),
        errors: counter(get("errs")),
    }
}

/// One interface's counters as the API's message.
pub fn interface_stats(
    interface: String,
    s: &virt::domain::InterfaceStats,
) -> v1::DomainInterfaceStats {
    let c = |v: i64| counter(Some(v));
    v1::DomainInterfaceStats {
        interface,
        rx_bytes: c(s.rx_bytes),
        rx_packets: c(s.rx_packets),
        rx_errors: c(s.rx_errs),
        rx_drops: c(s.rx_drop),
        tx_bytes: c(s.tx_bytes),
        tx_packets: c(s.tx_packets),
        tx_errors: c(s.tx_errs),
        tx_drops: c(s.tx_drop),
    }
}

/// libvirt's memory statistics (tag, value) as the API's message: sizes
/// from KiB to bytes (saturating), LAST_UPDATE as a Timestamp, unknown tags
/// dropped.
pub fn memory_stats(stats: &[(u32, u64)]) -> v1::DomainMemoryStats {
    let mut m = v1::DomainMemoryStats::default();
    for &(tag, v) in stats {
        let bytes = Some(v.saturating_mul(1024));
        match tag {
            sys::VIR_DOMAIN_MEMORY_STAT_SWAP_IN => m.swap_in_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_SWAP_OUT => m.swap_out_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT => m.major_faults = Some(v),
            sys::VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT => m.minor_faults = Some(v),
            sys::VIR_DOMAIN_MEMORY_STAT_UNUSED => m.unused_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE => m.available_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON => m.actual_balloon_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_RSS => m.rss_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_USABLE => m.usable_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE => {
                m.last_update_time = Some(time::unix_seconds(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            sys::VIR_DOMAIN_MEMORY_STAT_DISK_CACHES => m.disk_caches_bytes = bytes,
            sys::VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC => m.hugetlb_page_allocations = Some(v),
            sys::VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL => m.hugetlb_page_failures = Some(v),
            _ => {}
        }
    }
    m
}

/// Disks with errors as the API's messages.
pub fn disk_errors(errors: Vec<(String, i32)>) -> Vec<v1::DomainDiskError> {
    use v1::DomainDiskErrorKind as K;
    errors
        .into_iter()
        .map(|(disk, code)| {
            let kind = match u32::try_from(code) {
                Ok(sys::VIR_DOMAIN_DISK_ERROR_UNSPEC) => K::IoError,
                Ok(sys::VIR_DOMAIN_DISK_ERROR_NO_SPACE) => K::NoSpace,
                _ => K::Unknown,
            };
            v1::DomainDiskError {
                disk,
                kind: kind as i32,
                kind_code: code,
            }
        })
        .collect()
}

/// Longest memory statistics period accepted: a day.
pub const MAX_MEMORY_STATS_PERIOD: Duration = Duration::from_secs(86_400);

/// SetDomainMemoryStatsPeriod: whole seconds (0 stops the collection) and
/// VIR_DOMAIN_AFFECT_* flags.
pub fn memory_stats_period(r: &v1::SetDomainMemoryStatsPeriodRequest) -> Result<(i32, u32), Error> {
    let d = match &r.period {
        None => Duration::ZERO,
        Some(p) => time::span_within(
            "period",
            p,
            Duration::ZERO,
            MAX_MEMORY_STATS_PERIOD,
            "0 and 86400 s",
        )?,
    };
    if d.subsec_nanos() != 0 {
        return Err(Error::invalid("period", "must be whole seconds"));
    }
    let seconds = i32::try_from(d.as_secs())
        .map_err(|_| Error::invalid("period", "must be between 0 and 86400 s"))?;
    Ok((seconds, scope_flags(r.scope.as_ref())))
}

/// RenameDomain: the new name, checked as a domain name.
pub fn new_name(r: &v1::RenameDomainRequest) -> Result<String, Error> {
    validate::object_name("new_name", &r.new_name)?;
    Ok(r.new_name.clone())
}

/// Most scheduler parameters one request sets.
pub const MAX_SCHEDULER_PARAMETERS: usize = 16;

/// The flags a scheduler change is read back with: the definition's
/// values when only `config` was set, else the current ones.
pub fn scheduler_read_flags(scope: Option<&v1::ModifyScope>) -> u32 {
    match scope {
        Some(s) if s.config && !s.live => sys::VIR_DOMAIN_AFFECT_CONFIG,
        _ => sys::VIR_DOMAIN_AFFECT_CURRENT,
    }
}

/// The flags of a scheduler read: the definition's values for `config`.
pub fn scheduler_get_flags(config: bool) -> u32 {
    if config {
        sys::VIR_DOMAIN_AFFECT_CONFIG
    } else {
        sys::VIR_DOMAIN_AFFECT_CURRENT
    }
}

/// A peek's range: a size of 1 to [`MAX_PEEK_BYTES`] whose end does not
/// overflow (`offset_field` names the start's field).
fn peek_range(offset_field: &str, offset: u64, size: u64) -> Result<usize, Error> {
    let mut v = validate::Violations::default();
    if size == 0 || size > MAX_PEEK_BYTES {
        v.add(
            "size_bytes",
            format!("must be between 1 and {MAX_PEEK_BYTES} bytes (libvirt's cap)"),
        );
    } else if offset.checked_add(size).is_none() {
        v.add(offset_field, "the range's end overflows 64 bits");
    }
    v.done(usize::try_from(size).ok())
}

/// PeekDomainBlock: the disk, offset and size, checked.
pub fn block_peek(r: &v1::PeekDomainBlockRequest) -> Result<(String, u64, usize), Error> {
    let mut v = validate::Violations::default();
    let disk = v.check(device_name("disk", &r.disk));
    let size = v.check(peek_range("offset_bytes", r.offset_bytes, r.size_bytes));
    v.done(disk.zip(size).map(|(d, n)| (d, r.offset_bytes, n)))
}

/// PeekDomainMemory: the address, size and address space, checked.
pub fn memory_peek(r: &v1::PeekDomainMemoryRequest) -> Result<(u64, usize, AddressSpace), Error> {
    use v1::MemoryAddressSpace as S;
    let mut v = validate::Violations::default();
    let size = v.check(peek_range("address", r.address, r.size_bytes));
    let space = match S::try_from(r.address_space) {
        Ok(S::Unspecified | S::Physical) => Some(AddressSpace::Physical),
        Ok(S::Virtual) => Some(AddressSpace::Virtual),
        Err(_) => {
            v.add("address_space", "unknown address space");
            None
        }
    };
    v.done(size.zip(space).map(|(n, s)| (r.address, n, s)))
}

/// CoreDumpDomain: the format and flags, checked (every format but raw
/// needs `memory_only`, as QEMU requires).
pub fn dump_plan(r: &v1::CoreDumpDomainRequest) -> Result<DumpPlan, Error> {
    plan_of(r.format, r.memory_only, r.live, r.then)
}

/// CoreDumpDomainToVolume: the plan, as for `CoreDumpDomain`, and the
/// volume's resolved key (every bad field of both in one error).
pub fn dump_to_volume_plan(
    r: &v1::CoreDumpDomainToVolumeRequest,
    volume: Result<VolumeKey, Error>,
) -> Result<(DumpPlan, VolumeKey), Error> {
    let mut v = validate::Violations::default();
    let plan = v.check(plan_of(r.format, r.memory_only, r.live, r.then));
    let volume = v.check(volume);
    v.done(plan.zip(volume))
}

/// A dump's format and flags from the request's fields.
fn plan_of(format: i32, memory_only: bool, live: bool, then: i32) -> Result<DumpPlan, Error> {
    use v1::{CoreDumpFormat as F, CoreDumpThen as T};
    let mut v = validate::Violations::default();
    let format = match F::try_from(format) {
        Ok(F::Unspecified | F::Raw) => Some(sys::VIR_DOMAIN_CORE_DUMP_FORMAT_RAW),
        Ok(F::KdumpZlib) => Some(sys::VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_ZLIB),
        Ok(F::KdumpLzo) => Some(sys::VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_LZO),
        Ok(F::KdumpSnappy) => Some(sys::VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_SNAPPY),
        Ok(F::WinDmp) => Some(sys::VIR_DOMAIN_CORE_DUMP_FORMAT_WIN_DMP),
        Err(_) => {
            v.add("format", "unknown format");
            None
        }
    };
    if format.is_some_and(|f| f != sys::VIR_DOMAIN_CORE_DUMP_FORMAT_RAW) && !memory_only {
        v.add("format", "every format but raw needs memory_only");
    }
    let then = match T::try_from(then) {
        Ok(T::Unspecified | T::Continue) => Some(0),
        Ok(T::Crash) => Some(sys::VIR_DUMP_CRASH),
        Ok(T::Reset) => Some(sys::VIR_DUMP_RESET),
        Err(_) => {
            v.add("then", "unknown value");
            None
        }
    };
    let flags = then.map(|t| {
        t | super::flags_of(&[
            (memory_only, sys::VIR_DUMP_MEMORY_ONLY),
            (live, sys::VIR_DUMP_LIVE),
        ])
    });
    v.done(
        format
            .zip(flags)
            .map(|(format, flags)| DumpPlan { format, flags }),
    )
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

    #[test]
    fn memory_stats_convert_kib_and_drop_unknown_tags() {
        let m = memory_stats(&[
            (sys::VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON, 2048),
            (sys::VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT, 7),
            (sys::VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE, 1_700_000_000),
            (99, 1),
        ]);
        assert_eq!(m.actual_balloon_bytes, Some(2 << 20));
        assert_eq!(m.major_faults, Some(7));
        assert_eq!(m.last_update_time.unwrap().seconds, 1_700_000_000);
        assert_eq!(m.rss_bytes, None);
    }

    #[test]
    fn block_counters_not_reported_stay_unset() {
        let f: HashMap<String, i64> = [
            ("rd_bytes".to_owned(), 512),
            ("errs".to_owned(), -1),
            ("rd_total_times".to_owned(), 1_500_000_000),
        ]
        .into_iter()
        .collect();
        let b = block_stats("vda".into(), &f);
        assert_eq!(b.read_bytes, Some(512));
        assert_eq!(b.errors, None);
        assert_eq!(b.write_bytes, None);
        let t = b.read_time.unwrap();
        assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
    }

    #[test]
    fn memory_stats_periods_are_whole_bounded_seconds() {
        let req = |seconds, nanos| v1::SetDomainMemoryStatsPeriodRequest {
            period: Some(prost_types::Duration { seconds, nanos }),
            ..Default::default()
        };
        assert_eq!(memory_stats_period(&req(5, 0)).unwrap().0, 5);
        assert_eq!(
            memory_stats_period(&v1::SetDomainMemoryStatsPeriodRequest::default())
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            fields(memory_stats_period(&req(1, 5)).unwrap_err()),
            ["period"]
        );
        assert_eq!(
            fields(memory_stats_period(&req(86_401, 0)).unwrap_err()),
            ["period"]
        );
        assert_eq!(
            fields(memory_stats_period(&req(-1, 0)).unwrap_err()),
            ["period"]
        );
    }

    #[test]
    fn scheduler_values_are_checked() {
        use crate::libvirt_sys::TypedValue;
        use v1::typed_parameter::Value;
        let p = |field: &str, value: Option<Value>| v1::TypedParameter {
            field: field.into(),
            r#type: 0,
            value,
        };
        let ok = crate::convert::tuning::typed_values(
            MAX_SCHEDULER_PARAMETERS,
            &[p("weight", Some(Value::UintValue(7)))],
        )
        .unwrap();
        assert_eq!(ok, [("weight".to_owned(), TypedValue::UInt(7))]);
        assert_eq!(
            fields(
                crate::convert::tuning::typed_values(MAX_SCHEDULER_PARAMETERS, &[]).unwrap_err()
            ),
            ["parameters"]
        );
        let twice = [
            p("weight", Some(Value::IntValue(1))),
            p("weight", Some(Value::IntValue(2))),
        ];
        assert_eq!(
            fields(
                crate::convert::tuning::typed_values(MAX_SCHEDULER_PARAMETERS, &twice).unwrap_err()
            ),
            ["parameters[1].field"]
        );
        let bad = [
            p("", Some(Value::IntValue(1))),
            p("x", None),
            p("y", Some(Value::DoubleValue(f64::NAN))),
            p(&"z".repeat(80), Some(Value::BoolValue(true))),
        ];
        assert_eq!(
            fields(
                crate::convert::tuning::typed_values(MAX_SCHEDULER_PARAMETERS, &bad).unwrap_err()
            ),
            [
                "parameters[0].field",
                "parameters[1].value",
                "parameters[2].double_value",
                "parameters[3].field"
            ]
        );
        let many: Vec<_> = (0..17)
            .map(|i| p(&format!("f{i}"), Some(Value::IntValue(1))))
            .collect();
        assert_eq!(
            fields(
                crate::convert::tuning::typed_values(MAX_SCHEDULER_PARAMETERS, &many).unwrap_err()
            ),
            ["parameters"]
        );
    }

    #[test]
    fn peeks_are_bounded() {
        let r = |offset_bytes, size_bytes| v1::PeekDomainBlockRequest {
            domain: None,
            disk: "vda".into(),
            offset_bytes,
            size_bytes,
        };
        assert_eq!(
            block_peek(&r(512, 65_536)).unwrap(),
            ("vda".into(), 512, 65_536)
        );
        assert_eq!(fields(block_peek(&r(0, 0)).unwrap_err()), ["size_bytes"]);
        assert_eq!(
            fields(block_peek(&r(0, 65_537)).unwrap_err()),
            ["size_bytes"]
        );
        assert_eq!(
            fields(block_peek(&r(u64::MAX, 2)).unwrap_err()),
            ["offset_bytes"]
        );
        let m = v1::PeekDomainMemoryRequest {
            address: 4096,
            size_bytes: 4096,
            address_space: 9,
            ..Default::default()
        };
        assert_eq!(fields(memory_peek(&m).unwrap_err()), ["address_space"]);
    }

    #[test]
    fn dump_plans() {
        let r = |format: v1::CoreDumpFormat, memory_only| v1::CoreDumpDomainRequest {
            format: format as i32,
            memory_only,
            then: v1::CoreDumpThen::Crash as i32,
            ..Default::default()
        };
        let p = dump_plan(&r(v1::CoreDumpFormat::Unspecified, false)).unwrap();
        assert_eq!(
            (p.format, p.flags),
            (sys::VIR_DOMAIN_CORE_DUMP_FORMAT_RAW, sys::VIR_DUMP_CRASH)
        );
        let p = dump_plan(&r(v1::CoreDumpFormat::KdumpZlib, true)).unwrap();
        assert_eq!(p.flags, sys::VIR_DUMP_CRASH | sys::VIR_DUMP_MEMORY_ONLY);
        assert_eq!(
            fields(dump_plan(&r(v1::CoreDumpFormat::KdumpLzo, false)).unwrap_err()),
            ["format"]
        );
        let mut bad = r(v1::CoreDumpFormat::Raw, false);
        bad.then = 9;
        assert_eq!(fields(dump_plan(&bad).unwrap_err()), ["then"]);
    }
}
