//! DomainService conversions: requests into validated `ops::domain` inputs
//! and libvirt flag bits (every bad field of a request in one
//! `INVALID_ARGUMENT`), and `ops::domain` answers into messages (bytes for
//! KiB, `Duration`s for nanoseconds, enums for libvirt's numbers).

use libvirt_grpc::v1;
use prost_types::Duration;
use virt::sys;

use super::{
    flags_of,
    state::{domain_state, domain_state_reason},
};
use crate::{
    error::Error,
    libvirt_sys::TypedValue,
    ops::domain::{self as ops, DomainInfo, MetadataTarget, StatsRecord},
    render, validate,
};

/// Longest a `SendDomainKey` may hold its keys: a key press, not a hold-down.
pub const MAX_KEY_HOLD_MS: u32 = 60_000;

/// Most domains one `GetDomainStats` may name.
pub const MAX_STATS_DOMAINS: usize = 1000;

/// A byte count as the KiB libvirt takes, rounded up to a whole KiB, within
/// what libvirt holds (`validate::MAX_MEMORY_KIB`).
pub fn kib_ceil(field: &str, bytes: u64) -> Result<u64, Error> {
    let kib = bytes.div_ceil(1024);
    validate::memory_kib(field, kib)?;
    Ok(kib)
}

/// libvirt's KiB as bytes (saturating: libvirt's sizes fit).
pub fn kib_to_bytes(kib: u64) -> u64 {
    kib.saturating_mul(1024)
}

/// Nanoseconds as a `Duration`.
pub fn nanos(ns: u64) -> Duration {
    Duration {
        seconds: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: (ns % 1_000_000_000) as i32,
    }
}

impl From<DomainInfo> for v1::Domain {
    fn from(d: DomainInfo) -> Self {
        v1::Domain {
            host: d.host,
            name: d.name,
            uuid: d.uuid,
            id: d.id,
            state: domain_state(d.state) as i32,
            state_reason: domain_state_reason(d.state, d.reason) as i32,
            state_reason_code: d.reason,
            memory_bytes: kib_to_bytes(d.memory_kib),
            max_memory_bytes: kib_to_bytes(d.max_memory_kib),
            vcpus: d.vcpus,
            cpu_time: (d.view == ops::View::Full).then(|| nanos(d.cpu_time_ns)),
            autostart: d.autostart,
            persistent: d.persistent,
            os_type: d.os_type,
            has_managed_save: d.has_managed_save,
        }
    }
}

/// The message for an optional domain (one that may be gone).
pub fn domain(d: Option<DomainInfo>) -> Option<v1::Domain> {
    d.map(v1::Domain::from)
}

/// A closed-set enum field: its value, or a violation naming `field`.
fn enum_field<E: TryFrom<i32>>(v: &mut validate::Violations, field: &str, raw: i32) -> Option<E> {
    match E::try_from(raw) {
        Ok(e) => Some(e),
        Err(_) => {
            v.add(field, format!("unknown value {raw}"));
            None
        }
    }
}

/// A request's `view` (unspecified means FULL).
pub fn view(raw: i32) -> Result<ops::View, Error> {
    match v1::DomainView::try_from(raw) {
        Ok(v1::DomainView::Basic) => Ok(ops::View::Basic),
        Ok(v1::DomainView::Full | v1::DomainView::Unspecified) => Ok(ops::View::Full),
        Err(_) => Err(Error::invalid("view", format!("unknown value {raw}"))),
    }
}

/// The ListDomains filter, validated.
pub fn list_filter(r: &v1::ListDomainsRequest, limit: usize) -> Result<ops::ListFilter, Error> {
    use v1::{AutostartFilter as A, PersistenceFilter as P, RunFilter as R};
    let mut v = validate::Violations::default();
    v.check(validate::text("name_prefix", &r.name_prefix));
    let after = v.check(crate::services::paging::after(&r.page_token));
    let mut flags = 0;
    match enum_field(&mut v, "run_filter", r.run_filter) {
        Some(R::Active) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE,
        Some(R::Inactive) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_INACTIVE,
        _ => {}
    }
    match enum_field(&mut v, "persistence_filter", r.persistence_filter) {
        Some(P::Persistent) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
        Some(P::Transient) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_TRANSIENT,
        _ => {}
    }
    match enum_field(&mut v, "autostart_filter", r.autostart_filter) {
        Some(A::Autostart) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
        Some(A::NoAutostart) => flags |= sys::VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART,
        _ => {}
    }
    let mut states = Vec::new();
    for s in &r.states {
        match v1::DomainState::try_from(*s) {
            Ok(v1::DomainState::Unspecified) | Err(_) => {
                v.add("states", format!("unknown state {s}"))
            }
            Ok(st) => states.push(st),
        }
    }
    let view = v.check(view(r.view));
    v.done(after.zip(view).map(|(after, view)| ops::ListFilter {
        flags,
        name_prefix: r.name_prefix.clone(),
        states,
        after,
        limit,
        view,
    }))
}

