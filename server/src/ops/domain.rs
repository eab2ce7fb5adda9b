//! Domain operations: every libvirt call on a domain, as blocking functions
//! that take a validated [`DomainKey`], look the domain up themselves and
//! answer plain values ([`DomainInfo`], [`StatsRecord`], [`Screenshot`]);
//! `convert::domain` turns them into the API's messages. Flags arrive
//! computed (by `convert::domain`). Nothing here knows of gRPC.

use libvirt_grpc::v1;
use virt::{connect::Connect, domain::Domain, sys};

use super::unless_vanished;
use crate::{
    error::{self, Error},
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

/// Looks the domain up, applies one change to it, and reads it back: the
/// shape of every call that changes a domain and answers it.
fn changed(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    change: impl FnOnce(&Domain) -> Result<(), virt::error::Error>,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    change(&dom)?;
    describe(host, &dom)
}

/// Finds a domain.
pub fn lookup(conn: &Connect, key: &DomainKey) -> Result<Domain, Error> {
    Ok(match key {
        DomainKey::Name(n) => conn.lookup_domain_by_name(n)?,
        DomainKey::Uuid(u) => conn.lookup_domain_by_uuid_string(u)?,
        DomainKey::Id(id) => conn.lookup_domain_by_id(*id)?,
    })
}

/// One domain as libvirt reports it, in libvirt's units and numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// The configured host.
    pub host: String,
    /// The name.
    pub name: String,
    /// The UUID.
    pub uuid: String,
    /// The id while running, else 0.
    pub id: u32,
    /// libvirt's virDomainState.
    pub state: i32,
    /// libvirt's reason number for `state`.
    pub reason: i32,
    /// Current memory in KiB.
    pub memory_kib: u64,
    /// Maximum memory in KiB.
    pub max_memory_kib: u64,
    /// vCPUs in use.
    pub vcpus: u32,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Starts with the hypervisor.
    pub autostart: bool,
    /// Has a persistent definition.
    pub persistent: bool,
    /// The OS type.
    pub os_type: String,
    /// Has a managed save image.
    pub has_managed_save: bool,
}

/// libvirt's name for a state reason (as `virsh domstate --reason` prints),
/// for the events' `*_reason_name` fields until events carry
/// `DomainStateReason`.
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

