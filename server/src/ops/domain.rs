//! Domain operations.

use libvirt_grpc::v1;
use virt::{connect::Connect, domain::Domain, sys};

use crate::{
    error::Error,
    libvirt_sys::{self, TypedValue},
    xml_query,
};

/// How a request identifies a domain, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainKey {
    /// By name.
    Name(String),
    /// By canonical UUID.
    Uuid(String),
    /// By the id of a running domain.
    Id(u32),
}

/// Finds a domain.
pub fn lookup(conn: &Connect, key: &DomainKey) -> Result<Domain, Error> {
    Ok(match key {
        DomainKey::Name(n) => conn.lookup_domain_by_name(n)?,
        DomainKey::Uuid(u) => conn.lookup_domain_by_uuid_string(u)?,
        DomainKey::Id(id) => conn.lookup_domain_by_id(*id)?,
    })
}

/// The proto enum for libvirt's virDomainState.
pub fn state_enum(state: i32) -> v1::DomainState {
    match state as u32 {
        sys::VIR_DOMAIN_NOSTATE => v1::DomainState::Nostate,
        sys::VIR_DOMAIN_RUNNING => v1::DomainState::Running,
        sys::VIR_DOMAIN_BLOCKED => v1::DomainState::Blocked,
        sys::VIR_DOMAIN_PAUSED => v1::DomainState::Paused,
        sys::VIR_DOMAIN_SHUTDOWN => v1::DomainState::Shutdown,
        sys::VIR_DOMAIN_SHUTOFF => v1::DomainState::Shutoff,
        sys::VIR_DOMAIN_CRASHED => v1::DomainState::Crashed,
        sys::VIR_DOMAIN_PMSUSPENDED => v1::DomainState::Pmsuspended,
        _ => v1::DomainState::Unspecified,
    }
}

/// libvirt's name for a state reason (as `virsh domstate --reason` prints).
pub fn reason_name(state: i32, reason: i32) -> &'static str {
    const RUNNING: &[&str] = &[
        "unknown",
        "booted",
        "migrated",
        "restored",
        "from snapshot",
        "unpaused",
        "migration canceled",
        "save canceled",
        "event wakeup",
        "crashed",
        "post-copy",
        "post-copy failed",
    ];
    const PAUSED: &[&str] = &[
        "unknown",
        "user",
        "migrating",
        "saving",
        "dumping",
        "I/O error",
        "watchdog",
        "from snapshot",
        "shutting down",
        "creating snapshot",
        "crashed",
        "starting up",
        "post-copy",
        "post-copy failed",
        "api error",
    ];
    const SHUTOFF: &[&str] = &[
        "unknown",
        "shutdown",
        "destroyed",
        "crashed",
        "migrated",
        "saved",
        "failed",
        "from snapshot",
        "daemon",
    ];
    const SHUTDOWN: &[&str] = &["unknown", "user"];
    const CRASHED: &[&str] = &["unknown", "panicked"];
    const OTHER: &[&str] = &["unknown"];
    let table = match state as u32 {
        sys::VIR_DOMAIN_RUNNING => RUNNING,
        sys::VIR_DOMAIN_PAUSED => PAUSED,
        sys::VIR_DOMAIN_SHUTOFF => SHUTOFF,
        sys::VIR_DOMAIN_SHUTDOWN => SHUTDOWN,
        sys::VIR_DOMAIN_CRASHED => CRASHED,
        _ => OTHER,
    };
    usize::try_from(reason)
        .ok()
        .and_then(|r| table.get(r))
        .copied()
        .unwrap_or("unknown")
}

/// Reads everything `v1::Domain` holds.
pub fn describe(host: &str, dom: &Domain) -> Result<v1::Domain, Error> {
    let info = dom.info()?;
    let (state, reason) = libvirt_sys::domain_state(dom)?;
    Ok(v1::Domain {
        host: host.to_owned(),
        name: dom.name()?,
        uuid: dom.uuid_string()?,
        id: dom.id().unwrap_or(0),
        state: state_enum(state) as i32,
        state_reason: reason,
        state_reason_name: reason_name(state, reason).to_owned(),
        memory_kib: info.memory,
        max_memory_kib: info.max_mem,
        // virDomainInfo's count is 16 bits wide; virDomainGetVcpusFlags is
        // exact (the 16-bit one is kept for a driver that lacks it).
        vcpus: dom
            .vcpus_flags(sys::VIR_DOMAIN_AFFECT_CURRENT)
            .unwrap_or(info.nr_virt_cpu),
        cpu_time_ns: info.cpu_time,
        autostart: dom.autostart()?,
        persistent: dom.is_persistent()?,
        os_type: dom.os_type()?,
        has_managed_save: dom.has_managed_save(0).unwrap_or(false),
    })
}

