//! The connection pool: per host a bounded set of libvirt connections, and the
//! one door (`HostPool::run`) through which every libvirt call passes.
//!
//! # Threads and ownership
//!
//! 1. The server's event implementation (`epoll`-based,
//!    [`crate::libvirt_sys::event_loop`]) is registered once, before the
//!    first connection is opened ([`ensure_event_loop`]), and runs forever on
//!    one named thread, `libvirt-events`. Keepalives and event callbacks are
//!    driven by it.
//! 2. A [`HostPool`] owns `connections` quick-lane slots and one slow-lane
//!    slot, each an optional open `Connect`. Slots are filled lazily, checked
//!    with `virConnectIsAlive` before each use, and refilled when closed.
//!    Quick calls are spread round robin over the quick slots; slow calls
//!    (guest agent, save/restore, transfers) use the slow slot so they never
//!    occupy the few request lanes (`max_client_requests`) a quick slot has.
//! 3. [`HostPool::run`] runs on an async task: it waits (until the request's
//!    deadline) for a permit of the lane's semaphore, the per-host limit on
//!    calls in flight, then moves the permit and the closure onto tokio's
//!    blocking pool. The closure gets a `&Connect`, makes its libvirt calls
//!    and converts their errors on that same thread (libvirt's last error is
//!    per thread). No libvirt object ever crosses an `.await`.
//! 4. When the deadline passes first, the caller gets `DEADLINE_EXCEEDED` at
//!    once; the blocking call finishes in the background and its permit is
//!    released only then, so a slow host cannot accumulate unbounded work.
//! 5. A failed open puts the host into capped exponential backoff
//!    ([`retry_delay`]: 100 ms doubling to 10 s). While the backoff window is
//!    open, calls are answered `UNAVAILABLE` at once instead of hanging. The
//!    host's health (a `watch` channel) follows every open, failure and
//!    probe.
//! 6. Every libvirt connection to a host, the pool's slots and the event
//!    connection of [`crate::events`] alike, is opened by
//!    [`HostPool::open_connection`] (read-only when configured, with
//!    libvirt keepalive) and retried after [`retry_delay`]: one policy.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Once,
    },
    time::Duration,
};

use crate::{
    coalesce::{BatchFuture, Coalescer},
    config::HostConfig,
    error::Error,
    ops::{
        cache::{Facts, Handles},
        domain::{self as domain_ops, DomainInfo, DomainKey, View},
        Connect,
    },
};
use tokio::{
    sync::{watch, Semaphore},
    time::Instant,
};

/// Seconds between libvirt keepalive messages on remote connections.
const KEEPALIVE_INTERVAL_SECS: i32 = 5;
/// Unanswered keepalives before libvirt closes the connection.
const KEEPALIVE_COUNT: u32 = 3;
/// First retry delay after a failed open.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How long to wait before the next attempt after `failures` failed
/// attempts in a row (1 and up): 100 ms doubling to 10 s. The one reconnect
/// policy of every connection to a host (pool slots and event connection).
pub fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1u32 << exp).min(BACKOFF_MAX)
}

static EVENT_LOOP: Once = Once::new();

/// Registers the server's event implementation
/// ([`crate::libvirt_sys::event_loop`]: `epoll`, woken only by what needs a
/// callback) and starts the thread that runs it. Falls back to libvirt's
/// default (GLib) loop if the kernel refuses `epoll`. Idempotent; must run
/// before the first connection is opened.
pub fn ensure_event_loop() {
    EVENT_LOOP.call_once(|| {
        let Err(e) = crate::libvirt_sys::event_loop::register("libvirt-events") else {
            return;
        };
        tracing::warn!(error = %e, "cannot start the epoll event loop; using libvirt's default loop");
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::error!(error = %e, "cannot register libvirt's event implementation");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(|| loop {
                if let Err(e) = virt::event::event_run_default_impl() {
                    tracing::warn!(error = %e, "libvirt event loop iteration failed");
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the libvirt event thread");
        }
    });
}

/// Which lane a call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Short calls: lookups, lifecycle changes, reads.
    Quick,
    /// Calls that may take seconds or minutes.
    Slow,
}

/// Whether the server can reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing tried yet.
    Unknown,
    /// The last open, call or probe succeeded.
    Serving,
    /// The host could not be reached.
    NotServing,
}

