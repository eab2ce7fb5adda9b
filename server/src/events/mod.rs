//! The event hub: libvirt callbacks -> protobuf events -> subscribers.
//!
//! # Threads and ownership
//!
//! 1. libvirt's callbacks run on the one `libvirt-events` thread
//!    ([`crate::pool::ensure_event_loop`]). They only copy their arguments
//!    into a [`callbacks::RawEvent`] and push it into the host's unbounded
//!    channel (a non-blocking send); all `unsafe` lives in [`callbacks`].
//! 2. Per host one async task ([`run_host`]) owns that host's event
//!    connection (a `Connect` of its own, not a pool slot) and the
//!    registration of every callback on it. It reads the raw events in
//!    order, reads the object's state right after each one (on the blocking
//!    pool, through the event connection), converts it into a `v1::Event`
//!    and hands it to the [`hub::Hub`]. It also checks the connection with
//!    `virConnectIsAlive` every [`ALIVE_CHECK`] and reacts to the close
//!    callback: on loss it publishes `HOST_DISCONNECTED`, resets the host's
//!    pool, reconnects with capped exponential backoff, re-registers,
//!    reconciles (lists all domains and publishes a `reconciled` event for
//!    each one whose state changed, appeared or vanished), then publishes
//!    `HOST_RECONNECTED`.
//! 3. The [`hub::Hub`] (shared by all hosts) assigns the server-wide sequence
//!    under a lock, keeps the last `event_ring_size` events and broadcasts
//!    them. Each `WatchEvents` stream is one task ([`stream`]) that replays
//!    from the ring, then forwards live events through its filter into a
//!    small bounded channel towards tonic; a subscriber that falls more than
//!    [`hub::BROADCAST_CAPACITY`] events behind is told exactly which range it
//!    lost, and never slows anyone else.

pub mod callbacks;
pub mod hub;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use libvirt_grpc::v1::{self, EventKind, ObjectType};
use tokio::sync::{broadcast, mpsc};
use virt::{connect::Connect, sys};

use crate::{
    error::Error,
    libvirt_sys,
    ops::domain::{reason_name, state_enum},
    pool::{HostPool, Hosts},
};
use callbacks::{Object, RawEvent, RawKind, Registration, Sink};
use hub::Hub;

/// How often the event connection is checked with `virConnectIsAlive`.
pub const ALIVE_CHECK: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Messages buffered per stream between its task and the transport.
const STREAM_BUFFER: usize = 64;

/// Starts one event task per host and returns the hub they feed.
///
/// Also returns a signal that turns true once every host's first attempt to
/// open its event connection has finished (callbacks registered, or the host
/// found down). `WatchEvents` waits for it (at most [`STARTUP_WAIT`]) before
/// subscribing, so a client that subscribes right after the server starts
/// cannot miss an event whose callback was not registered yet, while other
/// calls are served at once even when a host hangs.
pub fn start(hosts: &Hosts, ring_size: usize) -> (Arc<Hub>, tokio::sync::watch::Receiver<bool>) {
    let hub = Hub::new(ring_size);
    let mut first_attempts = Vec::new();
    for pool in hosts.iter() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        first_attempts.push(rx);
        tokio::spawn(run_host(Arc::clone(pool), Arc::clone(&hub), Some(tx)));
    }
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        futures::future::join_all(first_attempts).await;
        let _ = ready_tx.send(true);
    });
    (hub, ready_rx)
}

/// How long a subscription waits for the hosts' first event registrations.
pub const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A domain's state as last seen: `(name, state, reason)`.
type Snapshot = HashMap<String, (String, i32, i32)>;

struct Live {
    conn: Connect,
    reg: Option<Registration>,
}

/// Blocking: opens the event connection and registers every callback.
fn open(uri: &str, sink: &Sink) -> Result<Live, Error> {
    let conn = Connect::open(Some(uri))?;
    if let Err(e) = conn.set_keep_alive(5, 3) {
        tracing::debug!(error = %e, "keepalive not enabled on the event connection");
    }
    let reg = callbacks::register(&conn, sink)?;
    Ok(Live {
        conn,
        reg: Some(reg),
    })
}