/// Reads everything [`DomainInfo`] holds.
pub fn describe(host: &str, dom: &Domain) -> Result<DomainInfo, Error> {
    let info = dom.info()?;
    let (state, reason) = libvirt_sys::domain_state(dom)?;
    Ok(DomainInfo {
        host: host.to_owned(),
        name: dom.name()?,
        uuid: dom.uuid_string()?,
        id: dom.id().unwrap_or(0),
        state,
        reason,
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

/// [`describe`], or `None` when the domain no longer exists (a transient
/// domain that stopped).
fn describe_if_present(host: &str, dom: &Domain) -> Result<Option<DomainInfo>, Error> {
    unless_vanished(describe(host, dom))
}

/// The domain `key` names, described.
pub fn get(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    describe(host, &lookup(conn, key)?)
}

/// The domain's XML (`flags`: VIR_DOMAIN_XML_*).
pub fn xml(conn: &Connect, key: &DomainKey, flags: u32) -> Result<String, Error> {
    Ok(lookup(conn, key)?.xml_desc(flags)?)
}

/// Filters of `ListDomains`, validated.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// libvirt's VIR_CONNECT_LIST_DOMAINS_* flags for run state,
    /// persistence and autostart.
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
pub fn list(conn: &Connect, host: &str, f: &ListFilter) -> Result<(Vec<DomainInfo>, bool), Error> {
    let mut named: Vec<(String, Domain)> = Vec::new();
    for d in conn.list_all_domains(f.flags)? {
        let Some(name) = unless_vanished(d.name().map_err(Error::from))? else {
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
        let Some(desc) = unless_vanished(describe(host, &d))? else {
            continue;
        };
        let state = crate::convert::state::domain_state(desc.state);
        if !f.states.is_empty() && !f.states.contains(&state) {
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

/// The libvirt driver name of a connection, lower case ("test", "qemu").
pub fn driver_domain_type(conn: &Connect) -> Result<String, Error> {
    Ok(conn.driver_type()?.to_ascii_lowercase())
}

/// The existing domain's UUID for a spec that names no UUID, so that a
/// define of an existing name updates that domain (libvirt would otherwise
/// give the XML a new UUID and refuse it as a duplicate name).
fn existing_uuid(conn: &Connect, def: &Definition) -> Result<Option<String>, Error> {
    let Definition::Spec(spec) = def else {
        return Ok(None);
    };
    if !spec.uuid.is_empty() {
        return Ok(None);
    }
    match conn.lookup_domain_by_name(&spec.name) {
        Ok(d) => Ok(Some(d.uuid_string()?)),
        Err(e) if error::is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Defines a persistent domain (or updates the one of the same name).
pub fn define(
    conn: &Connect,
    host: &str,
    def: &Definition,
    validate: bool,
) -> Result<DomainInfo, Error> {
    let def = match (existing_uuid(conn, def)?, def) {
        (Some(uuid), Definition::Spec(spec)) => Definition::Spec(Box::new(v1::DomainSpec {
            uuid,
            ..(**spec).clone()
        })),
        _ => def.clone(),
    };
    let xml = def.to_checked_xml(conn)?;
    let flags = if validate {
        sys::VIR_DOMAIN_DEFINE_VALIDATE
    } else {
        0
    };
    let dom = conn.define_domain_xml_flags(&xml, flags)?;
    describe(host, &dom)
}

/// Removes a domain's definition (`flags`: VIR_DOMAIN_UNDEFINE_*); the
/// domain, now transient, when it was running, `None` when it is gone.
pub fn undefine(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    flags: u32,
) -> Result<Option<DomainInfo>, Error> {
    let dom = lookup(conn, key)?;
    let uuid = dom.uuid_string()?;
    dom.undefine_flags(flags)?;
    match conn.lookup_domain_by_uuid_string(&uuid) {
        Ok(d) => describe_if_present(host, &d),
        Err(e) if error::is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates and starts a transient domain (`flags`: VIR_DOMAIN_START_*).
pub fn create(
    conn: &Connect,
    host: &str,
    def: &Definition,
    flags: u32,
) -> Result<DomainInfo, Error> {
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
            Err(e) if error::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let dom = conn.create_domain_xml(&xml, flags)?;
    describe(host, &dom)
}

/// The error for a call that needs an inactive domain on a running one.
fn already_running(dom: &Domain) -> Result<Error, Error> {
    Ok(Error::OperationInvalid(format!(
        "Requested operation is not valid: domain '{}' is already running",
        dom.name()?
    )))
}

/// Starts a defined domain (`flags`: VIR_DOMAIN_START_*). A running domain
/// is OPERATION_INVALID on every driver (the test driver would say
/// "internal error").
pub fn start(conn: &Connect, key: &DomainKey, host: &str, flags: u32) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    if dom.is_active()? {
        return Err(already_running(&dom)?);
    }
    dom.create_with_flags(flags)?;
    describe(host, &dom)
}

/// Asks the guest to shut down (`flags`: VIR_DOMAIN_SHUTDOWN_*); the domain
/// right after, `None` when a transient one is already gone.
pub fn shutdown(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    flags: u32,
) -> Result<Option<DomainInfo>, Error> {
    let dom = lookup(conn, key)?;
    dom.shutdown_flags(flags)?;
    describe_if_present(host, &dom)
}

/// Asks the guest to reboot (virDomainReboot shares the shutdown flags).
pub fn reboot(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    flags: u32,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.reboot(flags)?;
        Ok(())
    })
}

/// Resets the domain.
pub fn reset(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.reset()?;
        Ok(())
    })
}

/// Stops the domain at once (virDomainDestroyFlags); the domain after,
/// `None` when it was transient.
pub fn stop(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    flags: u32,
) -> Result<Option<DomainInfo>, Error> {
    let dom = lookup(conn, key)?;
    let persistent = dom.is_persistent()?;
    dom.destroy_flags(flags)?;
    if persistent {
        describe(host, &dom).map(Some)
    } else {
        Ok(None)
    }
}

/// Pauses the domain.
pub fn suspend(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.suspend()?;
        Ok(())
    })
}

/// Resumes a paused domain. Resuming one that runs is FAILED_PRECONDITION
/// on every driver (the test driver says "internal error"); the state is
/// read only after libvirt failed, so success costs no extra round trip.
pub fn resume(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    if let Err(e) = dom.resume() {
        if !error::is_unclassified(&e) {
            // libvirt's own answer already says what is wrong (QEMU: "domain
            // is already running", OPERATION_INVALID); keep it and its details.
            return Err(e.into());
        }
        return match libvirt_sys::domain_state(&dom) {
            Ok((state, _)) if state as u32 == sys::VIR_DOMAIN_RUNNING => {
                Err(already_running(&dom)?)
            }
            _ => Err(e.into()),
        };
    }
    describe(host, &dom)
}

/// Saves the domain to `path` (`flags`: VIR_DOMAIN_SAVE_*) and stops it;
/// the domain after, `None` when it was transient.
pub fn save(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    path: &str,
    flags: u32,
) -> Result<Option<DomainInfo>, Error> {
    let dom = lookup(conn, key)?;
    let persistent = dom.is_persistent()?;
    libvirt_sys::domain_save(&dom, path, flags)?;
    if persistent {
        describe(host, &dom).map(Some)
    } else {
        Ok(None)
    }
}

/// Restores a domain from `path` (`flags`: VIR_DOMAIN_SAVE_*), found
/// afterwards by the UUID the image records.
pub fn restore(conn: &Connect, host: &str, path: &str, flags: u32) -> Result<DomainInfo, Error> {
    let image = conn.save_image_xml_desc(path, 0)?;
    let uuid = xml_query::text(&image, &["domain", "uuid"])
        .map(|u| u.trim().to_owned())
        .ok_or_else(|| Error::internal("the save image's XML has no <uuid>"))?;
    conn.restore_domain_flags(path, None, flags)?;
    describe(host, &conn.lookup_domain_by_uuid_string(&uuid)?)
}

/// Saves the domain to its managed save image (`flags`: VIR_DOMAIN_SAVE_*).
pub fn managed_save(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    flags: u32,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.managed_save(flags)?;
        Ok(())
    })
}

/// Removes the managed save image.
pub fn remove_managed_save(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.managed_save_remove(0)?;
        Ok(())
    })
}