/// A host's health and the error that made it unhealthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    /// Serving or not.
    pub health: Health,
    /// The last connection error; empty while serving.
    pub last_error: String,
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// A slot's connection and the pool's epoch when it was opened: a
/// connection of an older epoch is replaced at its next use.
struct Pooled {
    conn: Connect,
    epoch: u64,
}

/// One pool slot: empty, or a connection in use by any number of calls.
type Slot = Mutex<Option<Pooled>>;

/// The connections to one libvirt host and the limits on calls to it.
pub struct HostPool {
    config: HostConfig,
    quick_slots: Vec<Slot>,
    slow_slot: Slot,
    /// Raised by [`reset_connections`](Self::reset_connections): every
    /// connection opened before is stale.
    epoch: AtomicU64,
    next: AtomicUsize,
    quick: Arc<Semaphore>,
    slow: Arc<Semaphore>,
    backoff: Mutex<Backoff>,
    health: watch::Sender<HealthState>,
    default_timeout: Duration,
    /// Slots holding a connection now (for the metrics).
    open: AtomicUsize,
    /// What is kept of the host's domains between calls (`ops::cache`);
    /// the host's event task keeps it honest.
    facts: Arc<Facts>,
    /// Domain handles kept between calls (`ops::cache`), dropped whenever a
    /// slot's connection goes.
    handles: Arc<Handles>,
    /// The `GetDomain` reads waiting for the host's next shared call, per
    /// view ([`get_domain`](Self::get_domain)).
    basic_reads: Arc<Coalescer<HostPool, DomainKey, DomainInfo>>,
    full_reads: Arc<Coalescer<HostPool, DomainKey, DomainInfo>>,
}

/// Most reads one shared call makes.
const MAX_COALESCED_READS: usize = 256;

/// One shared call of reads in `view` ([`domain_ops::get_kept`]) on the
/// quick lane; a failed call answers none of them.
fn reads_batch(pool: Arc<HostPool>, keys: Vec<DomainKey>, view: View) -> BatchFuture<DomainInfo> {
    Box::pin(async move {
        let host = pool.config.name.clone();
        pool.run(Lane::Quick, None, move |c| {
            domain_ops::get_kept(c, &host, &keys, view)
        })
        .await
        .unwrap_or_default()
    })
}

fn basic_reads_batch(pool: Arc<HostPool>, keys: Vec<DomainKey>) -> BatchFuture<DomainInfo> {
    reads_batch(pool, keys, View::Basic)
}

fn full_reads_batch(pool: Arc<HostPool>, keys: Vec<DomainKey>) -> BatchFuture<DomainInfo> {
    reads_batch(pool, keys, View::Full)
}

