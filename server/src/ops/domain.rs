//! Domain operations: every libvirt call on a domain, as blocking functions
//! that take a validated [`DomainKey`], look the domain up themselves and
//! answer plain values ([`DomainInfo`], [`StatsRecord`], [`Screenshot`]);
//! `convert::domain` turns them into the API's messages. Flags arrive
//! computed (by `convert::domain`). Nothing here knows of gRPC.

use super::Connect;
use libvirt_grpc::v1;
use virt::{domain::Domain, sys};

use std::collections::{HashMap, HashSet};

use super::{cache::Fact, unless_vanished};
use crate::{
    error::{self, Error},
    libvirt_sys::{self, LentRecord, StatsList, TypedValue},
    xml_query,
};

/// How a request identifies a domain, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    describe(conn, host, &dom)
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// Which view was read: fields outside it are left at their defaults.
    pub view: View,
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

/// How much of a domain a read returns (the API's `DomainView`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Identity and run state: one bulk-statistics call (state group).
    Basic,
    /// Every field of [`DomainInfo`].
    #[default]
    Full,
}

/// The statistics groups a read of `view` asks libvirt for.
fn stats_groups(view: View) -> u32 {
    match view {
        View::Basic => sys::VIR_DOMAIN_STATS_STATE,
        View::Full => {
            sys::VIR_DOMAIN_STATS_STATE
                | sys::VIR_DOMAIN_STATS_BALLOON
                | sys::VIR_DOMAIN_STATS_VCPU
                | sys::VIR_DOMAIN_STATS_CPU_TOTAL
        }
    }
}

/// libvirt's bulk statistics of `doms` (every domain `flags` selects when
/// empty). `NOWAIT`: a domain busy with a long job (a migration, a save)
/// answers at once with what needs no monitor call (the balloon and vCPU
/// figures `virDomainGetInfo` also reports) instead of blocking the read up
/// to libvirt's job timeout. Drivers that refuse the flag are asked again
/// without it.
fn bulk_stats(
    conn: &Connect,
    doms: &[&Domain],
    groups: u32,
    flags: u32,
) -> Result<StatsList, Error> {
    let nowait = flags | sys::VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
    match libvirt_sys::domain_stats(conn, doms, groups, nowait) {
        Err(Error::Libvirt { error, .. }) if error::is_unsupported(&error) => {
            libvirt_sys::domain_stats(conn, doms, groups, flags)
        }
        other => other,
    }
}

/// One numeric field of a statistics record.
fn stat(rec: &LentRecord, field: &str) -> Option<u64> {
    rec.params
        .iter()
        .find(|(name, _)| name == field)
        .and_then(|(_, v)| v.as_u64())
}

/// The identity and state of a statistics record (whose domain is named
/// `name`): what the basic view holds. The record's domain comes from
/// libvirt's answer, so its name and id are current (a kept handle's are
/// not). A shut-off domain has no id, and is not asked for one (each call
/// on a handle costs libvirt a formatted UUID, see [`StatsList`]).
fn basic(host: &str, name: String, rec: &LentRecord, view: View) -> Result<DomainInfo, Error> {
    let d = rec.domain();
    let field = |f| {
        stat(rec, f)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| Error::internal(format!("libvirt's statistics lack {f}")))
    };
    let state = field("state.state")?;
    let id = if state == sys::VIR_DOMAIN_SHUTOFF as i32 {
        0
    } else {
        d.id().unwrap_or(0)
    };
    Ok(DomainInfo {
        host: host.to_owned(),
        name,
        uuid: libvirt_sys::uuid_of(d)?,
        id,
        state,
        reason: field("state.reason")?,
        view,
        ..DomainInfo::default()
    })
}