/// Blocking: every domain's `(name, state, reason)` by UUID.
fn list_states(conn: &Connect) -> Result<Snapshot, Error> {
    let mut out = HashMap::new();
    for d in conn.list_all_domains(0)? {
        let (Ok(uuid), Ok(name)) = (d.uuid_string(), d.name()) else {
            continue;
        };
        if let Ok((s, r)) = libvirt_sys::domain_state(&d) {
            out.insert(uuid, (name, s, r));
        }
    }
    Ok(out)
}

/// Blocking: the state hint for an object right after its event.
pub fn state_hint(conn: &Connect, object: Object, uuid: &str) -> Option<v1::ObjectState> {
    // Only libvirt's "no such object" means the object is gone; any other
    // failure (the connection died right after the event) leaves the state
    // unknown: no hint, rather than a false "vanished".
    let gone = |e: virt::error::Error| {
        (crate::error::code_for_libvirt(&e) == tonic::Code::NotFound).then(v1::ObjectState::default)
    };
    match object {
        Object::Domain => {
            let d = match conn.lookup_domain_by_uuid_string(uuid) {
                Ok(d) => d,
                Err(e) => return gone(e),
            };
            let (s, r) = match libvirt_sys::domain_state(&d) {
                Ok(sr) => sr,
                Err(crate::error::Error::Libvirt(e)) => return gone(e),
                Err(_) => return None,
            };
            Some(v1::ObjectState {
                exists: true,
                domain_state: state_enum(s) as i32,
                domain_state_reason: r,
                domain_state_reason_name: reason_name(s, r).to_owned(),
                active: d.is_active().unwrap_or(false),
            })
        }
        Object::StoragePool => match conn.lookup_storage_pool_by_uuid_string(uuid) {
            Ok(p) => Some(v1::ObjectState {
                exists: true,
                active: p.is_active().unwrap_or(false),
                ..Default::default()
            }),
            Err(e) => gone(e),
        },
        Object::Network => match conn.lookup_network_by_uuid_string(uuid) {
            Ok(n) => Some(v1::ObjectState {
                exists: true,
                active: n.is_active().unwrap_or(false),
                ..Default::default()
            }),
            Err(e) => gone(e),
        },
        Object::Connection => None,
    }
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX)
}

fn host_event(host: &str, kind: EventKind, details: v1::HostDetails) -> v1::Event {
    v1::Event {
        host: host.to_owned(),
        object_type: ObjectType::Host as i32,
        time_unix_micros: micros(SystemTime::now()),
        kind: kind as i32,
        details: Some(v1::event::Details::HostDetails(details)),
        ..Default::default()
    }
}

fn close_reason(reason: i32) -> &'static str {
    match reason as u32 {
        sys::VIR_CONNECT_CLOSE_REASON_ERROR => "error",
        sys::VIR_CONNECT_CLOSE_REASON_EOF => "eof",
        sys::VIR_CONNECT_CLOSE_REASON_KEEPALIVE => "keepalive",
        sys::VIR_CONNECT_CLOSE_REASON_CLIENT => "client",
        _ => "unknown",
    }
}

/// Runs on a blocking thread with a clone of the event connection.
async fn blocking<T: Send + 'static>(
    conn: &Connect,
    f: impl FnOnce(&Connect) -> T + Send + 'static,
) -> Option<T> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || f(&conn)).await.ok()
}

/// Drops a registration and connection off the async threads (deregistering
/// is an RPC).
fn retire(live: Live) {
    tokio::task::spawn_blocking(move || {
        let Live { conn, reg } = live;
        drop(reg);
        drop(conn);
    });
}