/// Filters of `ListDomains`, validated.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// libvirt's VIR_CONNECT_LIST_DOMAINS_* flags for run state and persistence.
    pub flags: u32,
    /// Name prefix.
    pub name_prefix: String,
    /// Accepted states; empty accepts all.
    pub states: Vec<v1::DomainState>,
    /// Only names strictly after this one (the page token).
    pub after: Option<String>,
    /// Page size.
    pub limit: usize,
}

/// Lists domains sorted by name; returns one page and whether more follow.
pub fn list(conn: &Connect, host: &str, f: &ListFilter) -> Result<(Vec<v1::Domain>, bool), Error> {
    let mut named: Vec<(String, Domain)> = Vec::new();
    for d in conn.list_all_domains(f.flags)? {
        let Some(name) = super::unless_vanished(d.name().map_err(Error::from))? else {
            continue;
        };
        if !name.starts_with(&f.name_prefix) {
            continue;
        }
        if let Some(after) = &f.after {
            if name.as_str() <= after.as_str() {
                continue;
            }
        }
        named.push((name, d));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let mut more = false;
    for (_, d) in named {
        let Some(desc) = super::unless_vanished(describe(host, &d))? else {
            continue;
        };
        if !f.states.is_empty() && !f.states.iter().any(|s| *s as i32 == desc.state) {
            continue;
        }
        if out.len() == f.limit {
            more = true;
            break;
        }
        out.push(desc);
    }
    Ok((out, more))
}

/// What a define or create request hands libvirt: raw XML (already checked
/// by `validate::required_xml`) or a validated structured spec.
#[derive(Debug, Clone)]
pub enum Definition {
    /// Raw domain XML.
    Xml(String),
    /// A spec the server renders.
    Spec(Box<v1::DomainSpec>),
}

impl Definition {
    /// The XML for libvirt, checked against what this host allows: a name
    /// is present, and the vCPU and IOThread counts are within the host's
    /// maximum for the domain type (libvirt allocates per-vCPU structures
    /// while parsing, so an absurd count must never reach it).
    fn to_checked_xml(&self, conn: &Connect) -> Result<String, Error> {
        match self {
            Definition::Spec(spec) => {
                let dtype = if spec.domain_type.is_empty() {
                    driver_domain_type(conn)?
                } else {
                    spec.domain_type.clone()
                };
                let max = conn.max_vcpus(Some(&dtype))?;
                crate::validate::vcpu_count("spec.vcpus", spec.vcpus.into(), max)?;
                crate::render::domain::render(spec, &dtype)
            }
            Definition::Xml(xml) => {
                check_raw_xml(conn, xml)?;
                Ok(xml.clone())
            }
        }
    }
}

/// The checks of [`Definition::to_checked_xml`] on raw XML. Values the
/// server cannot read (malformed XML, a count that is not a number) are left
/// for libvirt to refuse with its own message.
fn check_raw_xml(conn: &Connect, xml: &str) -> Result<(), Error> {
    if !xml_query::is_well_formed(xml) {
        return Ok(());
    }
    if xml_query::text(xml, &["domain", "name"]).is_none_or(|n| n.trim().is_empty()) {
        return Err(Error::invalid(
            "xml",
            "has no <name>: a domain definition needs one",
        ));
    }
    let counts = [
        ("xml.vcpu", xml_query::text(xml, &["domain", "vcpu"])),
        (
            "xml.vcpu.current",
            xml_query::attr(xml, &["domain", "vcpu"], "current"),
        ),
        (
            "xml.iothreads",
            xml_query::text(xml, &["domain", "iothreads"]),
        ),
    ];
    let counts: Vec<(&str, u64)> = counts
        .into_iter()
        .filter_map(|(f, v)| Some((f, v?.trim().parse::<u64>().ok()?)))
        .collect();
    if counts.is_empty() {
        return Ok(());
    }
    let dtype = xml_query::attr(xml, &["domain"], "type").unwrap_or_default();
    let max = conn.max_vcpus((!dtype.is_empty()).then_some(dtype.as_str()))?;
    for (field, n) in counts {
        crate::validate::vcpu_count(field, n, max)?;
    }
    Ok(())
}

/// Defines a persistent domain.
pub fn define(
    conn: &Connect,
    host: &str,
    def: &Definition,
    validate: bool,
) -> Result<v1::Domain, Error> {
    let xml = def.to_checked_xml(conn)?;
    let flags = if validate {
        sys::VIR_DOMAIN_DEFINE_VALIDATE
    } else {
        0
    };
    let dom = conn.define_domain_xml_flags(&xml, flags)?;
    describe(host, &dom)
}

/// Creates and starts a transient domain.
pub fn create(
    conn: &Connect,
    host: &str,
    def: &Definition,
    flags: u32,
) -> Result<v1::Domain, Error> {
    let xml = def.to_checked_xml(conn)?;
    // libvirt would start an inactive persistent domain of the same name and
    // UUID with this XML (and autodestroy it later): a create never touches
    // a domain that exists.
    if let Some(name) = xml_query::text(&xml, &["domain", "name"]) {
        match conn.lookup_domain_by_name(name.trim()) {
            Ok(_) => {
                return Err(Error::AlreadyExists(format!(
                    "domain '{}' already exists; StartDomain starts a defined domain",
                    name.trim()
                )))
            }
            Err(e) if e.code().to_raw() == sys::VIR_ERR_NO_DOMAIN => {}
            Err(e) => return Err(e.into()),
        }
    }
    let dom = conn.create_domain_xml(&xml, flags)?;
    describe(host, &dom)
}

/// Resumes a paused domain. Resuming one that runs is FAILED_PRECONDITION
/// on every driver (the test driver says "internal error"); the state is
/// read only after libvirt failed, so success costs no extra round trip.
pub fn resume(dom: &Domain) -> Result<(), Error> {
    let Err(e) = dom.resume() else {
        return Ok(());
    };
    if !crate::error::is_unclassified(&e) {
        // libvirt's own answer already says what is wrong (QEMU: "domain
        // is already running", OPERATION_INVALID); keep it and its details.
        return Err(e.into());
    }
    match libvirt_sys::domain_state(dom) {
        Ok((state, _)) if state as u32 == sys::VIR_DOMAIN_RUNNING => {
            Err(Error::OperationInvalid(format!(
                "Requested operation is not valid: domain '{}' is already running",
                dom.name()?
            )))
        }
        _ => Err(e.into()),
    }
}

/// The libvirt driver name of a connection, lower case ("test", "qemu").
pub fn driver_domain_type(conn: &Connect) -> Result<String, Error> {
    Ok(conn.driver_type()?.to_ascii_lowercase())
}

/// Typed statistics for a `DomainStats` record.
pub fn stats(conn: &Connect, doms: &[Domain], groups: u32) -> Result<Vec<v1::DomainStats>, Error> {
    let flags = if doms.is_empty() {
        sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    } else {
        0
    };
    let records =
        libvirt_sys::domain_stats(conn, doms, groups | sys::VIR_DOMAIN_STATS_STATE, flags)?;
    records.into_iter().map(|r| stats_record(&r)).collect()
}

fn stats_record(r: &libvirt_sys::StatsRecord) -> Result<v1::DomainStats, Error> {
    let get = |k: &str| r.params.iter().find(|(f, _)| f == k).map(|(_, v)| v);
    let u = |k: &str| get(k).and_then(TypedValue::as_u64);
    let mut out = v1::DomainStats {
        name: r.domain.name()?,
        uuid: r.domain.uuid_string()?,
        state: get("state.state")
            .and_then(TypedValue::as_i64)
            .map(|s| state_enum(s as i32) as i32)
            .unwrap_or_default(),
        ..Default::default()
    };
    if r.params.iter().any(|(f, _)| f.starts_with("cpu.")) {
        out.cpu = Some(v1::CpuStats {
            time_ns: u("cpu.time"),
            user_ns: u("cpu.user"),
            system_ns: u("cpu.system"),
        });
    }
    if r.params.iter().any(|(f, _)| f.starts_with("balloon.")) {
        out.balloon = Some(v1::BalloonStats {
            current_kib: u("balloon.current"),
            maximum_kib: u("balloon.maximum"),
            unused_kib: u("balloon.unused"),
            usable_kib: u("balloon.usable"),
            rss_kib: u("balloon.rss"),
            available_kib: u("balloon.available"),
        });
    }
    if let Some(n) = u("vcpu.maximum").or(u("vcpu.current")) {
        for i in 0..n {
            let p = |k: &str| format!("vcpu.{i}.{k}");
            if get(&p("state")).is_none() && get(&p("time")).is_none() {
                continue;
            }
            out.vcpus.push(v1::VcpuStats {
                index: i as u32,
                state: get(&p("state"))
                    .and_then(TypedValue::as_i64)
                    .map(|v| v as i32),
                time_ns: u(&p("time")),
            });
        }
    }
    for i in 0..u("net.count").unwrap_or(0) {
        let p = |k: &str| format!("net.{i}.{k}");
        out.interfaces.push(v1::InterfaceStats {
            name: get(&p("name"))
                .and_then(TypedValue::as_str)
                .unwrap_or_default()
                .to_owned(),
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
    for i in 0..u("block.count").unwrap_or(0) {
        let p = |k: &str| format!("block.{i}.{k}");
        out.blocks.push(v1::BlockStats {
            name: get(&p("name"))
                .and_then(TypedValue::as_str)
                .unwrap_or_default()
                .to_owned(),
            path: get(&p("path"))
                .and_then(TypedValue::as_str)
                .unwrap_or_default()
                .to_owned(),
            read_requests: u(&p("rd.reqs")),
            read_bytes: u(&p("rd.bytes")),
            write_requests: u(&p("wr.reqs")),
            write_bytes: u(&p("wr.bytes")),
            capacity_bytes: u(&p("capacity")),
            allocation_bytes: u(&p("allocation")),
            physical_bytes: u(&p("physical")),
        });
    }
    Ok(out)
}

/// Changes a device. libvirt reports a device the domain does not have as
/// INTERNAL_ERROR ("disk 'sdb' not found") here, where detach says
/// DEVICE_MISSING; both are a caller naming a missing device.
pub fn update_device(dom: &Domain, xml: &str, flags: u32) -> Result<(), Error> {
    match dom.update_device_flags(xml, flags) {
        Ok(_) => Ok(()),
        Err(e)
            if e.code().to_raw() == sys::VIR_ERR_INTERNAL_ERROR
                && e.message().ends_with("not found") =>
        {
            Err(Error::NotFound(e.message().to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Presses `keycodes` together for `hold_ms`. libvirt reports a key code
/// that has no translation in `codeset` as INTERNAL_ERROR (the test and QEMU
/// drivers alike); in this call the only input that can cause that is a key
/// code, so it is the caller's mistake.
pub fn send_key(
    dom: &Domain,
    codeset: u32,
    hold_ms: u32,
    keycodes: &mut [u32],
) -> Result<(), Error> {
    let n = keycodes.len() as i32;
    match dom.send_key(codeset, hold_ms, keycodes.as_mut_ptr(), n, 0) {
        Ok(_) => Ok(()),
        Err(e) if e.code().to_raw() == sys::VIR_ERR_INTERNAL_ERROR => {
            Err(Error::invalid("keycodes", e.message()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Largest screenshot accepted from the hypervisor (a 4K RGB frame is 24 MiB).
const MAX_SCREENSHOT_BYTES: usize = 64 << 20;

/// Takes a screenshot; returns the raw bytes and their MIME type.
pub fn screenshot(conn: &Connect, dom: &Domain, screen: u32) -> Result<(Vec<u8>, String), Error> {
    let stream = virt::stream::Stream::new(conn, 0)?;
    let mime = dom.screenshot(&stream, screen, 0)?;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.recv(&mut buf)?;
        if n <= 0 {
            break;
        }
        data.extend_from_slice(&buf[..n as usize]);
        if data.len() > MAX_SCREENSHOT_BYTES {
            // Best effort: the stream is abandoned either way.
            let _ = stream.abort();
            return Err(Error::internal("screenshot larger than 64 MiB"));
        }
    }
    stream.finish()?;
    Ok((data, mime))
}