impl std::fmt::Debug for HostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPool")
            .field("name", &self.config.name)
            .field("uri", &self.config.uri)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a slot leaves a connection or nothing in it;
    // both are valid states, so poisoning carries no meaning here.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HostPool {
    /// A pool for one host; opens nothing yet.
    pub fn new(config: HostConfig, default_timeout: Duration) -> Arc<Self> {
        ensure_event_loop();
        let (health, _) = watch::channel(HealthState {
            health: Health::Unknown,
            last_error: String::new(),
        });
        Arc::new(HostPool {
            quick_slots: (0..config.connections).map(|_| Mutex::new(None)).collect(),
            slow_slot: Mutex::new(None),
            epoch: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            quick: Arc::new(Semaphore::new(config.max_in_flight)),
            slow: Arc::new(Semaphore::new(config.max_slow_in_flight)),
            backoff: Mutex::new(Backoff::default()),
            health,
            default_timeout,
            open: AtomicUsize::new(0),
            facts: Arc::default(),
            handles: Arc::default(),
            basic_reads: Arc::new(Coalescer::new(basic_reads_batch, MAX_COALESCED_READS)),
            full_reads: Arc::new(Coalescer::new(full_reads_batch, MAX_COALESCED_READS)),
            config,
        })
    }

    /// The configured host name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The libvirt URI.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// The URI of QEMU's migration stream to this host, when configured.
    pub fn migration_uri(&self) -> Option<String> {
        self.config.migration_uri()
    }

    /// What is kept of this host's domains between calls: the host's event
    /// task clears a domain's entry on each of its events
    /// ([`Facts::forget`]) and says when events flow ([`Facts::set_live`]).
    pub fn facts(&self) -> &Arc<Facts> {
        &self.facts
    }

    /// The current health.
    pub fn health(&self) -> HealthState {
        self.health.borrow().clone()
    }

    /// A receiver that sees every health change.
    pub fn watch_health(&self) -> watch::Receiver<HealthState> {
        self.health.subscribe()
    }

    /// Quick-lane calls that could start right now.
    pub fn available_permits(&self) -> usize {
        self.quick.available_permits()
    }

    /// The configured limit of calls in flight on `lane`.
    pub fn lane_limit(&self, lane: Lane) -> usize {
        match lane {
            Lane::Quick => self.config.max_in_flight,
            Lane::Slow => self.config.max_slow_in_flight,
        }
    }

    /// Calls holding a permit of `lane` now: running on the blocking pool,
    /// including ones whose caller already got `DEADLINE_EXCEEDED` (the
    /// permit is released when the libvirt call returns).
    pub fn lane_in_flight(&self, lane: Lane) -> usize {
        let available = match lane {
            Lane::Quick => self.quick.available_permits(),
            Lane::Slow => self.slow.available_permits(),
        };
        self.lane_limit(lane).saturating_sub(available)
    }

    /// Pool slots (quick and slow) that hold an open libvirt connection
    /// now; the event connection of [`crate::events`] is not counted.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Empties a slot, keeping the count of open connections.
    fn clear_slot(&self, slot: &mut Option<Pooled>) {
        if slot.take().is_some() {
            self.handles.clear();
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` with a connection to this host on the blocking pool, within
    /// the per-host limit of calls in flight, and gives up with
    /// `DEADLINE_EXCEEDED` at `deadline` (or the default call timeout).
    pub async fn run<T, F>(
        self: &Arc<Self>,
        lane: Lane,
        deadline: Option<Instant>,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect) -> Result<T, Error> + Send + 'static,
    {
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.default_timeout);
        self.fail_fast()?;
        let sem = match lane {
            Lane::Quick => Arc::clone(&self.quick),
            Lane::Slow => Arc::clone(&self.slow),
        };
        let permit = tokio::time::timeout_at(deadline, sem.acquire_owned())
            .await
            .map_err(|_| self.deadline_error())?
            .map_err(|_| Error::internal("host pool closed"))?;
        let pool = Arc::clone(self);
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.call(lane, f)
        });
        match tokio::time::timeout_at(deadline, handle).await {
            Err(_) => Err(self.deadline_error()),
            Ok(Err(join)) => Err(Error::internal_from("libvirt call failed", join)),
            Ok(Ok(result)) => result.map_err(|e| e.on_host(&self.config.name)),
        }
    }

    /// The domain `key` names in `view` ([`domain_ops::get`]), read
    /// together with the other reads in that view of this host asked
    /// meanwhile: a domain whose handle is kept is read in the host's next
    /// shared call (one `virDomainListGetStats` for all of them, begun after
    /// this call was asked: never an older answer, see [`crate::coalesce`]);
    /// any other, or one that call did not answer, is read alone. Within
    /// `deadline`, as [`run`](Self::run).
    pub async fn get_domain(
        self: &Arc<Self>,
        key: DomainKey,
        view: View,
        deadline: Option<Instant>,
    ) -> Result<DomainInfo, Error> {
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.default_timeout);
        self.fail_fast()?;
        let reads = match view {
            View::Basic => &self.basic_reads,
            View::Full => &self.full_reads,
        };
        let shared = tokio::time::timeout_at(deadline, reads.ask(self, key.clone()))
            .await
            .map_err(|_| self.deadline_error())?;
        if let Some(d) = shared {
            return Ok(d);
        }
        let host = self.config.name.clone();
        self.run(Lane::Quick, Some(deadline), move |c| {
            domain_ops::get(c, &key, &host, view)
        })
        .await
    }

    /// Runs `f` with a slow-lane connection to this host and one to
    /// `other` (a migration's source and destination), within both hosts'
    /// slow-lane limits, on the blocking pool. Permits are taken in host-name
    /// order, so two calls between the same hosts in opposite directions
    /// cannot each hold one and wait for the other. As [`run`](Self::run),
    /// the caller gets `DEADLINE_EXCEEDED` at `deadline` while the call goes
    /// on in the background: a caller that must stop it (a migration) aborts
    /// it itself.
    pub async fn run_pair<T, F>(
        self: &Arc<Self>,
        other: &Arc<HostPool>,
        deadline: Instant,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connect, &Connect) -> Result<T, Error> + Send + 'static,
    {
        self.fail_fast()?;
        other.fail_fast()?;
        let (first, second) = if self.name() <= other.name() {
            (self, other)
        } else {
            (other, self)
        };
        let mut permits = Vec::with_capacity(2);
        for pool in [first, second] {
            let permit = tokio::time::timeout_at(deadline, Arc::clone(&pool.slow).acquire_owned())
                .await
                .map_err(|_| pool.deadline_error())?
                .map_err(|_| Error::internal("host pool closed"))?;
            permits.push(permit);
        }
        let (src, dst) = (Arc::clone(self), Arc::clone(other));
        let handle = tokio::task::spawn_blocking(move || {
            let _permits = permits;
            src.call_pair(&dst, f)
        });
        match tokio::time::timeout_at(deadline, handle).await {
            Err(_) => Err(self.deadline_error()),
            Ok(Err(join)) => Err(Error::internal_from("libvirt call failed", join)),
            Ok(Ok(result)) => result.map_err(|e| e.on_host(&self.config.name)),
        }
    }

    fn deadline_error(&self) -> Error {
        Error::host_deadline(&self.config.name)
    }

    /// Answers at once while a failed host is in its backoff window.
    fn fail_fast(&self) -> Result<(), Error> {
        let b = lock(&self.backoff);
        match b.retry_at {
            Some(at) if at > Instant::now() => Err(Error::HostUnavailable {
                host: self.config.name.clone(),
                reason: b.last_error.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn slot(&self, lane: Lane) -> &Slot {
        match lane {
            Lane::Slow => &self.slow_slot,
            Lane::Quick => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.quick_slots.len();
                &self.quick_slots[i]
            }
        }
    }

    /// Blocking: takes a live connection from a slot and runs `f` with it.
    fn call<T>(
        &self,
        lane: Lane,
        f: impl FnOnce(&Connect) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let slot = self.slot(lane);
        let conn = self.connection(slot)?;
        let result = f(&conn);
        if let Err(e) = &result {
            let alive = conn.is_alive().unwrap_or(false);
            if !alive || e.is_connection_failure() {
                tracing::warn!(host = %self.config.name, error = %e, "libvirt connection lost");
                self.drop_connection(slot);
                self.record_failure(e.to_string());
                return Err(Error::HostUnavailable {
                    host: self.config.name.clone(),
                    reason: e.to_string(),
                });
            }
        }
        result
    }

    /// Blocking: [`call`](Self::call) with a slow-lane connection of this
    /// host and one of `other`. A failure is held against the host whose
    /// connection it broke (each connection's liveness is checked), never
    /// against the other one.
    fn call_pair<T>(
        &self,
        other: &HostPool,
        f: impl FnOnce(&Connect, &Connect) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mine = self.connection(&self.slow_slot)?;
        let theirs = other.connection(&other.slow_slot)?;
        let result = f(&mine, &theirs);
        if let Err(e) = &result {
            for (pool, conn) in [(self, &mine), (other, &theirs)] {
                if !conn.is_alive().unwrap_or(false) {
                    tracing::warn!(host = %pool.config.name, error = %e, "libvirt connection lost");
                    pool.drop_connection(&pool.slow_slot);
                    pool.record_failure(e.to_string());
                }
            }
        }
        result
    }

    /// Blocking: a live connection of the current epoch from `slot`,
    /// opening one if needed.
    fn connection(&self, slot: &Slot) -> Result<Connect, Error> {
        let mut guard = lock(slot);
        let epoch = self.epoch.load(Ordering::Acquire);
        if let Some(p) = guard.as_ref() {
            if p.epoch == epoch && p.conn.is_alive().unwrap_or(false) {
                return Ok(p.conn.clone());
            }
            tracing::info!(host = %self.config.name, "replacing a closed or stale libvirt connection");
            self.clear_slot(&mut guard);
        }
        self.fail_fast()?;
        match self.open_connection() {
            Ok(conn) => {
                let conn = Connect::new(conn, Arc::clone(&self.handles), Arc::clone(&self.facts));
                self.record_success();
                self.clear_slot(&mut guard);
                *guard = Some(Pooled {
                    conn: conn.clone(),
                    epoch,
                });
                self.open.fetch_add(1, Ordering::Relaxed);
                Ok(conn)
            }
            Err(e) => {
                let reason = e.message().to_owned();
                self.record_failure(reason.clone());
                Err(Error::HostUnavailable {
                    host: self.config.name.clone(),
                    reason,
                })
            }
        }
    }

    /// Blocking: opens a new connection to this host as configured
    /// (read-only or not) with libvirt keepalive; the pool's slots and the
    /// event connection both open theirs here. Records nothing: the caller
    /// owns its retry state.
    pub fn open_connection(&self) -> Result<virt::connect::Connect, virt::error::Error> {
        let conn = if self.config.read_only {
            virt::connect::Connect::open_read_only(Some(&self.config.uri))
        } else {
            virt::connect::Connect::open(Some(&self.config.uri))
        }?;
        // Local drivers (test://, qemu:/// over the unix socket too) may
        // refuse keepalive; it only matters for remote transports.
        if let Err(e) = conn.set_keep_alive(KEEPALIVE_INTERVAL_SECS, KEEPALIVE_COUNT) {
            tracing::debug!(host = %self.config.name, error = %e, "keepalive not enabled");
        }
        Ok(conn)
    }

    fn drop_connection(&self, slot: &Slot) {
        self.clear_slot(&mut lock(slot));
    }

    /// Makes every pooled connection stale, e.g. after the event connection
    /// saw the host go away: each slot opens a new one at its next use.
    /// Never blocks the caller (an async task): the idle slots are emptied
    /// on the blocking pool, as closing a connection is a libvirt call, and
    /// a slot that is busy (a call in flight, or an open that a frozen
    /// daemon never answers) is left to its holder, whose next use replaces
    /// it. The handle says when the idle slots are empty.
    pub fn reset_connections(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.sweep_stale())
    }

    /// Blocking: empties each idle slot whose connection is older than the
    /// current epoch; skips busy slots.
    fn sweep_stale(&self) {
        let epoch = self.epoch.load(Ordering::Acquire);
        for slot in self.quick_slots.iter().chain([&self.slow_slot]) {
            let mut guard = match slot.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            if guard.as_ref().is_some_and(|p| p.epoch != epoch) {
                self.clear_slot(&mut guard);
            }
        }
    }

    /// Records a successful open or call.
    pub fn record_success(&self) {
        {
            let mut b = lock(&self.backoff);
            *b = Backoff::default();
        }
        self.health.send_if_modified(|h| {
            let changed = h.health != Health::Serving;
            h.health = Health::Serving;
            h.last_error.clear();
            changed
        });
    }

    /// Records a failed open and schedules the next attempt.
    pub fn record_failure(&self, reason: String) {
        {
            let mut b = lock(&self.backoff);
            b.failures = b.failures.saturating_add(1);
            b.retry_at = Some(Instant::now() + retry_delay(b.failures));
            b.last_error = reason.clone();
        }
        self.health.send_if_modified(|h| {
            let changed = h.health != Health::NotServing || h.last_error != reason;
            h.health = Health::NotServing;
            h.last_error = reason;
            changed
        });
    }

    /// Checks the host once (used by the periodic health probe).
    pub async fn probe(self: &Arc<Self>, timeout: Duration) -> Result<(), Error> {
        self.run(Lane::Quick, Some(Instant::now() + timeout), |c| {
            c.lib_version()?;
            Ok(())
        })
        .await
    }
}

/// Every configured host, by name; the first is the default.
#[derive(Debug, Clone)]
pub struct Hosts {
    pools: Arc<Vec<Arc<HostPool>>>,
}

impl Hosts {
    /// Pools for the configured hosts.
    pub fn new(configs: &[HostConfig], default_timeout: Duration) -> Self {
        Hosts {
            pools: Arc::new(
                configs
                    .iter()
                    .map(|c| HostPool::new(c.clone(), default_timeout))
                    .collect(),
            ),
        }
    }

    /// The pool for `name`; an empty name means the default host.
    pub fn get(&self, name: &str) -> Result<&Arc<HostPool>, Error> {
        let pool = if name.is_empty() {
            self.pools
                .first()
                .ok_or_else(|| Error::internal("no hosts configured"))?
        } else {
            self.pools
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| Error::UnknownHost(name.to_owned()))?
        };
        crate::auth::audit::note_host(pool.name());
        Ok(pool)
    }

    /// All pools, the default first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<HostPool>> {
        self.pools.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The open-connection count follows the slots; in-flight follows the
    /// lane's permits.
    #[tokio::test]
    async fn connection_and_permit_counts() {
        let pool = HostPool::new(
            HostConfig::new("default", "test:///default"),
            Duration::from_secs(10),
        );
        assert_eq!(pool.open_connections(), 0, "nothing opened yet");
        assert_eq!(pool.lane_limit(Lane::Quick), 32);
        assert_eq!(pool.lane_limit(Lane::Slow), 4);
        let (inside, seen) = (Arc::new(std::sync::Barrier::new(2)), Arc::clone(&pool));
        let gate = Arc::clone(&inside);
        let call = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                pool.run(Lane::Slow, None, move |c| {
                    gate.wait();
                    gate.wait();
                    Ok(c.lib_version()?)
                })
                .await
            }
        });
        let b = Arc::clone(&inside);
        tokio::task::spawn_blocking(move || b.wait()).await.unwrap();
        assert_eq!(seen.lane_in_flight(Lane::Slow), 1);
        assert_eq!(seen.lane_in_flight(Lane::Quick), 0);
        let b = Arc::clone(&inside);
        tokio::task::spawn_blocking(move || b.wait()).await.unwrap();
        call.await.unwrap().unwrap();
        assert_eq!(pool.lane_in_flight(Lane::Slow), 0);
        assert_eq!(pool.open_connections(), 1, "the slow slot");
        for _ in 0..3 {
            pool.run(Lane::Quick, None, |c| Ok(c.lib_version()?))
                .await
                .unwrap();
        }
        assert_eq!(
            pool.open_connections(),
            4,
            "three quick slots and the slow one"
        );
        pool.reset_connections().await.unwrap();
        assert_eq!(pool.open_connections(), 0);
        pool.run(Lane::Quick, None, |c| Ok(c.lib_version()?))
            .await
            .unwrap();
        assert_eq!(pool.open_connections(), 1);
    }

    /// A reset does not wait for a busy slot (here: one whose lock is held,
    /// as by an open a frozen daemon never answers): it empties the idle
    /// ones, and the busy slot's next use replaces its stale connection.
    // The test holds a slot's lock across the reset on purpose; the sweep
    // only tries it.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn a_reset_leaves_a_busy_slot_to_its_holder() {
        let pool = HostPool::new(
            HostConfig::new("default", "test:///default"),
            Duration::from_secs(10),
        );
        pool.run(Lane::Slow, None, |c| Ok(c.lib_version()?))
            .await
            .unwrap();
        pool.run(Lane::Quick, None, |c| Ok(c.lib_version()?))
            .await
            .unwrap();
        assert_eq!(pool.open_connections(), 2);
        let held = lock(&pool.slow_slot);
        tokio::time::timeout(Duration::from_secs(5), pool.reset_connections())
            .await
            .unwrap_or_else(|_| panic!("a reset waits for no slot"))
            .unwrap();
        assert_eq!(pool.open_connections(), 1, "only the busy slot kept its");
        assert_eq!(held.as_ref().map(|p| p.epoch), Some(0));
        drop(held);
        pool.run(Lane::Slow, None, |c| Ok(c.lib_version()?))
            .await
            .unwrap();
        assert_eq!(lock(&pool.slow_slot).as_ref().map(|p| p.epoch), Some(1));
        assert_eq!(pool.open_connections(), 1);
    }

    #[test]
    fn retry_delay_doubles_from_100_ms_to_10_s() {
        let ms = |f| retry_delay(f).as_millis();
        assert_eq!((ms(0), ms(1), ms(2), ms(3)), (100, 100, 200, 400));
        assert_eq!((ms(7), ms(8), ms(u32::MAX)), (6400, 10_000, 10_000));
    }
}