/// The event task of one host (see the module doc). Runs forever.
pub async fn run_host(
    pool: Arc<HostPool>,
    hub: Arc<Hub>,
    mut first_attempt: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let host = pool.name().to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel::<RawEvent>();
    let mut generation: u64 = 0;
    let mut snapshot: Option<Snapshot> = None;
    let mut failures: u32 = 0;
    loop {
        generation += 1;
        let sink = Sink {
            tx: tx.clone(),
            generation,
        };
        let uri = pool.uri().to_owned();
        let opened = tokio::task::spawn_blocking(move || open(&uri, &sink)).await;
        if let Some(tx) = first_attempt.take() {
            // Callbacks are registered (or the host is down): start-up may go on.
            let _ = tx.send(());
        }
        let live = match opened {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                tracing::debug!(host, error = %e, "event connection failed");
                tokio::time::sleep(backoff(failures)).await;
                failures = failures.saturating_add(1);
                continue;
            }
            Err(e) => {
                tracing::error!(host, error = %e, "event connection task failed; events stop for this host");
                return;
            }
        };
        tracing::info!(host, "event connection open");
        failures = 0;
        // Reconcile against what we knew before the loss.
        let now = blocking(&live.conn, list_states).await;
        let now = match now {
            Some(Ok(s)) => s,
            other => {
                let error = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "the listing task failed".to_owned(),
                };
                tracing::warn!(
                    host,
                    error,
                    "cannot list domains after connecting; retrying"
                );
                retire(live);
                tokio::time::sleep(backoff(0)).await;
                continue;
            }
        };
        if let Some(before) = snapshot.take() {
            let n = reconcile(&hub, &host, &before, &now);
            tracing::info!(host, reconciled = n, "event connection back");
            hub.publish(host_event(
                &host,
                EventKind::HostReconnected,
                v1::HostDetails {
                    reason: String::new(),
                    reconciled_events: n,
                },
            ));
            pool.record_success();
        }
        let mut states = now;
        let reason = watch(&host, &hub, &live, generation, &mut rx, &mut states).await;
        snapshot = Some(states);
        tracing::warn!(host, reason, "event connection lost");
        hub.publish(host_event(
            &host,
            EventKind::HostDisconnected,
            v1::HostDetails {
                reason: reason.to_owned(),
                reconciled_events: 0,
            },
        ));
        pool.reset_connections();
        pool.record_failure(format!("connection to libvirt lost ({reason})"));
        retire(live);
    }
}

/// Forwards events until the connection is lost; returns why.
async fn watch(
    host: &str,
    hub: &Hub,
    live: &Live,
    generation: u64,
    rx: &mut mpsc::UnboundedReceiver<RawEvent>,
    states: &mut Snapshot,
) -> &'static str {
    let mut tick = tokio::time::interval(ALIVE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(raw) = raw else { return "channel closed" };
                if raw.generation != generation {
                    continue;
                }
                if let RawKind::Closed(r) = raw.kind {
                    return close_reason(r);
                }
                let (object, uuid) = (raw.object, raw.uuid.clone());
                let hint = blocking(&live.conn, move |c| state_hint(c, object, &uuid))
                    .await
                    .flatten();
                if object == Object::Domain {
                    if let Some(h) = &hint {
                        if h.exists {
                            let (s, r) = domain_raw(h);
                            states.insert(raw.uuid.clone(), (raw.name.clone(), s, r));
                        } else {
                            states.remove(&raw.uuid);
                        }
                    }
                }
                hub.publish(convert(host, raw, hint));
            }
            _ = tick.tick() => {
                let alive = blocking(&live.conn, |c| c.is_alive().unwrap_or(false)).await;
                if alive != Some(true) {
                    return "not alive";
                }
            }
        }
    }
}