/// The definition of a define or create request: raw XML (checked before
/// libvirt sees it) or a validated spec.
pub fn definition(
    xml: Option<String>,
    spec: Option<v1::DomainSpec>,
) -> Result<ops::Definition, Error> {
    match (xml, spec) {
        (Some(xml), _) => {
            validate::required_xml("xml", &xml)?;
            Ok(ops::Definition::Xml(xml))
        }
        (None, Some(spec)) => {
            render::domain::validate_spec(&spec)?;
            Ok(ops::Definition::Spec(Box::new(spec)))
        }
        (None, None) => Err(Error::invalid("source", "set one of xml or spec")),
    }
}

/// VIR_DOMAIN_XML_* for GetDomainXml.
pub fn xml_flags(r: &v1::GetDomainXmlRequest) -> u32 {
    flags_of(&[
        (r.inactive, sys::VIR_DOMAIN_XML_INACTIVE),
        (r.secure, sys::VIR_DOMAIN_XML_SECURE),
        (r.update_cpu, sys::VIR_DOMAIN_XML_UPDATE_CPU),
        (r.migratable, sys::VIR_DOMAIN_XML_MIGRATABLE),
    ])
}

/// VIR_DOMAIN_UNDEFINE_* for UndefineDomain.
pub fn undefine_flags(r: &v1::UndefineDomainRequest) -> Result<u32, Error> {
    let mut v = validate::Violations::default();
    let nvram = match enum_field(&mut v, "nvram", r.nvram) {
        Some(v1::NvramAction::Remove) => sys::VIR_DOMAIN_UNDEFINE_NVRAM,
        Some(v1::NvramAction::Keep) => sys::VIR_DOMAIN_UNDEFINE_KEEP_NVRAM,
        _ => 0,
    };
    v.finish()?;
    Ok(nvram
        | flags_of(&[
            (r.remove_managed_save, sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE),
            (
                r.remove_snapshots_metadata,
                sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            ),
            (
                r.remove_checkpoints_metadata,
                sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
            ),
        ]))
}

/// VIR_DOMAIN_START_* for CreateDomain.
pub fn create_flags(r: &v1::CreateDomainRequest) -> u32 {
    flags_of(&[
        (r.start_paused, sys::VIR_DOMAIN_START_PAUSED),
        (r.autodestroy, sys::VIR_DOMAIN_START_AUTODESTROY),
    ])
}

/// VIR_DOMAIN_START_* for StartDomain.
pub fn start_flags(r: &v1::StartDomainRequest) -> u32 {
    flags_of(&[
        (r.paused, sys::VIR_DOMAIN_START_PAUSED),
        (r.force_boot, sys::VIR_DOMAIN_START_FORCE_BOOT),
        (r.bypass_cache, sys::VIR_DOMAIN_START_BYPASS_CACHE),
    ])
}

/// VIR_DOMAIN_SHUTDOWN_* for a shutdown mode (virDomainReboot shares the
/// values); unspecified is 0, the hypervisor's default.
pub fn shutdown_flags(mode: i32) -> Result<u32, Error> {
    use v1::ShutdownMode as M;
    Ok(
        match M::try_from(mode).map_err(|_| Error::invalid("mode", "unknown shutdown mode"))? {
            M::Unspecified => 0,
            M::Acpi => sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            M::Agent => sys::VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
            M::Initctl => sys::VIR_DOMAIN_SHUTDOWN_INITCTL,
            M::Signal => sys::VIR_DOMAIN_SHUTDOWN_SIGNAL,
            M::Paravirt => sys::VIR_DOMAIN_SHUTDOWN_PARAVIRT,
        },
    )
}

/// VIR_DOMAIN_DESTROY_* for StopDomain.
pub fn stop_flags(graceful: bool) -> u32 {
    if graceful {
        sys::VIR_DOMAIN_DESTROY_GRACEFUL
    } else {
        sys::VIR_DOMAIN_DESTROY_DEFAULT
    }
}

/// VIR_DOMAIN_SAVE_* for a restore state (field `field`) and the cache flag.
pub fn save_flags(field: &str, state: i32, bypass_cache: bool) -> Result<u32, Error> {
    use v1::RestoreState as S;
    let state = match S::try_from(state) {
        Ok(S::Unspecified) => 0,
        Ok(S::Running) => sys::VIR_DOMAIN_SAVE_RUNNING,
        Ok(S::Paused) => sys::VIR_DOMAIN_SAVE_PAUSED,
        Err(_) => return Err(Error::invalid(field, format!("unknown value {state}"))),
    };
    Ok(state | flags_of(&[(bypass_cache, sys::VIR_DOMAIN_SAVE_BYPASS_CACHE)]))
}

