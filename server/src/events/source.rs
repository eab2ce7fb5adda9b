//! The per-host event source: one task per host that owns the host's event
//! connection and the registration of every callback on it, reads the raw
//! events in order and in batches, gives each its state hint (from the
//! event where libvirt's detail says it, else one bulk read per batch:
//! [`hints`]), publishes them in libvirt's order, and reconnects (with the
//! pool's policy) when the connection is lost.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};
use virt::{connect::Connect, domain::Domain, sys};

use super::{
    convert, hints,
    hub::Hub,
    reconcile::{self, Snapshot},
};
use crate::{
    error::Error,
    libvirt_sys::{self, Object, RawEvent, RawKind, Registration, Sink},
    ops::cache::Facts,
    pool::{retry_delay, HostPool, Hosts},
};

/// How often the event connection is checked with `virConnectIsAlive`.
pub const ALIVE_CHECK: Duration = Duration::from_millis(500);

/// How long a subscription waits for the hosts' first event registrations.
pub const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// Starts one event task per host and returns the hub they feed.
///
/// Also returns a signal that turns true once every host's first attempt to
/// open its event connection has finished (callbacks registered, or the host
/// found down). `WatchEvents` waits for it (at most [`STARTUP_WAIT`]) before
/// subscribing, so a client that subscribes right after the server starts
/// cannot miss an event whose callback was not registered yet, while other
/// calls are served at once even when a host hangs.
pub fn start(hosts: &Hosts, ring_size: usize) -> (Arc<Hub>, watch::Receiver<bool>) {
    let hub = Hub::new(ring_size);
    let mut first_attempts = Vec::new();
    for pool in hosts.iter() {
        let (tx, rx) = oneshot::channel();
        first_attempts.push(rx);
        tokio::spawn(run_host(Arc::clone(pool), Arc::clone(&hub), Some(tx)));
    }
    let (ready_tx, ready_rx) = watch::channel(false);
    tokio::spawn(async move {
        futures::future::join_all(first_attempts).await;
        let _ = ready_tx.send(true);
    });
    (hub, ready_rx)
}

/// An object's state as read from libvirt right after its event, in
/// libvirt's own values ([`convert`] turns it into a `v1::ObjectState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// libvirt says there is no such object (any more).
    Gone,
    /// A domain: its virDomainState, the state's reason, and whether it is
    /// active.
    Domain {
        /// virDomainState.
        state: i32,
        /// The reason of that state.
        reason: i32,
        /// Whether the domain is active.
        active: bool,
    },
    /// A storage pool or network, and whether it is active.
    Other {
        /// Whether the object is active.
        active: bool,
    },
}

/// Why an event connection was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// libvirt's close callback ran, with this virConnectCloseReason.
    Closed(i32),
    /// `virConnectIsAlive` said no (or could not run).
    NotAlive,
    /// The callbacks' channel closed (cannot happen while the task runs).
    ChannelClosed,
}

struct Live {
    conn: Connect,
    reg: Option<Registration>,
}

/// Blocking: opens the event connection as the pool opens its own and
/// registers every callback.
fn open(pool: &HostPool, sink: &Sink) -> Result<Live, Error> {
    let conn = pool.open_connection()?;
    let reg = libvirt_sys::register(&conn, sink)?;
    Ok(Live {
        conn,
        reg: Some(reg),
    })
}

/// Blocking: every domain's `(name, state, reason)` by UUID, from one
/// `virConnectGetAllDomainStats` call (state group): one round trip
/// whatever the number of domains.
fn list_states(conn: &Connect) -> Result<Snapshot, Error> {
    let listed = libvirt_sys::domain_stats(conn, &[], sys::VIR_DOMAIN_STATS_STATE, 0)?;
    let mut out = Snapshot::with_capacity(listed.records().len());
    for rec in listed.records() {
        // Name and UUID are read from the handle itself (local calls).
        let (Ok(uuid), Ok(name)) = (libvirt_sys::uuid_of(rec.domain()), rec.domain().name()) else {
            continue;
        };
        if let Some((s, r)) = hints::state_of(&rec.params) {
            out.insert(uuid, (name, s, r));
        }
    }
    Ok(out)
}

/// Blocking: the state of a pool or network right after its event.
fn observe_other(conn: &Connect, object: Object, uuid: &str) -> Option<Observed> {
    // Only libvirt's "no such object" means the object is gone; any other
    // failure (the connection died right after the event) leaves the state
    // unknown: no hint, rather than a false "vanished".
    let gone = |e: virt::error::Error| crate::error::is_not_found(&e).then_some(Observed::Gone);
    match object {
        Object::StoragePool => match conn.lookup_storage_pool_by_uuid_string(uuid) {
            Ok(p) => Some(Observed::Other {
                active: p.is_active().unwrap_or(false),
            }),
            Err(e) => gone(e),
        },
        Object::Network => match conn.lookup_network_by_uuid_string(uuid) {
            Ok(n) => Some(Observed::Other {
                active: n.is_active().unwrap_or(false),
            }),
            Err(e) => gone(e),
        },
        Object::Domain | Object::Connection => None,
    }
}