/// Memory, vCPUs and CPU time from the record's balloon, vcpu and cpu
/// groups (`cpu_time`: read apart, for listings); drivers whose bulk statistics lack them (the test driver
/// reports only the state group) are asked with `virDomainGetInfo`.
fn resources(rec: &LentRecord, cpu_time: Option<u64>, d: &mut DomainInfo) -> Result<(), Error> {
    let active = d.id != 0;
    let from_stats = (
        stat(rec, "balloon.current"),
        stat(rec, "balloon.maximum"),
        stat(rec, "vcpu.current").and_then(|v| u32::try_from(v).ok()),
        if active {
            cpu_time.or_else(|| stat(rec, "cpu.time"))
        } else {
            Some(0)
        },
    );
    if let (Some(mem), Some(max), Some(vcpus), Some(cpu)) = from_stats {
        (d.memory_kib, d.max_memory_kib, d.vcpus, d.cpu_time_ns) = (mem, max, vcpus, cpu);
        return Ok(());
    }
    let dom = rec.domain();
    let info = dom.info()?;
    d.memory_kib = info.memory;
    d.max_memory_kib = info.max_mem;
    // virDomainInfo's count is 16 bits wide: at its limit the exact count
    // is asked for.
    d.vcpus = if info.nr_virt_cpu >= u32::from(u16::MAX) {
        dom.vcpus_flags(sys::VIR_DOMAIN_AFFECT_CURRENT)
            .unwrap_or(info.nr_virt_cpu)
    } else {
        info.nr_virt_cpu
    };
    d.cpu_time_ns = if active { info.cpu_time } else { 0 };
    Ok(())
}

/// Whether a read may answer from what is kept, or follows a change the
/// server itself just made (whose event may not have arrived yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Answer from what is kept.
    Use,
    /// Read afresh (and keep the new value).
    Refresh,
}

/// The OS type of `dom`: kept when the host's event connection vouches for
/// it ([`super::cache`]), else read (and kept).
fn facts(conn: &Connect, dom: &Domain, uuid: &str, kept: Kept) -> Result<Fact, Error> {
    if kept == Kept::Use {
        if let Some(f) = conn.facts().get(uuid) {
            return Ok(f);
        }
    }
    let ticket = conn.facts().ticket();
    let fact = Fact {
        os_type: dom.os_type()?,
    };
    if let Some(t) = ticket {
        conn.facts().remember(t, uuid, fact.clone());
    }
    Ok(fact)
}

