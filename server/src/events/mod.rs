//! The event hub: libvirt callbacks -> protobuf events -> subscribers.
//!
//! | module | its job |
//! | --- | --- |
//! | [`source`] | per host: the event connection, callback registration, batches, reconnect |
//! | [`hints`] | which events say their state themselves; the others are read in batches |
//! | [`reconcile`] | after a reconnect: what changed while the connection was away |
//! | [`convert`] | libvirt's callback values and states -> `v1::Event` (proto enums, `Timestamp`), and `WatchEventsRequest` -> [`convert::Watch`]: every table once |
//! | [`hub`] | sequence numbers, the ring of recent events, the broadcast |
//! | [`subscriber`] | one `WatchEvents` stream: replay, filter, gaps, shutdown |
//!
//! Only [`source`] talks to libvirt (through its event connection and
//! [`crate::libvirt_sys`]); [`convert`] reads libvirt's constants, nothing
//! more. Only [`subscriber`] names tonic: its stream item and the status
//! that ends a stream at shutdown are what tonic sends.
//! `services::events` is the thin gRPC face: validate, subscribe, stream.
//!
//! # Threads and ownership
//!
//! 1. libvirt's callbacks run on the one `libvirt-events` thread
//!    ([`crate::pool::ensure_event_loop`]). They only copy their arguments
//!    into a [`RawEvent`](crate::libvirt_sys::RawEvent) and push it into the
//!    host's unbounded channel (a non-blocking send). The callbacks, their
//!    registration and every line of FFI they need live in the FFI module,
//!    [`crate::libvirt_sys`]; this module has none.
//! 2. Per host one async task ([`source::run_host`]) owns that host's event
//!    connection (a `Connect` of its own, not a pool slot, opened by
//!    [`HostPool::open_connection`](crate::pool::HostPool::open_connection)
//!    like every connection of the pool) and the
//!    [`Registration`](crate::libvirt_sys::Registration) of every callback
//!    on it, and is the only reader of the channel. It reads the raw events
//!    in order, in batches (whatever is queued when it wakes), and gives
//!    each its state hint ([`hints`]): from the event itself where
//!    libvirt's lifecycle detail alone says the state, else read after the
//!    batch with ONE `virDomainListGetStats` on the domain handles the
//!    callbacks took (no lookup; a missing record means gone). It has
//!    [`convert`] turn each into a `v1::Event` and hands them to the
//!    [`Hub`] in libvirt's order, one by one through `publish_event`. It
//!    also checks the connection with `virConnectIsAlive` every
//!    [`ALIVE_CHECK`] and reacts to the close callback.
//! 3. The same task owns the host's last-seen domain states (a
//!    [`reconcile::Snapshot`], raw libvirt values, kept current from each
//!    event's hint). On loss it publishes
//!    `HOST_DISCONNECTED`, resets the host's pool and reconnects, waiting
//!    [`retry_delay`](crate::pool::retry_delay) between attempts (the
//!    pool's policy), re-registers, lists every domain (one
//!    `virConnectGetAllDomainStats`, state group) and lets
//!    [`reconcile`] publish a `reconciled` event for each one that changed,
//!    appeared or vanished, then publishes `HOST_RECONNECTED`.
//! 4. The [`Hub`] (one, shared by all hosts) assigns the server-wide
//!    sequence under a lock, keeps the last `event_ring_size` events and
//!    broadcasts them.
//! 5. Each `WatchEvents` stream ([`subscriber::stream`]) owns its
//!    broadcast receiver and filter and has no task or channel of its own:
//!    tonic polls it, it replays from the ring, then reads live events
//!    straight off the broadcast. A subscriber that falls more than
//!    [`hub::BROADCAST_CAPACITY`] events behind is told exactly which range
//!    it lost, and never slows anyone else. At server shutdown it ends with
//!    `UNAVAILABLE` ([`shutting_down`]), never OK.

pub mod convert;
pub mod hints;
pub mod hub;
pub mod reconcile;
pub mod source;
pub mod subscriber;

pub use hub::Hub;
pub use source::{start, ALIVE_CHECK, STARTUP_WAIT};
pub use subscriber::{shutting_down, stream, EventStream, Filter, StreamItem, SHUTDOWN_MESSAGE};