/// libvirt's VIR_DOMAIN_AFFECT_* flags for a scope; none set means CURRENT.
pub fn scope_flags(scope: Option<&v1::ModifyScope>) -> u32 {
    let s = scope.cloned().unwrap_or_default();
    sys::VIR_DOMAIN_AFFECT_CURRENT
        | flags_of(&[
            (s.live, sys::VIR_DOMAIN_AFFECT_LIVE),
            (s.config, sys::VIR_DOMAIN_AFFECT_CONFIG),
        ])
}

/// CONFIG for `config`, else CURRENT (reads).
pub fn read_flags(config: bool) -> u32 {
    if config {
        sys::VIR_DOMAIN_AFFECT_CONFIG
    } else {
        sys::VIR_DOMAIN_AFFECT_CURRENT
    }
}

/// SetDomainVcpus: the count and VIR_DOMAIN_AFFECT_* | VCPU_MAXIMUM.
pub fn set_vcpus(r: &v1::SetDomainVcpusRequest) -> Result<(u32, u32), Error> {
    if r.vcpus == 0 {
        return Err(Error::invalid("vcpus", "must be at least 1"));
    }
    let max = flags_of(&[(r.maximum, sys::VIR_DOMAIN_VCPU_MAXIMUM)]);
    Ok((r.vcpus, scope_flags(r.scope.as_ref()) | max))
}

/// SetDomainMemory: KiB (rounded up) and VIR_DOMAIN_AFFECT_* | MEM_MAXIMUM.
pub fn set_memory(r: &v1::SetDomainMemoryRequest) -> Result<(u64, u32), Error> {
    if r.memory_bytes == 0 {
        return Err(Error::invalid("memory_bytes", "must be greater than zero"));
    }
    let kib = kib_ceil("memory_bytes", r.memory_bytes)?;
    let max = flags_of(&[(r.maximum, sys::VIR_DOMAIN_MEM_MAXIMUM)]);
    Ok((kib, scope_flags(r.scope.as_ref()) | max))
}

/// A device request's XML, checked.
pub fn device_xml(xml: &str) -> Result<(), Error> {
    validate::required_xml("xml", xml)
}

/// VIR_DOMAIN_AFFECT_* (| DEVICE_MODIFY_FORCE) for UpdateDomainDevice.
pub fn update_device_flags(r: &v1::UpdateDomainDeviceRequest) -> u32 {
    scope_flags(r.scope.as_ref()) | flags_of(&[(r.force, sys::VIR_DOMAIN_DEVICE_MODIFY_FORCE)])
}

/// libvirt's VIR_DOMAIN_METADATA_* kind; UNSPECIFIED is INVALID_ARGUMENT.
fn metadata_kind(v: &mut validate::Violations, kind: i32) -> Option<i32> {
    use v1::MetadataKind as K;
    match K::try_from(kind) {
        Ok(K::Description) => Some(sys::VIR_DOMAIN_METADATA_DESCRIPTION as i32),
        Ok(K::Title) => Some(sys::VIR_DOMAIN_METADATA_TITLE as i32),
        Ok(K::Element) => Some(sys::VIR_DOMAIN_METADATA_ELEMENT as i32),
        _ => {
            v.add("kind", "choose DESCRIPTION, TITLE or ELEMENT");
            None
        }
    }
}

/// GetDomainMetadata, validated.
pub fn get_metadata(r: &v1::GetDomainMetadataRequest) -> Result<MetadataTarget, Error> {
    let mut v = validate::Violations::default();
    let kind = metadata_kind(&mut v, r.kind);
    if !r.uri.is_empty() {
        v.check(validate::namespace_uri("uri", &r.uri));
    }
    if kind == Some(sys::VIR_DOMAIN_METADATA_ELEMENT as i32) && r.uri.is_empty() {
        v.add("uri", "is required for ELEMENT metadata");
    }
    v.done(kind.map(|kind| MetadataTarget {
        kind,
        uri: (!r.uri.is_empty()).then(|| r.uri.clone()),
        flags: read_flags(r.config),
    }))
}

/// What SetDomainMetadata writes: the target, the value (`None` removes)
/// and the namespace prefix (ELEMENT only).
pub type MetadataWrite = (MetadataTarget, Option<String>, Option<String>);

/// SetDomainMetadata, validated.
pub fn set_metadata(r: v1::SetDomainMetadataRequest) -> Result<MetadataWrite, Error> {
    let mut v = validate::Violations::default();
    let kind = metadata_kind(&mut v, r.kind);
    v.check(validate::text("key", &r.key));
    let element = kind == Some(sys::VIR_DOMAIN_METADATA_ELEMENT as i32);
    if element && !r.key.is_empty() {
        v.check(validate::xml_prefix("key", &r.key));
    }
    if element && !r.uri.is_empty() {
        v.check(validate::namespace_uri("uri", &r.uri));
    } else {
        v.check(validate::text("uri", &r.uri));
    }
    // An ELEMENT value is XML that libvirt parses; a title or description
    // is text, held to the same size cap.
    if element {
        v.check(validate::xml("value", &r.value));
    } else {
        v.check(validate::text("value", &r.value));
        v.check(validate::max_bytes(
            "value",
            &r.value,
            validate::MAX_XML_BYTES,
        ));
    }
    if element && r.key.is_empty() {
        v.add("key", "is required for ELEMENT metadata");
    }
    if element && r.uri.is_empty() {
        v.add("uri", "is required for ELEMENT metadata");
    }
    let flags = scope_flags(r.scope.as_ref());
    let value = (!r.value.is_empty()).then_some(r.value);
    let key = element.then_some(r.key);
    let uri = element.then_some(r.uri);
    v.done(kind.map(|kind| (MetadataTarget { kind, uri, flags }, value, key)))
}