/// The raw libvirt state and reason a hint was made from.
fn domain_raw(h: &v1::ObjectState) -> (i32, i32) {
    let s = match v1::DomainState::try_from(h.domain_state) {
        Ok(v1::DomainState::Nostate) => sys::VIR_DOMAIN_NOSTATE,
        Ok(v1::DomainState::Running) => sys::VIR_DOMAIN_RUNNING,
        Ok(v1::DomainState::Blocked) => sys::VIR_DOMAIN_BLOCKED,
        Ok(v1::DomainState::Paused) => sys::VIR_DOMAIN_PAUSED,
        Ok(v1::DomainState::Shutdown) => sys::VIR_DOMAIN_SHUTDOWN,
        Ok(v1::DomainState::Shutoff) => sys::VIR_DOMAIN_SHUTOFF,
        Ok(v1::DomainState::Crashed) => sys::VIR_DOMAIN_CRASHED,
        Ok(v1::DomainState::Pmsuspended) => sys::VIR_DOMAIN_PMSUSPENDED,
        _ => sys::VIR_DOMAIN_NOSTATE,
    };
    (s as i32, h.domain_state_reason)
}

/// Publishes a reconciled lifecycle event for every domain that changed
/// between `before` and `now`; returns how many.
fn reconcile(hub: &Hub, host: &str, before: &Snapshot, now: &Snapshot) -> u32 {
    let mut n = 0;
    let mut emit =
        |uuid: &str, name: &str, event: v1::DomainLifecycleEvent, state: Option<(i32, i32)>| {
            let st = match state {
                Some((s, r)) => v1::ObjectState {
                    exists: true,
                    domain_state: state_enum(s) as i32,
                    domain_state_reason: r,
                    domain_state_reason_name: reason_name(s, r).to_owned(),
                    active: s as u32 != sys::VIR_DOMAIN_SHUTOFF,
                },
                None => v1::ObjectState::default(),
            };
            hub.publish(v1::Event {
                host: host.to_owned(),
                object_type: ObjectType::Domain as i32,
                name: name.to_owned(),
                uuid: uuid.to_owned(),
                time_unix_micros: micros(SystemTime::now()),
                kind: EventKind::Lifecycle as i32,
                reconciled: true,
                state: Some(st),
                details: Some(v1::event::Details::Lifecycle(v1::LifecycleDetails {
                    event: event as i32,
                    detail: 0,
                    detail_name: "RECONCILED".into(),
                })),
                ..Default::default()
            });
            n += 1;
        };
    let mut uuids: Vec<&String> = before.keys().chain(now.keys()).collect();
    uuids.sort();
    uuids.dedup();
    for uuid in uuids {
        match (before.get(uuid), now.get(uuid)) {
            (Some((name, ..)), None) => {
                emit(uuid, name, v1::DomainLifecycleEvent::Undefined, None);
            }
            (None, Some((name, s, r))) => {
                emit(
                    uuid,
                    name,
                    v1::DomainLifecycleEvent::Defined,
                    Some((*s, *r)),
                );
            }
            (Some((_, s0, r0)), Some((name, s, r))) if (s0, r0) != (s, r) => {
                let event = match *s as u32 {
                    sys::VIR_DOMAIN_SHUTOFF => v1::DomainLifecycleEvent::Stopped,
                    sys::VIR_DOMAIN_PAUSED => v1::DomainLifecycleEvent::Suspended,
                    sys::VIR_DOMAIN_RUNNING if *s0 as u32 == sys::VIR_DOMAIN_PAUSED => {
                        v1::DomainLifecycleEvent::Resumed
                    }
                    sys::VIR_DOMAIN_RUNNING => v1::DomainLifecycleEvent::Started,
                    sys::VIR_DOMAIN_CRASHED => v1::DomainLifecycleEvent::Crashed,
                    sys::VIR_DOMAIN_PMSUSPENDED => v1::DomainLifecycleEvent::Pmsuspended,
                    sys::VIR_DOMAIN_SHUTDOWN => v1::DomainLifecycleEvent::Shutdown,
                    _ => v1::DomainLifecycleEvent::Unspecified,
                };
                emit(uuid, name, event, Some((*s, *r)));
            }
            _ => {}
        }
    }
    n
}