/// Blocking: one domain's state through its handle, when the bulk call
/// failed (two round trips, no lookup).
fn observe_one(d: &Domain) -> Option<Observed> {
    match libvirt_sys::domain_state(d) {
        Ok((state, reason)) => Some(Observed::Domain {
            state,
            reason,
            active: d.is_active().unwrap_or(false),
        }),
        Err(e) if e.is_not_found() => Some(Observed::Gone),
        Err(_) => None,
    }
}

/// Blocking: the states of every domain of `handles` (by UUID), read with
/// ONE `virDomainListGetStats` call (state group) on the handles the
/// callbacks gave: a domain without a record no longer exists (gone), and a
/// domain is active when its record's handle has an id. Should the bulk
/// call fail (a driver without it), each domain is read on its own; a
/// connection failure leaves the states unknown (no hint).
fn observe_domains(conn: &Connect, handles: &[(String, Domain)]) -> HashMap<String, Observed> {
    let mut out = HashMap::with_capacity(handles.len());
    if handles.is_empty() {
        return out;
    }
    let doms: Vec<&Domain> = handles.iter().map(|(_, d)| d).collect();
    match libvirt_sys::domain_stats(conn, &doms, sys::VIR_DOMAIN_STATS_STATE, 0) {
        Ok(listed) => {
            for rec in listed.records() {
                let (Ok(uuid), Some((state, reason))) = (
                    libvirt_sys::uuid_of(rec.domain()),
                    hints::state_of(&rec.params),
                ) else {
                    continue;
                };
                let active = rec.domain().id().is_some();
                out.insert(
                    uuid,
                    Observed::Domain {
                        state,
                        reason,
                        active,
                    },
                );
            }
            for (uuid, _) in handles {
                out.entry(uuid.clone()).or_insert(Observed::Gone);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "bulk domain stats failed; reading one by one");
            for (uuid, d) in handles {
                if let Some(o) = observe_one(d) {
                    out.insert(uuid.clone(), o);
                }
            }
        }
    }
    out
}

/// Blocking: the hints of a batch of raw events (same order), each
/// derived from its event where libvirt's detail says the state
/// ([`hints::source`]), the rest read after the batch: every domain in one
/// bulk call ([`observe_domains`]), pools and networks one by one (rare).
/// Domains whose event carries no handle are looked up by UUID first.
fn observe_batch(conn: &Connect, batch: &[RawEvent]) -> Vec<Option<Observed>> {
    let mut handles: Vec<(String, Domain)> = Vec::new();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for raw in batch {
        if raw.object != Object::Domain
            || hints::source(raw) != hints::Source::Observe
            || !seen.insert(raw.uuid.as_str())
        {
            continue;
        }
        let handle = match &raw.domain {
            Some(d) => d.clone(),
            None => match conn.lookup_domain_by_uuid_string(&raw.uuid) {
                Ok(d) => d,
                Err(e) => {
                    if crate::error::is_not_found(&e) {
                        missing.push(raw.uuid.clone());
                    }
                    continue;
                }
            },
        };
        handles.push((raw.uuid.clone(), handle));
    }
    let mut domains = observe_domains(conn, &handles);
    for uuid in missing {
        domains.insert(uuid, Observed::Gone);
    }
    let mut others: HashMap<&str, Option<Observed>> = HashMap::new();
    batch
        .iter()
        .map(|raw| match hints::source(raw) {
            hints::Source::Derived(o) => Some(o),
            hints::Source::Nothing => None,
            hints::Source::Observe => match raw.object {
                // Unknown (no hint) when neither a record nor a "no such
                // domain" answered for it (the connection failed).
                Object::Domain => domains.get(&raw.uuid).copied(),
                object => *others
                    .entry(raw.uuid.as_str())
                    .or_insert_with(|| observe_other(conn, object, &raw.uuid)),
            },
        })
        .collect()
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

/// The event task of one host (see the module doc of [`super`]). Runs
/// forever.
pub async fn run_host(
    pool: Arc<HostPool>,
    hub: Arc<Hub>,
    mut first_attempt: Option<oneshot::Sender<()>>,
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
        let opener = Arc::clone(&pool);
        let opened = tokio::task::spawn_blocking(move || open(&opener, &sink)).await;
        if let Some(tx) = first_attempt.take() {
            // Callbacks are registered (or the host is down): start-up may go on.
            let _ = tx.send(());
        }
        let live = match opened {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                tracing::debug!(host, error = %e, "event connection failed");
                failures = failures.saturating_add(1);
                tokio::time::sleep(retry_delay(failures)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(host, error = %e, "event connection task failed; events stop for this host");
                return;
            }
        };
        tracing::info!(host, "event connection open");
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
                failures = failures.saturating_add(1);
                tokio::time::sleep(retry_delay(failures)).await;
                continue;
            }
        };
        // Connected and listed: the next loss starts the backoff afresh.
        failures = 0;
        if let Some(before) = snapshot.take() {
            let n = reconcile::publish_changes(&hub, &host, &before, &now);
            tracing::info!(host, reconciled = n, "event connection back");
            hub.publish(convert::reconnected(&host, n));
            pool.record_success();
        }
        // Callbacks are registered and work: from now on every change of a
        // domain clears what is kept of it, so keeping may start.
        pool.facts().set_live(true);
        let mut states = now;
        let why = watch(
            &host,
            &hub,
            pool.facts(),
            &live,
            generation,
            &mut rx,
            &mut states,
        )
        .await;
        pool.facts().set_live(false);
        snapshot = Some(states);
        let reason = convert::disconnect_reason(why).as_str_name();
        tracing::warn!(host, reason, "event connection lost");
        hub.publish(convert::disconnected(&host, why));
        pool.reset_connections();
        pool.record_failure(format!("connection to libvirt lost ({reason})"));
        retire(live);
    }
}