/// Reads one domain through `dom` in `view`; `None` when libvirt knows no
/// domain of that handle's UUID (any more).
fn read(
    conn: &Connect,
    host: &str,
    dom: &Domain,
    view: View,
    kept: Kept,
) -> Result<Option<DomainInfo>, Error> {
    let list = match bulk_stats(conn, &[dom], stats_groups(view), 0) {
        Ok(list) => list,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(rec) = list.records().first() else {
        return Ok(None);
    };
    let mut d = basic(host, rec.domain().name()?, rec, view)?;
    if view == View::Basic {
        return Ok(Some(d));
    }
    complete(conn, rec, &mut d, kept)?;
    ask_flags(rec.domain(), &mut d)?;
    Ok(Some(d))
}

/// The full view's memory, vCPUs, CPU time and OS type of the domain of
/// `rec` (see [`resources`], [`facts`]).
fn complete(conn: &Connect, rec: &LentRecord, d: &mut DomainInfo, kept: Kept) -> Result<(), Error> {
    resources(rec, None, d)?;
    d.os_type = facts(conn, rec.domain(), &d.uuid, kept)?.os_type;
    Ok(())
}

/// Persistence, autostart and managed-save image of one domain, asked of
/// it. What libvirt's own rules settle is not asked: an inactive domain is
/// persistent (a transient domain is gone once it stops), and a transient
/// one has no managed-save image (libvirt refuses to make one, and
/// undefining a domain removes its image or is refused). One round trip
/// fewer for a stopped or a transient domain, the same answer. (Autostart
/// is asked even then: the test driver keeps the flag on a running domain
/// that was undefined, and the answer is libvirt's.)
fn ask_flags(dom: &Domain, d: &mut DomainInfo) -> Result<(), Error> {
    d.persistent = d.id == 0 || dom.is_persistent()?;
    d.autostart = dom.autostart()?;
    d.has_managed_save = d.persistent && dom.has_managed_save(0).unwrap_or(false);
    Ok(())
}

/// The error for a domain that vanished while it was being read.
fn vanished(dom: &Domain) -> Error {
    Error::NotFound(format!(
        "domain '{}' no longer exists",
        dom.name().unwrap_or_default()
    ))
}

/// Reads everything [`DomainInfo`] holds, right after a change the server
/// made (so nothing kept is trusted: the change's event may still be on
/// its way).
pub fn describe(conn: &Connect, host: &str, dom: &Domain) -> Result<DomainInfo, Error> {
    read(conn, host, dom, View::Full, Kept::Refresh)?.ok_or_else(|| vanished(dom))
}

/// [`describe`], or `None` when the domain no longer exists (a transient
/// domain that stopped).
fn describe_if_present(
    conn: &Connect,
    host: &str,
    dom: &Domain,
) -> Result<Option<DomainInfo>, Error> {
    unless_vanished(read(conn, host, dom, View::Full, Kept::Refresh)).map(Option::flatten)
}

/// Whether a read answers `key`: a kept handle resolves by UUID, so a
/// domain renamed since must not answer for its old name.
fn answers(key: &DomainKey, d: &DomainInfo) -> bool {
    match key {
        DomainKey::Name(n) => &d.name == n,
        DomainKey::Uuid(u) => d.uuid.eq_ignore_ascii_case(u),
        DomainKey::Id(id) => d.id == *id,
    }
}

/// The domain `key` names, in `view`: through the handle kept for the host
/// when there is one (no lookup), checked against `key`; a handle that
/// finds nothing, another domain or an error is dropped and the domain
/// looked up afresh, once.
pub fn get(conn: &Connect, key: &DomainKey, host: &str, view: View) -> Result<DomainInfo, Error> {
    if let Some(dom) = conn.handles().get(key) {
        if let Ok(Some(d)) = read(conn, host, &dom, view, Kept::Use) {
            if answers(key, &d) {
                return Ok(d);
            }
        }
        // Gone, another domain, or its connection failed: afresh, once, on
        // this call's own connection.
        conn.handles().forget(key);
    }
    let dom = lookup(conn, key)?;
    let d = read(conn, host, &dom, view, Kept::Use)?.ok_or_else(|| vanished(&dom))?;
    conn.handles().keep(key, dom);
    Ok(d)
}

/// From how many domains a shared full read asks libvirt for the host's
/// autostart, managed-save and transient domains (three listings, one
/// round trip each whatever the number) rather than each domain (up to
/// three calls a domain).
const LISTINGS_FROM: usize = 3;

/// Reads of many domains in `view` in one bulk call
/// (`virDomainListGetStats`) per pool connection their kept handles call
/// over: per key, its domain, or `None` when no handle is kept for it or
/// the call does not answer it (a domain gone, renamed, or a failed call),
/// for [`get`] to read it alone. The full view adds, for
/// [`LISTINGS_FROM`] domains or more, the three listings [`list`] makes
/// (fewer: [`read`]'s calls per domain), and per domain only what the
/// driver's bulk answer lacks (the test driver: `virDomainGetInfo`) and an
/// OS type not kept yet. The concurrent `GetDomain` reads of a host share
/// such a call ([`crate::coalesce`]); with no kept handle among the keys,
/// no call is made.
pub fn get_kept(
    conn: &Connect,
    host: &str,
    keys: &[DomainKey],
    view: View,
) -> Result<Vec<Option<DomainInfo>>, Error> {
    let kept: Vec<Option<(String, Domain)>> = keys
        .iter()
        .map(|k| {
            let dom = conn.handles().get(k)?;
            Some((libvirt_sys::uuid_of(&dom).ok()?, dom))
        })
        .collect();
    // One call per pool connection the handles were looked up on (libvirt
    // takes a list of one connection's handles), each domain asked once.
    let mut asked = HashSet::new();
    let mut by_connection: HashMap<usize, Vec<&Domain>> = HashMap::new();
    for (uuid, dom) in kept.iter().flatten() {
        if asked.insert(uuid) {
            by_connection
                .entry(libvirt_sys::connection_of(dom))
                .or_default()
                .push(dom);
        }
    }
    let many = view == View::Full && asked.len() >= LISTINGS_FROM;
    let (lists, listings) = beside_listings(conn, many, many, || {
        by_connection
            .values()
            .map(|doms| bulk_stats(conn, doms, stats_groups(view), 0))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let records: Vec<&LentRecord> = lists.iter().flat_map(StatsList::records).collect();
    let mut read: HashMap<String, DomainInfo> = HashMap::new();
    let listings = many.then(|| {
        (
            listings.autostart.unwrap_or_default(),
            listings.managed_save.unwrap_or_default(),
            listings.transient.unwrap_or_default(),
        )
    });
    for &rec in &records {
        let Ok(mut d) = rec
            .domain()
            .name()
            .map_err(Error::from)
            .and_then(|name| basic(host, name, rec, view))
        else {
            continue;
        };
        if view == View::Full {
            // A domain whose completion fails is read alone (which tells
            // a vanished domain from a failed call).
            let completed = match &listings {
                Some((autostart, managed, transient)) => complete(conn, rec, &mut d, Kept::Use)
                    .map(|()| {
                        d.autostart = autostart.contains(&d.uuid);
                        d.has_managed_save = managed.contains(&d.uuid);
                        d.persistent = !transient.contains(&d.uuid);
                    }),
                None => complete(conn, rec, &mut d, Kept::Use)
                    .and_then(|()| ask_flags(rec.domain(), &mut d)),
            };
            if completed.is_err() {
                continue;
            }
        }
        read.insert(d.uuid.clone(), d);
    }
    let answers = keys
        .iter()
        .zip(&kept)
        .map(|(key, kept)| {
            let (uuid, _) = kept.as_ref()?;
            read.get(uuid).filter(|d| answers(key, d)).cloned()
        })
        .collect();
    drop(records);
    super::release::later((lists, kept));
    Ok(answers)
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
    /// How much of each domain to return.
    pub view: View,
}

/// The listing flags virConnectGetAllDomainStats shares with
/// virConnectListAllDomains (same bits): run state and persistence.
const STATS_FILTERS: u32 = sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE
    | sys::VIR_CONNECT_LIST_DOMAINS_INACTIVE
    | sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT
    | sys::VIR_CONNECT_LIST_DOMAINS_TRANSIENT;

/// The UUIDs of the domains `flags` selects (one call, whatever the number
/// of domains).
fn uuid_set(conn: &Connect, flags: u32) -> Result<HashSet<String>, Error> {
    let doms = conn.list_all_domains(flags)?;
    let set = doms
        .iter()
        .filter_map(|d| libvirt_sys::uuid_of(d).ok())
        .collect();
    super::release::later(doms);
    Ok(set)
}

/// The host's autostart, managed-save and transient domains by UUID (each
/// `None` when not asked for): the listings full reads of many domains
/// make.
#[derive(Debug, Default)]
struct Listings {
    autostart: Option<HashSet<String>>,
    managed_save: Option<HashSet<String>>,
    transient: Option<HashSet<String>>,
}

/// Runs `main` here while the listings asked for (`autostart`; `rest`:
/// managed-save and transient) are made on threads of their own over the
/// same connection: libvirt serves one connection's calls concurrently
/// (libvirtd up to its `max_client_requests`, 5 by default), so the round
/// trips cost about the longest of them rather than their sum. A listing
/// whose thread cannot be started is made here, after `main`.
fn beside_listings<T>(
    conn: &Connect,
    autostart: bool,
    rest: bool,
    main: impl FnOnce() -> Result<T, Error>,
) -> Result<(T, Listings), Error> {
    type Answer = Result<HashSet<String>, Error>;
    std::thread::scope(|s| {
        let start = |wanted: bool, flags: u32| {
            let spawned = wanted.then(|| {
                std::thread::Builder::new()
                    .name("libvirt-listing".into())
                    .spawn_scoped(s, move || uuid_set(conn, flags))
                    .ok()
            });
            (spawned, flags)
        };
        let finish = |(spawned, flags): (
            Option<Option<std::thread::ScopedJoinHandle<'_, Answer>>>,
            u32,
        )| {
            match spawned {
                None => Ok(None),
                Some(Some(h)) => h
                    .join()
                    .unwrap_or_else(|_| Err(Error::internal("a domain listing failed")))
                    .map(Some),
                Some(None) => uuid_set(conn, flags).map(Some),
            }
        };
        let a = start(autostart, sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART);
        let m = start(rest, sys::VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE);
        let t = start(rest, sys::VIR_CONNECT_LIST_DOMAINS_TRANSIENT);
        let main = main();
        let listings = Listings {
            autostart: finish(a)?,
            managed_save: finish(m)?,
            transient: finish(t)?,
        };
        Ok((main?, listings))
    })
}

/// Lists domains sorted by name; returns one page and whether more follow.
///
/// Round trips, whatever the number of domains: one bulk statistics call
/// (state group; FULL adds the balloon and vCPU groups), plus for FULL
/// one bulk call of the CPU group for the page's running domains and one
/// listing each of the autostart, managed-save and transient domains,
/// made while the bulk call runs ([`beside_listings`]; the basic view
/// makes the autostart listing only for an autostart filter). Per domain, only what a driver's bulk answer lacks: the test
/// driver's statistics have no balloon or vCPU groups (one
/// `virDomainGetInfo` each), and an OS type not yet kept for the domain
/// ([`super::cache`]) is read once.
pub fn list(conn: &Connect, host: &str, f: &ListFilter) -> Result<(Vec<DomainInfo>, bool), Error> {
    const AUTOSTART_FILTERS: u32 =
        sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART | sys::VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART;
    // The CPU group costs libvirt as much as the others together on an
    // inactive QEMU domain, whose CPU time is 0 anyway: it is read apart,
    // for the running domains of the page only.
    let groups = stats_groups(f.view) & !sys::VIR_DOMAIN_STATS_CPU_TOTAL;
    let full = f.view == View::Full;
    let (listed, listings) =
        beside_listings(conn, full || f.flags & AUTOSTART_FILTERS != 0, full, || {
            bulk_stats(conn, &[], groups, f.flags & STATS_FILTERS)
        })?;
    let autostart = listings.autostart;
    let mut named: Vec<(String, &LentRecord)> = listed
        .records()
        .iter()
        .filter_map(|r| {
            let n = r.domain().name().ok()?;
            let wanted = n.starts_with(&f.name_prefix) && f.after.as_ref().is_none_or(|a| &n > a);
            wanted.then_some((n, r))
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut page, mut more) = (Vec::new(), false);
    for (name, rec) in named {
        let d = basic(host, name, rec, f.view)?;
        if let (Some(set), true) = (&autostart, f.flags & AUTOSTART_FILTERS != 0) {
            let on = set.contains(&d.uuid);
            if on != (f.flags & sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART != 0) {
                continue;
            }
        }
        let state = crate::convert::state::domain_state(d.state);
        if !f.states.is_empty() && !f.states.contains(&state) {
            continue;
        }
        if page.len() == f.limit {
            more = true;
            break;
        }
        page.push((d, rec));
    }
    if f.view == View::Basic {
        let out = page.into_iter().map(|(d, _)| d).collect();
        super::release::later(listed);
        return Ok((out, more));
    }
    let running: Vec<&Domain> = page
        .iter()
        .filter(|(d, _)| d.id != 0)
        .map(|(_, r)| r.domain())
        .collect();
    let cpu: HashMap<String, u64> = if running.is_empty() {
        HashMap::new()
    } else {
        bulk_stats(conn, &running, sys::VIR_DOMAIN_STATS_CPU_TOTAL, 0)?
            .records()
            .iter()
            .filter_map(|r| Some((libvirt_sys::uuid_of(r.domain()).ok()?, stat(r, "cpu.time")?)))
            .collect()
    };
    let (managed, transient) = (
        listings.managed_save.unwrap_or_default(),
        listings.transient.unwrap_or_default(),
    );
    let mut out = Vec::with_capacity(page.len());
    for (mut d, rec) in page {
        let complete = |d: &mut DomainInfo| -> Result<(), Error> {
            resources(rec, cpu.get(&d.uuid).copied(), d)?;
            d.os_type = facts(conn, rec.domain(), &d.uuid, Kept::Use)?.os_type;
            Ok(())
        };
        // A domain that vanished after the bulk call is simply no longer
        // listed.
        if unless_vanished(complete(&mut d))?.is_none() {
            continue;
        }
        d.autostart = autostart.as_ref().is_some_and(|s| s.contains(&d.uuid));
        d.has_managed_save = managed.contains(&d.uuid);
        d.persistent = !transient.contains(&d.uuid);
        out.push(d);
    }
    super::release::later(listed);
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
    describe(conn, host, &dom)
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
        Ok(d) => describe_if_present(conn, host, &d),
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
    describe(conn, host, &dom)
}

/// The error for a call that needs an inactive domain on a running one.
fn already_running(dom: &Domain) -> Result<Error, Error> {
    Ok(Error::OperationInvalid(format!(
        "Requested operation is not valid: domain '{}' is already running",
        dom.name()?
    )))
}

/// The error for a call that needs a running domain on one that is off
/// (QEMU's words; the test driver would say "internal error").
fn not_running(dom: &Domain) -> Result<Error, Error> {
    Ok(Error::OperationInvalid(format!(
        "Requested operation is not valid: domain '{}' is not running",
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
    describe(conn, host, &dom)
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
    describe_if_present(conn, host, &dom)
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
        describe(conn, host, &dom).map(Some)
    } else {
        Ok(None)
    }
}

/// The error for a domain already in the state a call asked for.
type Refusal = fn(&Domain) -> Result<Error, Error>;

/// A pause or resume libvirt failed with `e`, read again from the domain's
/// state when libvirt left the error unclassified (the test driver's
/// "internal error: domain not running"), so that every driver answers as
/// QEMU does: a domain already in `target` gets `already` (`None`: the call
/// succeeds), one that is off is OPERATION_INVALID, anything else keeps
/// libvirt's error. A classified error is libvirt's own answer and is kept
/// with its details. The state is read only after a failure, so success
/// costs no extra round trip.
fn settle_by_state(
    dom: &Domain,
    e: virt::error::Error,
    target: u32,
    already: Option<Refusal>,
) -> Result<(), Error> {
    if !error::is_unclassified(&e) {
        return Err(e.into());
    }
    match libvirt_sys::domain_state(dom) {
        Ok((state, _)) if state as u32 == target => match already {
            None => Ok(()),
            Some(refusal) => Err(refusal(dom)?),
        },
        Ok(_) if !dom.is_active()? => Err(not_running(dom)?),
        _ => Err(e.into()),
    }
}

/// Pauses the domain. Pausing a paused domain succeeds and pausing one that
/// is off is FAILED_PRECONDITION, on every driver ([`settle_by_state`]).
pub fn suspend(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    if let Err(e) = dom.suspend() {
        settle_by_state(&dom, e, sys::VIR_DOMAIN_PAUSED, None)?;
    }
    describe(conn, host, &dom)
}

/// Resumes a paused domain. Resuming one that runs or one that is off is
/// FAILED_PRECONDITION on every driver ([`settle_by_state`]).
pub fn resume(conn: &Connect, key: &DomainKey, host: &str) -> Result<DomainInfo, Error> {
    let dom = lookup(conn, key)?;
    if let Err(e) = dom.resume() {
        settle_by_state(&dom, e, sys::VIR_DOMAIN_RUNNING, Some(already_running))?;
    }
    describe(conn, host, &dom)
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
        describe(conn, host, &dom).map(Some)
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
    describe(conn, host, &conn.lookup_domain_by_uuid_string(&uuid)?)
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
    describe(conn, host, &dom)
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
    let doms: Vec<&Domain> = doms.iter().collect();
    libvirt_sys::domain_stats(conn, &doms, groups | sys::VIR_DOMAIN_STATS_STATE, flags)?
        .records()
        .iter()
        .map(|r| {
            Ok(StatsRecord {
                name: r.domain().name()?,
                uuid: libvirt_sys::uuid_of(r.domain())?,
                params: r.params.clone(),
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
    let (map, _) = super::threads::host_cpumap(conn, "cpus", cpus)?;
    dom.pin_vcpu_flags(vcpu, &map, flags)?;
    describe(conn, host, &dom)
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

/// A domain's job as libvirt reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStats {
    /// libvirt's virDomainJobType.
    pub kind: i32,
    /// The VIR_DOMAIN_JOB_* statistics, by libvirt's names.
    pub params: Vec<(String, TypedValue)>,
}

impl JobStats {
    /// Whether a job runs (libvirt's type is not VIR_DOMAIN_JOB_NONE).
    pub fn runs(&self) -> bool {
        self.kind != sys::VIR_DOMAIN_JOB_NONE as i32
    }
}

/// The domain's running job, or with `completed` its last completed one
/// (virDomainGetJobStats).
pub fn job(conn: &Connect, key: &DomainKey, completed: bool) -> Result<JobStats, Error> {
    let dom = lookup(conn, key)?;
    let flags = if completed {
        sys::VIR_DOMAIN_JOB_STATS_COMPLETED
    } else {
        0
    };
    let (kind, params) = libvirt_sys::domain_job_stats(&dom, flags)?;
    Ok(JobStats { kind, params })
}

/// Aborts the domain's running job (virDomainAbortJob).
pub fn abort_job(conn: &Connect, key: &DomainKey) -> Result<(), Error> {
    libvirt_sys::domain_abort_job(&lookup(conn, key)?)
}