fn lifecycle_event(event: i32) -> v1::DomainLifecycleEvent {
    use v1::DomainLifecycleEvent as E;
    match event as u32 {
        sys::VIR_DOMAIN_EVENT_DEFINED => E::Defined,
        sys::VIR_DOMAIN_EVENT_UNDEFINED => E::Undefined,
        sys::VIR_DOMAIN_EVENT_STARTED => E::Started,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => E::Suspended,
        sys::VIR_DOMAIN_EVENT_RESUMED => E::Resumed,
        sys::VIR_DOMAIN_EVENT_STOPPED => E::Stopped,
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => E::Shutdown,
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => E::Pmsuspended,
        sys::VIR_DOMAIN_EVENT_CRASHED => E::Crashed,
        _ => E::Unspecified,
    }
}

/// libvirt's constant name for a lifecycle detail.
pub fn lifecycle_detail_name(event: i32, detail: i32) -> String {
    const DEFINED: &[&str] = &["ADDED", "UPDATED", "RENAMED", "FROM_SNAPSHOT"];
    const UNDEFINED: &[&str] = &["REMOVED", "RENAMED"];
    const STARTED: &[&str] = &[
        "BOOTED",
        "MIGRATED",
        "RESTORED",
        "FROM_SNAPSHOT",
        "WAKEUP",
        "RECREATED",
    ];
    const SUSPENDED: &[&str] = &[
        "PAUSED",
        "MIGRATED",
        "IOERROR",
        "WATCHDOG",
        "RESTORED",
        "FROM_SNAPSHOT",
        "API_ERROR",
        "POSTCOPY",
        "POSTCOPY_FAILED",
    ];
    const RESUMED: &[&str] = &[
        "UNPAUSED",
        "MIGRATED",
        "FROM_SNAPSHOT",
        "POSTCOPY",
        "POSTCOPY_FAILED",
    ];
    const STOPPED: &[&str] = &[
        "SHUTDOWN",
        "DESTROYED",
        "CRASHED",
        "MIGRATED",
        "SAVED",
        "FAILED",
        "FROM_SNAPSHOT",
    ];
    const SHUTDOWN: &[&str] = &["FINISHED", "GUEST", "HOST"];
    const PMSUSPENDED: &[&str] = &["MEMORY", "DISK"];
    const CRASHED: &[&str] = &["PANICKED", "CRASHLOADED"];
    let (prefix, table) = match event as u32 {
        sys::VIR_DOMAIN_EVENT_DEFINED => ("DEFINED", DEFINED),
        sys::VIR_DOMAIN_EVENT_UNDEFINED => ("UNDEFINED", UNDEFINED),
        sys::VIR_DOMAIN_EVENT_STARTED => ("STARTED", STARTED),
        sys::VIR_DOMAIN_EVENT_SUSPENDED => ("SUSPENDED", SUSPENDED),
        sys::VIR_DOMAIN_EVENT_RESUMED => ("RESUMED", RESUMED),
        sys::VIR_DOMAIN_EVENT_STOPPED => ("STOPPED", STOPPED),
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => ("SHUTDOWN", SHUTDOWN),
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => ("PMSUSPENDED", PMSUSPENDED),
        sys::VIR_DOMAIN_EVENT_CRASHED => ("CRASHED", CRASHED),
        _ => return format!("UNKNOWN_{detail}"),
    };
    match usize::try_from(detail).ok().and_then(|d| table.get(d)) {
        Some(name) => format!("VIR_DOMAIN_EVENT_{prefix}_{name}"),
        None => format!("VIR_DOMAIN_EVENT_{prefix}_{detail}"),
    }
}

fn object_lifecycle_name(prefix: &str, event: i32) -> String {
    const NAMES: &[&str] = &[
        "DEFINED",
        "UNDEFINED",
        "STARTED",
        "STOPPED",
        "CREATED",
        "DELETED",
    ];
    match usize::try_from(event).ok().and_then(|e| NAMES.get(e)) {
        Some(n) => format!("{prefix}_{n}"),
        None => format!("{prefix}_{event}"),
    }
}

