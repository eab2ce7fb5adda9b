//! The per-host event source: one task per host that owns the host's event
//! connection and the registration of every callback on it, reads the raw
//! events in order, observes each object's state right after its event,
//! and reconnects (with the pool's policy) when the connection is lost.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, watch};
use virt::connect::Connect;

use super::{
    convert,
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

/// Blocking: every domain's `(name, state, reason)` by UUID.
fn list_states(conn: &Connect) -> Result<Snapshot, Error> {
    let mut out = Snapshot::new();
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

/// Blocking: the state of an object right after its event.
fn observe(conn: &Connect, object: Object, uuid: &str) -> Option<Observed> {
    // Only libvirt's "no such object" means the object is gone; any other
    // failure (the connection died right after the event) leaves the state
    // unknown: no hint, rather than a false "vanished".
    let gone = |e: virt::error::Error| crate::error::is_not_found(&e).then_some(Observed::Gone);
    match object {
        Object::Domain => {
            let d = match conn.lookup_domain_by_uuid_string(uuid) {
                Ok(d) => d,
                Err(e) => return gone(e),
            };
            let (state, reason) = match libvirt_sys::domain_state(&d) {
                Ok(sr) => sr,
                Err(Error::Libvirt { error: e, .. }) => return gone(e),
                Err(_) => return None,
            };
            Some(Observed::Domain {
                state,
                reason,
                active: d.is_active().unwrap_or(false),
            })
        }
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
        Object::Connection => None,
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

/// Forwards events until the connection is lost; returns why. Keeps
/// `states` (the domains as last seen) current for the next reconciliation.
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
                let Some(raw) = raw else { return Lost::ChannelClosed };
                if raw.generation != generation {
                    continue;
                }
                if let RawKind::Closed(r) = raw.kind {
                    return Lost::Closed(r);
                }
                if raw.object == Object::Domain {
                    // Before the event can be published (see ops::cache).
                    facts.forget(&raw.uuid);
                }
                let (object, uuid) = (raw.object, raw.uuid.clone());
                let observed = blocking(&live.conn, move |c| observe(c, object, &uuid))
                    .await
                    .flatten();
                if object == Object::Domain {
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
            _ = tick.tick() => {
                let alive = blocking(&live.conn, |c| c.is_alive().unwrap_or(false)).await;
                if alive != Some(true) {
                    return Lost::NotAlive;
                }
            }
        }
    }
}