/// Sets the autostart flag.
pub fn set_autostart(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    on: bool,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.set_autostart(on)?;
        Ok(())
    })
}

/// Sets the vCPU count (`flags`: VIR_DOMAIN_AFFECT_* | VIR_DOMAIN_VCPU_*).
pub fn set_vcpus(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    vcpus: u32,
    flags: u32,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.set_vcpus_flags(vcpus, flags)?;
        Ok(())
    })
}

/// Sets the memory in KiB (`flags`: VIR_DOMAIN_AFFECT_* | VIR_DOMAIN_MEM_*).
pub fn set_memory(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    kib: u64,
    flags: u32,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.set_memory_flags(kib, flags)?;
        Ok(())
    })
}

/// What a device call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChange {
    /// virDomainAttachDeviceFlags.
    Attach,
    /// virDomainDetachDeviceFlags.
    Detach,
    /// virDomainUpdateDeviceFlags.
    Update,
}

/// Attaches, detaches or updates a device (`flags`: VIR_DOMAIN_AFFECT_* and
/// for an update VIR_DOMAIN_DEVICE_MODIFY_FORCE). An update of a device the
/// domain does not have is NOT_FOUND: libvirt reports it as INTERNAL_ERROR
/// ("disk 'sdb' not found") where detach says DEVICE_MISSING.
pub fn change_device(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    change: DeviceChange,
    xml: &str,
    flags: u32,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    match change {
        DeviceChange::Attach => {
            dom.attach_device_flags(xml, flags)?;
        }
        DeviceChange::Detach => {
            dom.detach_device_flags(xml, flags)?;
        }
        DeviceChange::Update => match dom.update_device_flags(xml, flags) {
            Ok(_) => {}
            Err(e)
                if e.code().to_raw() == sys::VIR_ERR_INTERNAL_ERROR
                    && e.message().ends_with("not found") =>
            {
                return Err(Error::NotFound(e.message().to_owned()))
            }
            Err(e) => return Err(e.into()),
        },
    }
    describe(host, &dom)
}

/// Which metadata a metadata call reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTarget {
    /// libvirt's VIR_DOMAIN_METADATA_* kind.
    pub kind: i32,
    /// The namespace URI (ELEMENT only).
    pub uri: Option<String>,
    /// VIR_DOMAIN_AFFECT_* flags.
    pub flags: u32,
}

/// Reads metadata.
pub fn get_metadata(conn: &Connect, key: &DomainKey, t: &MetadataTarget) -> Result<String, Error> {
    Ok(lookup(conn, key)?.metadata(t.kind, t.uri.as_deref(), t.flags)?)
}

/// Writes metadata: `value` (`None` removes it) under prefix `key_prefix`
/// (ELEMENT only).
pub fn set_metadata(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    t: &MetadataTarget,
    value: Option<&str>,
    key_prefix: Option<&str>,
) -> Result<DomainInfo, Error> {
    changed(conn, key, host, |dom| {
        dom.set_metadata(t.kind, value, key_prefix, t.uri.as_deref(), t.flags)?;
        Ok(())
    })
}