/// VIR_DOMAIN_STATS_* for the requested groups; none means every group.
pub fn stats_groups(groups: &[i32]) -> Result<u32, Error> {
    use v1::DomainStatsGroup as G;
    const ALL: [G; 6] = [
        G::State,
        G::Cpu,
        G::Balloon,
        G::Vcpu,
        G::Interface,
        G::Block,
    ];
    let bit = |g: G| match g {
        G::Unspecified => 0,
        G::State => sys::VIR_DOMAIN_STATS_STATE,
        G::Cpu => sys::VIR_DOMAIN_STATS_CPU_TOTAL,
        G::Balloon => sys::VIR_DOMAIN_STATS_BALLOON,
        G::Vcpu => sys::VIR_DOMAIN_STATS_VCPU,
        G::Interface => sys::VIR_DOMAIN_STATS_INTERFACE,
        G::Block => sys::VIR_DOMAIN_STATS_BLOCK,
    };
    if groups.is_empty() {
        return Ok(ALL.into_iter().map(bit).fold(0, |a, b| a | b));
    }
    let mut v = validate::Violations::default();
    let mut flags = 0;
    for (i, g) in groups.iter().enumerate() {
        match G::try_from(*g) {
            Ok(G::Unspecified) | Err(_) => v.add(format!("groups[{i}]"), "unknown group"),
            Ok(g) => flags |= bit(g),
        }
    }
    v.finish()?;
    Ok(flags)
}

/// The API's vCPU state for libvirt's virVcpuState.
fn vcpu_state(state: i64) -> v1::VcpuState {
    match u32::try_from(state) {
        Ok(sys::VIR_VCPU_OFFLINE) => v1::VcpuState::Offline,
        Ok(sys::VIR_VCPU_RUNNING) => v1::VcpuState::Running,
        Ok(sys::VIR_VCPU_BLOCKED) => v1::VcpuState::Blocked,
        _ => v1::VcpuState::Unknown,
    }
}