fn block_job_status_name(status: i32) -> &'static str {
    match status {
        0 => "VIR_DOMAIN_BLOCK_JOB_COMPLETED",
        1 => "VIR_DOMAIN_BLOCK_JOB_FAILED",
        2 => "VIR_DOMAIN_BLOCK_JOB_CANCELED",
        3 => "VIR_DOMAIN_BLOCK_JOB_READY",
        _ => "UNKNOWN",
    }
}

fn watchdog_name(action: i32) -> &'static str {
    match action {
        0 => "VIR_DOMAIN_EVENT_WATCHDOG_NONE",
        1 => "VIR_DOMAIN_EVENT_WATCHDOG_PAUSE",
        2 => "VIR_DOMAIN_EVENT_WATCHDOG_RESET",
        3 => "VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF",
        4 => "VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN",
        5 => "VIR_DOMAIN_EVENT_WATCHDOG_DEBUG",
        6 => "VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI",
        _ => "UNKNOWN",
    }
}

/// Turns a raw callback report into a protobuf event (without sequence).
pub fn convert(host: &str, raw: RawEvent, state: Option<v1::ObjectState>) -> v1::Event {
    use v1::event::Details as D;
    let (kind, details) = match raw.kind {
        RawKind::Lifecycle { event, detail } => (
            EventKind::Lifecycle,
            Some(D::Lifecycle(v1::LifecycleDetails {
                event: lifecycle_event(event) as i32,
                detail,
                detail_name: lifecycle_detail_name(event, detail),
            })),
        ),
        RawKind::Reboot => (EventKind::Reboot, None),
        RawKind::DeviceAdded(alias) => (
            EventKind::DeviceAdded,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::DeviceRemoved(alias) => (
            EventKind::DeviceRemoved,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::DeviceRemovalFailed(alias) => (
            EventKind::DeviceRemovalFailed,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::AgentLifecycle { state, reason } => (
            EventKind::AgentLifecycle,
            Some(D::AgentLifecycle(v1::AgentLifecycleDetails {
                connected: state as u32
                    == sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED,
                state,
                reason,
                reason_name: match reason {
                    1 => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED",
                    2 => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL",
                    _ => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_UNKNOWN",
                }
                .to_owned(),
            })),
        ),
        RawKind::BlockJob {
            disk,
            job_type,
            status,
        } => (
            EventKind::BlockJob,
            Some(D::BlockJob(v1::BlockJobDetails {
                disk,
                job_type,
                status,
                status_name: block_job_status_name(status).to_owned(),
            })),
        ),
        RawKind::Watchdog(action) => (
            EventKind::Watchdog,
            Some(D::Watchdog(v1::WatchdogDetails {
                action,
                action_name: watchdog_name(action).to_owned(),
            })),
        ),
        RawKind::IoError {
            src,
            alias,
            action,
            reason,
        } => (
            EventKind::IoError,
            Some(D::IoError(v1::IoErrorDetails {
                source_path: src,
                device_alias: alias,
                action,
                reason,
            })),
        ),
        RawKind::Metadata { kind, nsuri } => (
            EventKind::MetadataChange,
            Some(D::MetadataChange(v1::MetadataChangeDetails {
                metadata_type: kind,
                namespace_uri: nsuri,
            })),
        ),
        RawKind::RtcChange(off) => (
            EventKind::RtcChange,
            Some(D::RtcChange(v1::RtcChangeDetails {
                utc_offset_seconds: off,
            })),
        ),
        RawKind::BalloonChange(kib) => (
            EventKind::BalloonChange,
            Some(D::BalloonChange(v1::BalloonChangeDetails {
                actual_kib: kib,
            })),
        ),
        RawKind::PmSuspend(reason) => (EventKind::PmSuspend, Some(D::Pm(v1::PmDetails { reason }))),
        RawKind::PmWakeup(reason) => (EventKind::PmWakeup, Some(D::Pm(v1::PmDetails { reason }))),
        RawKind::TrayChange { alias, reason } => (
            EventKind::TrayChange,
            Some(D::TrayChange(v1::TrayChangeDetails {
                device_alias: alias,
                opened: reason as u32 == sys::VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN,
            })),
        ),
        RawKind::JobCompleted(stats) => (
            EventKind::JobCompleted,
            Some(D::JobCompleted(v1::JobCompletedDetails {
                stats: stats.into_iter().collect(),
            })),
        ),
        RawKind::PoolLifecycle { event, detail } => (
            EventKind::StoragePoolLifecycle,
            Some(D::ObjectLifecycle(v1::ObjectLifecycleDetails {
                event,
                event_name: object_lifecycle_name("VIR_STORAGE_POOL_EVENT", event),
                detail,
            })),
        ),
        RawKind::NetworkLifecycle { event, detail } => (
            EventKind::NetworkLifecycle,
            Some(D::ObjectLifecycle(v1::ObjectLifecycleDetails {
                event,
                event_name: object_lifecycle_name("VIR_NETWORK_EVENT", event),
                detail,
            })),
        ),
        RawKind::Closed(r) => (
            EventKind::HostDisconnected,
            Some(D::HostDetails(v1::HostDetails {
                reason: close_reason(r).to_owned(),
                reconciled_events: 0,
            })),
        ),
    };
    let object_type = match raw.object {
        Object::Domain => ObjectType::Domain,
        Object::StoragePool => ObjectType::StoragePool,
        Object::Network => ObjectType::Network,
        Object::Connection => ObjectType::Host,
    };
    v1::Event {
        host: host.to_owned(),
        object_type: object_type as i32,
        name: raw.name,
        uuid: raw.uuid,
        time_unix_micros: micros(raw.at),
        kind: kind as i32,
        state,
        details,
        ..Default::default()
    }
}

/// A subscriber's server-side filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Hosts (empty: all).
    pub hosts: Vec<String>,
    /// Object names (empty: all).
    pub names: Vec<String>,
    /// Object UUIDs (empty: all).
    pub uuids: Vec<String>,
    /// Kinds (empty: all).
    pub kinds: Vec<i32>,
    /// Object types (empty: all).
    pub object_types: Vec<i32>,
}

impl Filter {
    /// Whether `e` passes. Host connectivity events pass every filter but
    /// the host filter.
    pub fn accepts(&self, e: &v1::Event) -> bool {
        if !self.hosts.is_empty() && !self.hosts.contains(&e.host) {
            return false;
        }
        if e.object_type == ObjectType::Host as i32 {
            return true;
        }
        (self.names.is_empty() || self.names.contains(&e.name))
            && (self.uuids.is_empty() || self.uuids.contains(&e.uuid))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && (self.object_types.is_empty() || self.object_types.contains(&e.object_type))
    }
}

fn event_msg(e: &v1::Event) -> v1::WatchEventsResponse {
    v1::WatchEventsResponse {
        message: Some(v1::watch_events_response::Message::Event(e.clone())),
    }
}

fn lost_msg(l: v1::EventsLost) -> v1::WatchEventsResponse {
    v1::WatchEventsResponse {
        message: Some(v1::watch_events_response::Message::EventsLost(l)),
    }
}

/// The status message that ends every watch stream at server shutdown.
pub const SHUTDOWN_MESSAGE: &str =
    "server shutting down; reconnect and resume from your last sequence";

/// The status that ends every watch stream at server shutdown.
pub fn shutting_down() -> tonic::Status {
    tonic::Status::unavailable(SHUTDOWN_MESSAGE)
}

/// The item type of a watch stream.
pub type StreamItem = Result<v1::WatchEventsResponse, tonic::Status>;

/// Starts a subscriber's task; the receiver is the gRPC response stream.
pub fn stream(
    hub: &Arc<Hub>,
    sub: hub::Subscription,
    filter: Filter,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<StreamItem> {
    let (tx, out) = mpsc::channel::<StreamItem>(STREAM_BUFFER);
    let hub = Arc::clone(hub);
    tokio::spawn(async move {
        let hub::Subscription {
            position,
            lost,
            replay,
            mut rx,
        } = sub;
        let started = v1::WatchEventsResponse {
            message: Some(v1::watch_events_response::Message::Started(
                v1::WatchStarted {
                    epoch: position.epoch.clone(),
                    sequence: position.sequence,
                    oldest_sequence: position.oldest,
                },
            )),
        };
        if tx.send(Ok(started)).await.is_err() {
            return;
        }
        if let Some(l) = lost {
            if tx.send(Ok(lost_msg(l))).await.is_err() {
                return;
            }
        }
        for e in replay.iter().filter(|e| filter.accepts(e)) {
            if tx.send(Ok(event_msg(e))).await.is_err() {
                return;
            }
        }
        drop(replay);
        let mut last = position.sequence;
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => None,
                _ = tx.closed() => return,
                r = rx.recv() => Some(r),
            };
            let Some(next) = next else {
                // Server shutdown: end the stream with UNAVAILABLE, never
                // OK, so the client knows to reconnect and resume. A
                // subscriber that stopped reading never takes this status;
                // its connection is closed at the end of the grace period,
                // which ends this send too.
                tokio::select! {
                    _ = tx.send(Err(shutting_down())) => {}
                    _ = tx.closed() => {}
                }
                return;
            };
            let msg = match next {
                Ok(e) => {
                    last = e.sequence;
                    if !filter.accepts(&e) {
                        continue;
                    }
                    event_msg(&e)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let from = last + 1;
                    last += n;
                    lost_msg(v1::EventsLost {
                        from_sequence: from,
                        to_sequence: last,
                        epoch: hub.epoch().to_owned(),
                        reason: v1::LossReason::SubscriberTooSlow as i32,
                    })
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A subscriber that does not read is told exactly which range it lost,
    /// and every sequence is either delivered or inside a reported range.
    #[tokio::test]
    async fn slow_subscriber_is_told_what_it_lost() {
        let hub = Hub::new(16);
        let sub = hub.subscribe(None).unwrap();
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let mut rx = stream(&hub, sub, Filter::default(), shutdown);
        let total = (hub::BROADCAST_CAPACITY + STREAM_BUFFER) as u64 * 3;
        for _ in 0..total {
            hub.publish(v1::Event::default());
        }
        let mut covered = 0u64;
        let mut lost_ranges = 0;
        while covered < total {
            let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match msg.message.unwrap() {
                v1::watch_events_response::Message::Started(s) => assert_eq!(s.sequence, 0),
                v1::watch_events_response::Message::Event(e) => {
                    assert_eq!(e.sequence, covered + 1);
                    covered = e.sequence;
                }
                v1::watch_events_response::Message::EventsLost(l) => {
                    assert_eq!(l.reason(), v1::LossReason::SubscriberTooSlow);
                    assert_eq!(l.from_sequence, covered + 1);
                    covered = l.to_sequence;
                    lost_ranges += 1;
                }
            }
        }
        assert!(lost_ranges >= 1);
        assert_eq!(covered, total);
    }

    /// Shutdown ends a stream with UNAVAILABLE, never a clean end.
    #[tokio::test]
    async fn shutdown_ends_streams_unavailable() {
        let hub = Hub::new(16);
        let sub = hub.subscribe(None).unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut rx = stream(&hub, sub, Filter::default(), shutdown);
        let first = rx.recv().await.unwrap().unwrap();
        assert!(matches!(
            first.message,
            Some(v1::watch_events_response::Message::Started(_))
        ));
        stop.send(true).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert_eq!(end.message(), SHUTDOWN_MESSAGE);
        assert!(rx.recv().await.is_none(), "nothing after the status");
    }

    #[test]
    fn detail_names_follow_libvirt() {
        assert_eq!(
            lifecycle_detail_name(sys::VIR_DOMAIN_EVENT_STOPPED as i32, 1),
            "VIR_DOMAIN_EVENT_STOPPED_DESTROYED"
        );
        assert_eq!(
            object_lifecycle_name("VIR_NETWORK_EVENT", 2),
            "VIR_NETWORK_EVENT_STARTED"
        );
    }
}