/// The bulk statistics of one domain, as libvirt reported them.
#[derive(Debug, Clone)]
pub struct StatsRecord {
    /// The domain's name.
    pub name: String,
    /// The domain's UUID.
    pub uuid: String,
    /// The `(field, value)` pairs libvirt reported.
    pub params: Vec<(String, TypedValue)>,
}

/// Bulk statistics (`groups`: VIR_DOMAIN_STATS_*) of the domains `keys`
/// name, or of every running domain when `keys` is empty.
pub fn stats(conn: &Connect, keys: &[DomainKey], groups: u32) -> Result<Vec<StatsRecord>, Error> {
    let doms = keys
        .iter()
        .map(|k| lookup(conn, k))
        .collect::<Result<Vec<_>, _>>()?;
    let flags = if doms.is_empty() {
        sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    } else {
        0
    };
    libvirt_sys::domain_stats(conn, &doms, groups | sys::VIR_DOMAIN_STATS_STATE, flags)?
        .into_iter()
        .map(|r| {
            Ok(StatsRecord {
                name: r.domain.name()?,
                uuid: r.domain.uuid_string()?,
                params: r.params,
            })
        })
        .collect()
}

/// Presses `keycodes` together for `hold_ms` (`codeset`: VIR_KEYCODE_SET_*).
/// libvirt reports a key code that has no translation in `codeset` as
/// INTERNAL_ERROR (the test and QEMU drivers alike); in this call the only
/// input that can cause that is a key code, so it is the caller's mistake.
pub fn send_key(
    conn: &Connect,
    key: &DomainKey,
    codeset: u32,
    hold_ms: u32,
    mut keycodes: Vec<u32>,
) -> Result<(), Error> {
    let dom = lookup(conn, key)?;
    let n = keycodes.len() as i32;
    match dom.send_key(codeset, hold_ms, keycodes.as_mut_ptr(), n, 0) {
        Ok(_) => Ok(()),
        Err(e) if e.code().to_raw() == sys::VIR_ERR_INTERNAL_ERROR => {
            Err(Error::invalid("keycodes", e.message()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Pins vCPU `vcpu` to host CPUs `cpus` (`flags`: VIR_DOMAIN_AFFECT_*). A
/// CPU the host does not have is INVALID_ARGUMENT.
pub fn pin_vcpu(
    conn: &Connect,
    key: &DomainKey,
    host: &str,
    vcpu: u32,
    cpus: &[u32],
    flags: u32,
) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    let host_cpus = conn.node_info()?.cpus;
    if let Some(bad) = cpus.iter().find(|cpu| **cpu >= host_cpus) {
        return Err(Error::invalid(
            "cpus",
            format!("host CPU {bad} does not exist (the host has {host_cpus})"),
        ));
    }
    let mut map = vec![0u8; host_cpus.div_ceil(8) as usize];
    for cpu in cpus {
        map[(cpu / 8) as usize] |= 1 << (cpu % 8);
    }
    dom.pin_vcpu_flags(vcpu, &map, flags)?;
    describe(host, &dom)
}

/// The host CPUs each vCPU may run on, in vCPU order (`flags`:
/// VIR_DOMAIN_AFFECT_*).
pub fn vcpu_pinning(conn: &Connect, key: &DomainKey, flags: u32) -> Result<Vec<Vec<u32>>, Error> {
    let dom = lookup(conn, key)?;
    let host_cpus = conn.node_info()?.cpus;
    let vcpus = dom.info()?.nr_virt_cpu;
    libvirt_sys::vcpu_pin_info(&dom, vcpus, host_cpus, flags)
}

/// A screenshot, already PNG.
#[derive(Debug, Clone)]
pub struct Screenshot {
    /// The PNG bytes.
    pub png: Vec<u8>,
    /// The MIME type the hypervisor delivered.
    pub source_mime_type: String,
}

/// Largest screenshot accepted from the hypervisor (a 4K RGB frame is 24 MiB).
const MAX_SCREENSHOT_BYTES: usize = 64 << 20;

/// Takes a screenshot of screen `screen` and turns it into PNG (still on the
/// blocking thread, so encoding never blocks the runtime).
pub fn screenshot(conn: &Connect, key: &DomainKey, screen: u32) -> Result<Screenshot, Error> {
    let dom = lookup(conn, key)?;
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
    Ok(Screenshot {
        png: super::screenshot::to_png(data, &mime)?,
        source_mime_type: mime,
    })
}