/// One bulk statistics record as a message.
pub fn stats(host: &str, r: StatsRecord) -> v1::DomainStats {
    let get = |k: &str| r.params.iter().find(|(f, _)| f == k).map(|(_, v)| v);
    let u = |k: &str| get(k).and_then(TypedValue::as_u64);
    let i = |k: &str| get(k).and_then(TypedValue::as_i64);
    let bytes = |k: &str| u(k).map(kib_to_bytes);
    let time = |k: &str| u(k).map(nanos);
    let text = |k: &str| {
        get(k)
            .and_then(TypedValue::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let has = |prefix: &str| r.params.iter().any(|(f, _)| f.starts_with(prefix));
    let state = i("state.state").and_then(|s| i32::try_from(s).ok());
    let reason = i("state.reason")
        .and_then(|s| i32::try_from(s).ok())
        .unwrap_or(0);
    let mut out = v1::DomainStats {
        host: host.to_owned(),
        state: state.map(|s| domain_state(s) as i32).unwrap_or_default(),
        state_reason: state
            .map(|s| domain_state_reason(s, reason) as i32)
            .unwrap_or_default(),
        state_reason_code: reason,
        ..Default::default()
    };
    if has("cpu.") {
        out.cpu = Some(v1::CpuStats {
            cpu_time: time("cpu.time"),
            user_time: time("cpu.user"),
            system_time: time("cpu.system"),
        });
    }
    if has("balloon.") {
        out.balloon = Some(v1::BalloonStats {
            current_bytes: bytes("balloon.current"),
            maximum_bytes: bytes("balloon.maximum"),
            unused_bytes: bytes("balloon.unused"),
            usable_bytes: bytes("balloon.usable"),
            rss_bytes: bytes("balloon.rss"),
            available_bytes: bytes("balloon.available"),
        });
    }
    if let Some(n) = u("vcpu.maximum").or(u("vcpu.current")) {
        for idx in 0..n {
            let p = |k: &str| format!("vcpu.{idx}.{k}");
            if get(&p("state")).is_none() && get(&p("time")).is_none() {
                continue;
            }
            out.vcpus.push(v1::VcpuStats {
                index: idx as u32,
                state: i(&p("state")).map(vcpu_state).unwrap_or_default() as i32,
                time: time(&p("time")),
            });
        }
    }
    for idx in 0..u("net.count").unwrap_or(0) {
        let p = |k: &str| format!("net.{idx}.{k}");
        out.interfaces.push(v1::InterfaceStats {
            name: text(&p("name")),
            rx_bytes: u(&p("rx.bytes")),
            rx_packets: u(&p("rx.pkts")),
            rx_errors: u(&p("rx.errs")),
            rx_drops: u(&p("rx.drop")),
            tx_bytes: u(&p("tx.bytes")),
            tx_packets: u(&p("tx.pkts")),
            tx_errors: u(&p("tx.errs")),
            tx_drops: u(&p("tx.drop")),
        });
    }
    for idx in 0..u("block.count").unwrap_or(0) {
        let p = |k: &str| format!("block.{idx}.{k}");
        out.blocks.push(v1::BlockStats {
            name: text(&p("name")),
            path: text(&p("path")),
            read_requests: u(&p("rd.reqs")),
            read_bytes: u(&p("rd.bytes")),
            write_requests: u(&p("wr.reqs")),
            write_bytes: u(&p("wr.bytes")),
            capacity_bytes: u(&p("capacity")),
            allocation_bytes: u(&p("allocation")),
            physical_bytes: u(&p("physical")),
        });
    }
    out.name = r.name;
    out.uuid = r.uuid;
    out
}

/// Largest chunk of a screenshot stream: well under gRPC's 4 MiB default.
pub const SCREENSHOT_CHUNK_BYTES: usize = 1 << 20;

/// A screenshot as its stream: `info`, then chunks of at most 1 MiB.
pub fn screenshot_items(shot: ops::Screenshot) -> Vec<v1::ScreenshotDomainResponse> {
    use v1::screenshot_domain_response::Item;
    let info = v1::ScreenshotInfo {
        source_mime_type: shot.source_mime_type,
        size_bytes: shot.png.len() as u64,
    };
    std::iter::once(Item::Info(info))
        .chain(
            shot.png
                .chunks(SCREENSHOT_CHUNK_BYTES)
                .map(|c| Item::Chunk(c.to_vec())),
        )
        .map(|item| v1::ScreenshotDomainResponse { item: Some(item) })
        .collect()
}

/// The code set (VIR_KEYCODE_SET_*); unspecified means Linux.
fn keycode_set(v: i32) -> Result<u32, Error> {
    use v1::KeyCodeSet as K;
    Ok(
        match K::try_from(v).map_err(|_| Error::invalid("codeset", "unknown code set"))? {
            K::Unspecified | K::Linux => sys::VIR_KEYCODE_SET_LINUX,
            K::Xt => sys::VIR_KEYCODE_SET_XT,
            K::Atset1 => sys::VIR_KEYCODE_SET_ATSET1,
            K::Atset2 => sys::VIR_KEYCODE_SET_ATSET2,
            K::Atset3 => sys::VIR_KEYCODE_SET_ATSET3,
            K::Osx => sys::VIR_KEYCODE_SET_OSX,
            K::XtKbd => sys::VIR_KEYCODE_SET_XT_KBD,
            K::Usb => sys::VIR_KEYCODE_SET_USB,
            K::Win32 => sys::VIR_KEYCODE_SET_WIN32,
            K::Qnum => sys::VIR_KEYCODE_SET_QNUM,
        },
    )
}

/// A hold duration in whole milliseconds (rounded up); absent is 0,
/// libvirt's default; negative or above 60 s is INVALID_ARGUMENT.
fn hold_ms(d: Option<&Duration>) -> Result<u32, Error> {
    let Some(d) = d else { return Ok(0) };
    let field = "hold_duration";
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(Error::invalid(field, "must be a non-negative duration"));
    }
    let ms = u64::try_from(d.seconds)
        .unwrap_or(u64::MAX)
        .saturating_mul(1000)
        .saturating_add((d.nanos as u64).div_ceil(1_000_000));
    match u32::try_from(ms) {
        Ok(ms) if ms <= MAX_KEY_HOLD_MS => Ok(ms),
        _ => Err(Error::invalid(
            field,
            format!("is more than {} s", MAX_KEY_HOLD_MS / 1000),
        )),
    }
}

/// SendDomainKey: the code set, the hold in ms and the key codes, every bad
/// field reported.
pub fn send_key(r: v1::SendDomainKeyRequest) -> Result<(u32, u32, Vec<u32>), Error> {
    let mut v = validate::Violations::default();
    let codeset = v.check(keycode_set(r.codeset));
    let hold = v.check(hold_ms(r.hold_duration.as_ref()));
    if r.keycodes.is_empty() || r.keycodes.len() > 16 {
        v.add("keycodes", "give 1 to 16 key codes");
    }
    v.done(codeset.zip(hold).map(|(c, h)| (c, h, r.keycodes)))
}

/// Most host CPUs one pinning request may name.
const MAX_PIN_CPUS: usize = 4096;

/// Largest IOThread id accepted.
const MAX_IOTHREAD_ID: u32 = 4096;

/// The host CPUs of a pinning request: 1 to [`MAX_PIN_CPUS`] of them
/// (whether the host has them, the ops check).
fn pin_cpus(cpus: &[u32]) -> Result<(), Error> {
    if cpus.is_empty() {
        return Err(Error::invalid("cpus", "name at least one host CPU"));
    }
    if cpus.len() > MAX_PIN_CPUS {
        return Err(Error::invalid(
            "cpus",
            format!("at most {MAX_PIN_CPUS} host CPUs"),
        ));
    }
    Ok(())
}

/// PinDomainVcpu: the CPUs and VIR_DOMAIN_AFFECT_*.
pub fn pin_vcpu(r: &v1::PinDomainVcpuRequest) -> Result<u32, Error> {
    pin_cpus(&r.cpus)?;
    Ok(scope_flags(r.scope.as_ref()))
}

/// PinDomainEmulator: VIR_DOMAIN_AFFECT_*.
pub fn pin_emulator(r: &v1::PinDomainEmulatorRequest) -> Result<u32, Error> {
    pin_cpus(&r.cpus)?;
    Ok(scope_flags(r.scope.as_ref()))
}

/// An IOThread id: 1 to [`MAX_IOTHREAD_ID`].
fn iothread_id(id: u32) -> Result<u32, Error> {
    if id == 0 || id > MAX_IOTHREAD_ID {
        return Err(Error::invalid(
            "iothread_id",
            format!("1 to {MAX_IOTHREAD_ID}"),
        ));
    }
    Ok(id)
}

/// Add/DeleteDomainIOThread: the id and VIR_DOMAIN_AFFECT_*.
pub fn iothread_change(id: u32, scope: Option<&v1::ModifyScope>) -> Result<(u32, u32), Error> {
    Ok((iothread_id(id)?, scope_flags(scope)))
}

/// PinDomainIOThread: the id, the change and VIR_DOMAIN_AFFECT_*.
pub fn pin_iothread(
    r: v1::PinDomainIoThreadRequest,
) -> Result<(u32, crate::ops::threads::IoThreadChange, u32), Error> {
    let mut v = crate::validate::Violations::default();
    let id = v.check(iothread_id(r.iothread_id));
    let cpus = v.check(pin_cpus(&r.cpus));
    let (id, ()) = v.done(id.zip(cpus))?;
    Ok((
        id,
        crate::ops::threads::IoThreadChange::Pin(r.cpus),
        scope_flags(r.scope.as_ref()),
    ))
}

/// IOThreads as messages.
pub fn iothreads(t: Vec<crate::ops::threads::IoThread>) -> Vec<v1::IoThreadPinning> {
    t.into_iter()
        .map(|(iothread_id, cpus)| v1::IoThreadPinning { iothread_id, cpus })
        .collect()
}

/// GetDomainVcpuPinning: VIR_DOMAIN_AFFECT_CONFIG or CURRENT.
pub fn vcpu_pinning_flags(config: bool) -> u32 {
    read_flags(config)
}

/// The pin maps as messages, in vCPU order.
pub fn vcpu_pinning(maps: Vec<Vec<u32>>) -> Vec<v1::VcpuPinning> {
    maps.into_iter()
        .enumerate()
        .map(|(i, cpus)| v1::VcpuPinning {
            vcpu: i as u32,
            cpus,
        })
        .collect()
}

/// A domain job's statistics as the API's `DomainJob`. libvirt reports
/// times in milliseconds, sizes in bytes; a figure it did not report is 0
/// (a duration: unset).
pub fn job(j: ops::JobStats) -> v1::DomainJob {
    let num = |name: &str| {
        j.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_u64())
    };
    let n = |name: &str| num(name).unwrap_or(0);
    let ms = |name: &str| num(name).map(|v| nanos(v.saturating_mul(1_000_000)));
    let kind = match j.kind as u32 {
        sys::VIR_DOMAIN_JOB_NONE => v1::DomainJobType::None,
        sys::VIR_DOMAIN_JOB_BOUNDED => v1::DomainJobType::Bounded,
        sys::VIR_DOMAIN_JOB_UNBOUNDED => v1::DomainJobType::Unbounded,
        sys::VIR_DOMAIN_JOB_COMPLETED => v1::DomainJobType::Completed,
        sys::VIR_DOMAIN_JOB_FAILED => v1::DomainJobType::Failed,
        sys::VIR_DOMAIN_JOB_CANCELLED => v1::DomainJobType::Cancelled,
        _ => v1::DomainJobType::Unspecified,
    };
    let code = num("operation").and_then(|o| i32::try_from(o).ok());
    // The API's numbering is libvirt's plus one (UNKNOWN is libvirt's 0).
    let operation = match code {
        None => v1::JobOperation::Unspecified,
        Some(c) => {
            v1::JobOperation::try_from(c.saturating_add(1)).unwrap_or(v1::JobOperation::Unknown)
        }
    };
    v1::DomainJob {
        r#type: kind as i32,
        operation: operation as i32,
        operation_code: code.unwrap_or(0),
        elapsed: ms("time_elapsed"),
        remaining: ms("time_remaining"),
        data_total_bytes: n("data_total"),
        data_processed_bytes: n("data_processed"),
        data_remaining_bytes: n("data_remaining"),
        memory_total_bytes: n("memory_total"),
        memory_processed_bytes: n("memory_processed"),
        memory_remaining_bytes: n("memory_remaining"),
        memory_bytes_per_second: n("memory_bps"),
        memory_dirty_rate_pages_per_second: n("memory_dirty_rate"),
        memory_iterations: n("memory_iteration"),
        memory_page_size_bytes: n("memory_page_size"),
        disk_total_bytes: n("disk_total"),
        disk_processed_bytes: n("disk_processed"),
        disk_remaining_bytes: n("disk_remaining"),
        downtime: ms("downtime"),
        auto_converge_throttle_percent: num("auto_converge_throttle")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        error_message: j
            .params
            .iter()
            .find(|(n, _)| n == "errmsg")
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Largest migration bandwidth a request may ask for, in MiB/s (1 TiB/s).
pub const MAX_MIGRATION_BANDWIDTH_MIB: u64 = 1 << 20;

/// A migration request's options and progress interval, validated; `uri`
/// is the destination's migration URI (`HostConfig::migration_uri`).
pub fn migration(
    r: &v1::MigrateDomainRequest,
    uri: Option<String>,
) -> Result<(crate::ops::migrate::Migration, std::time::Duration), Error> {
    use std::time::Duration as Span;
    use v1::MigrationMode as M;
    let mut v = validate::Violations::default();
    let o = r.options.unwrap_or_default();
    let mut flags = 0;
    match enum_field(&mut v, "options.mode", o.mode) {
        Some(M::Unspecified | M::Live) => flags |= sys::VIR_MIGRATE_LIVE,
        Some(M::Paused) | None => {}
        Some(M::Offline) => {
            flags |= sys::VIR_MIGRATE_OFFLINE;
            if !o.persistent_destination {
                v.add(
                    "options.persistent_destination",
                    "an offline migration moves only the definition: set persistent_destination",
                );
            }
            if o.post_copy || o.copy_storage {
                v.add(
                    "options.mode",
                    "an offline migration copies no memory and no storage",
                );
            }
        }
    }
    for (on, flag) in [
        (o.persistent_destination, sys::VIR_MIGRATE_PERSIST_DEST),
        (o.undefine_source, sys::VIR_MIGRATE_UNDEFINE_SOURCE),
        (o.auto_converge, sys::VIR_MIGRATE_AUTO_CONVERGE),
        (o.post_copy, sys::VIR_MIGRATE_POSTCOPY),
        (o.copy_storage, sys::VIR_MIGRATE_NON_SHARED_DISK),
    ] {
        if on {
            flags |= flag;
        }
    }
    if o.bandwidth_mib_per_second > MAX_MIGRATION_BANDWIDTH_MIB {
        v.add(
            "options.bandwidth_mib_per_second",
            format!("must be at most {MAX_MIGRATION_BANDWIDTH_MIB}"),
        );
    }
    let max_downtime_ms = match &o.max_downtime {
        None => None,
        Some(d) => v
            .check(super::time::span_within(
                "options.max_downtime",
                d,
                Span::from_millis(1),
                Span::from_secs(3600),
                "1 ms and 1 hour",
            ))
            .map(|d| d.as_millis() as u64),
    };
    let interval = match &r.progress_interval {
        None => Some(Span::from_millis(500)),
        Some(d) => v.check(super::time::span_within(
            "progress_interval",
            d,
            Span::from_millis(100),
            Span::from_secs(60),
            "100 ms and 60 s",
        )),
    };
    if r.destination_host.is_empty() {
        v.add("destination_host", "is required");
    }
    v.done(interval.map(|i| {
        (
            crate::ops::migrate::Migration {
                flags,
                bandwidth_mib: o.bandwidth_mib_per_second,
                max_downtime_ms,
                uri,
            },
            i,
        )
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bytes_round_up_to_kib() {
        assert_eq!(kib_ceil("m", 0).unwrap(), 0);
        assert_eq!(kib_ceil("m", 1).unwrap(), 1);
        assert_eq!(kib_ceil("m", 1024).unwrap(), 1);
        assert_eq!(kib_ceil("m", 1025).unwrap(), 2);
        assert_eq!(
            kib_ceil("m", validate::MAX_MEMORY_KIB * 1024).unwrap(),
            validate::MAX_MEMORY_KIB
        );
        assert!(kib_ceil("m", validate::MAX_MEMORY_KIB * 1024 + 1).is_err());
        assert!(kib_ceil("m", u64::MAX).is_err());
    }

    #[test]
    fn durations() {
        let d = nanos(1_500_000_001);
        assert_eq!((d.seconds, d.nanos), (1, 500_000_001));
        let hold = |s, n| {
            hold_ms(Some(&Duration {
                seconds: s,
                nanos: n,
            }))
        };
        assert_eq!(hold_ms(None).unwrap(), 0);
        assert_eq!(hold(0, 1).unwrap(), 1);
        assert_eq!(hold(1, 0).unwrap(), 1000);
        assert_eq!(hold(60, 0).unwrap(), 60_000);
        assert!(hold(60, 1).is_err());
        assert!(hold(-1, 0).is_err());
        assert!(hold(i64::MAX, 0).is_err());
    }

    #[test]
    fn stats_groups_default_to_all() {
        let all = stats_groups(&[]).unwrap();
        for g in [
            sys::VIR_DOMAIN_STATS_STATE,
            sys::VIR_DOMAIN_STATS_CPU_TOTAL,
            sys::VIR_DOMAIN_STATS_BALLOON,
            sys::VIR_DOMAIN_STATS_VCPU,
            sys::VIR_DOMAIN_STATS_INTERFACE,
            sys::VIR_DOMAIN_STATS_BLOCK,
        ] {
            assert_ne!(all & g, 0);
        }
        assert_eq!(
            stats_groups(&[v1::DomainStatsGroup::Cpu as i32]).unwrap(),
            sys::VIR_DOMAIN_STATS_CPU_TOTAL
        );
        assert!(stats_groups(&[0]).is_err());
        assert!(stats_groups(&[99]).is_err());
    }

    #[test]
    fn restore_states_and_modes() {
        assert_eq!(save_flags("s", 0, false).unwrap(), 0);
        assert_eq!(
            save_flags("s", v1::RestoreState::Paused as i32, true).unwrap(),
            sys::VIR_DOMAIN_SAVE_PAUSED | sys::VIR_DOMAIN_SAVE_BYPASS_CACHE
        );
        assert!(save_flags("s", 9, false).is_err());
        assert_eq!(shutdown_flags(0).unwrap(), 0);
        assert!(shutdown_flags(99).is_err());
        assert_eq!(keycode_set(0).unwrap(), sys::VIR_KEYCODE_SET_LINUX);
        assert_eq!(scope_flags(None), sys::VIR_DOMAIN_AFFECT_CURRENT);
    }

    #[test]
    fn vcpu_states() {
        assert_eq!(vcpu_state(0), v1::VcpuState::Offline);
        assert_eq!(vcpu_state(1), v1::VcpuState::Running);
        assert_eq!(vcpu_state(2), v1::VcpuState::Blocked);
        assert_eq!(vcpu_state(7), v1::VcpuState::Unknown);
    }

    #[test]
    fn screenshots_chunk_under_a_mebibyte() {
        let shot = ops::Screenshot {
            png: vec![7; SCREENSHOT_CHUNK_BYTES * 2 + 5],
            source_mime_type: "image/png".into(),
        };
        let items = screenshot_items(shot);
        assert_eq!(items.len(), 4);
        use v1::screenshot_domain_response::Item;
        let Some(Item::Info(info)) = &items[0].item else {
            panic!("no info first")
        };
        assert_eq!(info.size_bytes, (SCREENSHOT_CHUNK_BYTES * 2 + 5) as u64);
        for it in &items[1..] {
            let Some(Item::Chunk(c)) = &it.item else {
                panic!("not a chunk")
            };
            assert!(c.len() <= SCREENSHOT_CHUNK_BYTES);
        }
    }

    #[test]
    fn migration_durations_are_bounded() {
        let ms = |n: i32| prost_types::Duration {
            seconds: 0,
            nanos: n * 1_000_000,
        };
        let req = |downtime: Option<prost_types::Duration>,
                   every: Option<prost_types::Duration>| {
            v1::MigrateDomainRequest {
                destination_host: "b".into(),
                options: Some(v1::MigrationOptions {
                    max_downtime: downtime,
                    ..Default::default()
                }),
                progress_interval: every,
                ..Default::default()
            }
        };
        let (m, every) = migration(&req(Some(ms(300)), Some(ms(250))), None).unwrap();
        assert_eq!(
            (m.max_downtime_ms, every),
            (Some(300), std::time::Duration::from_millis(250))
        );
        assert_eq!(m.flags, sys::VIR_MIGRATE_LIVE);
        let (m, every) = migration(&req(None, None), None).unwrap();
        assert_eq!(
            (m.max_downtime_ms, every),
            (None, std::time::Duration::from_millis(500))
        );
        for bad in [req(Some(ms(0)), None), req(None, Some(ms(50)))] {
            assert!(migration(&bad, None).is_err(), "{bad:?}");
        }
        let far = prost_types::Duration {
            seconds: 3601,
            nanos: 0,
        };
        assert!(migration(&req(Some(far), None), None).is_err());
    }
}