/// Most raw events observed and published as one batch.
pub const MAX_BATCH: usize = 1024;

/// Hands ONE event to the hub, in libvirt's order (every event of a host
/// goes through here). Keeps `states` (the domains as last seen, for the
/// next reconciliation) current from the event's hint. The caller has
/// taken the domain handle out already (see [`drop_blocking`]).
fn publish_event(
    host: &str,
    hub: &Hub,
    states: &mut Snapshot,
    raw: RawEvent,
    observed: Option<Observed>,
) {
    if raw.object == Object::Domain {
        match observed {
            Some(Observed::Domain { state, reason, .. }) => {
                states.insert(raw.uuid.clone(), (raw.name.clone(), state, reason));
            }
            Some(Observed::Gone) => {
                states.remove(&raw.uuid);
            }
            Some(Observed::Other { .. }) | None => {}
        }
    }
    hub.publish(convert::event(host, raw, observed));
}

/// Drops a value holding libvirt references (domain handles) on the
/// blocking pool: `virDomainFree` may release the event connection's last
/// reference, and closing a connection is an RPC.
fn drop_blocking<T: Send + 'static>(v: T) {
    tokio::task::spawn_blocking(move || drop(v));
}

/// Forwards events until the connection is lost; returns why. Keeps
/// `states` (the domains as last seen) current for the next reconciliation.
///
/// Events are taken in batches: whatever is queued when the task wakes (at
/// most [`MAX_BATCH`]). Events at the front of a batch whose hint the event
/// itself gives are published at once; from the first one that needs
/// reading on, the batch is observed with one bulk call
/// ([`observe_batch`]) and then published, in libvirt's order. A burst
/// therefore costs one round trip per batch, not three per event.
async fn watch(
    host: &str,
    hub: &Hub,
    facts: &Facts,
    live: &Live,
    generation: u64,
    rx: &mut mpsc::UnboundedReceiver<RawEvent>,
    states: &mut Snapshot,
) -> Lost {
    let mut tick = tokio::time::interval(ALIVE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            raw = rx.recv() => {
                let Some(first) = raw else { return Lost::ChannelClosed };
                let mut batch = Vec::with_capacity(16);
                let mut closed = None;
                let mut next = Some(first);
                while let Some(raw) = next.take() {
                    if raw.generation != generation {
                        // A dead connection's event: its handle may hold
                        // that connection's last reference.
                        drop_blocking(raw);
                    } else if let RawKind::Closed(r) = raw.kind {
                        closed = Some(r);
                        break;
                    } else {
                        if raw.object == Object::Domain {
                            // As soon as libvirt's event is here, long before
                            // it is published (see ops::cache).
                            facts.forget(&raw.uuid);
                        }
                        batch.push(raw);
                    }
                    if batch.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                // The front whose hints the events give goes out at once.
                let ready = batch
                    .iter()
                    .take_while(|r| hints::source(r) != hints::Source::Observe)
                    .count();
                let rest = batch.split_off(ready);
                let handles: Vec<Domain> =
                    batch.iter_mut().filter_map(|r| r.domain.take()).collect();
                if !handles.is_empty() {
                    drop_blocking(handles);
                }
                for raw in batch {
                    let observed = match hints::source(&raw) {
                        hints::Source::Derived(o) => Some(o),
                        _ => None,
                    };
                    publish_event(host, hub, states, raw, observed);
                }
                if !rest.is_empty() {
                    let observed = blocking(&live.conn, move |c| {
                        let mut rest = rest;
                        // A panic must not take the batch with it: its
                        // events then go out without hints, never lost.
                        let hints = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            observe_batch(c, &rest)
                        }))
                        .unwrap_or_else(|_| vec![None; rest.len()]);
                        // The handles' last use: free them here, off the
                        // async threads.
                        for r in &mut rest {
                            r.domain = None;
                        }
                        (rest, hints)
                    })
                    .await;
                    if let Some((rest, hints)) = observed {
                        for (raw, o) in rest.into_iter().zip(hints) {
                            publish_event(host, hub, states, raw, o);
                        }
                    }
                }
                if let Some(r) = closed {
                    return Lost::Closed(r);
                }
            }
            _ = tick.tick() => {
                let alive = blocking(&live.conn, |c| c.is_alive().unwrap_or(false)).await;
                if alive != Some(true) {
                    return Lost::NotAlive;
                }
            }
        }
    }
}
