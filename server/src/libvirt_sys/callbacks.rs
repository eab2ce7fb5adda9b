//! The libvirt event callbacks and the values they copy out of their
//! arguments ([`RawEvent`]); [`super::registration`] registers them.
//!
//! # Safety argument
//!
//! * `opaque` is the `Box<Sink>` leaked at registration; libvirt passes it
//!   to every call of the callback and frees it with `free_sink` exactly
//!   once, after which that callback is never called again
//!   ([`super::registration`]). So a non-null `opaque` is a live `Sink`.
//! * The object pointer (domain, pool, network) is valid for the duration
//!   of the call; we only read its name and UUID (local calls, no RPC,
//!   never blocking) and copy every string libvirt hands us into owned
//!   Rust values before returning. For a domain we also take a reference
//!   of our own (`virDomainRef`, local) that the [`RawEvent`] carries as a
//!   `virt` `Domain`, which frees it exactly once when dropped. String pointers may be NULL and are
//!   checked (`copy_c_str`).
//! * Callbacks run on the `libvirt-events` thread and never block: they
//!   only push into an unbounded tokio channel (a non-blocking send) and
//!   never call back into libvirt RPCs. A panic never crosses the FFI
//!   boundary: the code cannot panic (no indexing, no unwrap), and
//!   `deliver`'s send is wrapped in `catch_unwind` anyway.

use std::{
    os::raw::{c_char, c_int, c_longlong, c_ulonglong, c_void},
    time::SystemTime,
};

use tokio::sync::mpsc::UnboundedSender;
use virt::{domain::Domain, sys};

use super::{copy_c_array, copy_c_str, typed_params::copy_params, TypedValue};

/// Which object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A domain.
    Domain,
    /// A storage pool.
    StoragePool,
    /// A network.
    Network,
    /// The connection itself.
    Connection,
}

/// What libvirt reported, copied out of the callback's arguments (the
/// fields are the callback parameters of the same names).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq)]
pub enum RawKind {
    /// Domain lifecycle: virDomainEventType and its detail.
    Lifecycle { event: i32, detail: i32 },
    /// The guest rebooted.
    Reboot,
    /// A device was added.
    DeviceAdded(String),
    /// A device was removed.
    DeviceRemoved(String),
    /// A device removal failed.
    DeviceRemovalFailed(String),
    /// The guest agent's channel changed state.
    AgentLifecycle { state: i32, reason: i32 },
    /// A block job changed state.
    BlockJob {
        disk: String,
        job_type: i32,
        status: i32,
    },
    /// The watchdog fired.
    Watchdog(i32),
    /// A disk I/O error.
    IoError {
        src: String,
        alias: String,
        action: i32,
        reason: String,
    },
    /// Metadata changed.
    Metadata { kind: i32, nsuri: String },
    /// The guest's RTC changed.
    RtcChange(i64),
    /// The balloon changed.
    BalloonChange(u64),
    /// PM suspend.
    PmSuspend(i32),
    /// PM wakeup.
    PmWakeup(i32),
    /// A tray moved.
    TrayChange { alias: String, reason: i32 },
    /// A job completed, with its statistics.
    JobCompleted(Vec<(String, TypedValue)>),
    /// Storage pool lifecycle.
    PoolLifecycle { event: i32, detail: i32 },
    /// Network lifecycle.
    NetworkLifecycle { event: i32, detail: i32 },
    /// The connection closed (virConnectCloseReason).
    Closed(i32),
}

/// One callback's report.
#[derive(Debug)]
pub struct RawEvent {
    /// The connection generation it came from (see [`Sink`]).
    pub generation: u64,
    /// The object type.
    pub object: Object,
    /// The object's name (empty for `Closed`).
    pub name: String,
    /// The object's UUID (empty for `Closed`).
    pub uuid: String,
    /// When the callback ran.
    pub at: SystemTime,
    /// What happened.
    pub kind: RawKind,
    /// For domain events: a handle on the domain the callback was given
    /// (our own reference, taken with `virDomainRef` inside the callback, a
    /// local call), so the state hint can be read without a lookup round
    /// trip. It belongs to the event connection; `None` for other objects
    /// (or if taking the reference failed). Dropping it is `virDomainFree`,
    /// which may be the connection's last reference: drop it off the async
    /// threads.
    pub domain: Option<Domain>,
}

/// Where callbacks deliver: the hub's channel and the generation of the
/// connection they were registered on (so events of a dead connection can
/// be told apart).
#[derive(Debug, Clone)]
pub struct Sink {
    /// The channel; `send` never blocks.
    pub tx: UnboundedSender<RawEvent>,
    /// The connection generation.
    pub generation: u64,
}

/// A UUID read into a buffer of `VIR_UUID_STRING_BUFLEN` bytes by `read`
/// (empty if it fails).
fn uuid_of(read: impl FnOnce(*mut c_char) -> c_int) -> String {
    let mut buf = [0 as c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    if read(buf.as_mut_ptr()) < 0 {
        return String::new();
    }
    copy_c_array(&buf)
}

/// Hands one report to the sink behind `opaque`, without blocking.
///
/// # Safety
/// `opaque` is null or the registration's live `Sink` (module doc).
unsafe fn deliver(
    opaque: *mut c_void,
    object: Object,
    name: String,
    uuid: String,
    kind: RawKind,
    domain: Option<Domain>,
) {
    if opaque.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: a non-null `opaque` is the `Box<Sink>` leaked at
        // registration and not yet freed (module doc).
        let sink = unsafe { &*(opaque as *const Sink) };
        let _ = sink.tx.send(RawEvent {
            generation: sink.generation,
            object,
            name,
            uuid,
            at: SystemTime::now(),
            kind,
            domain,
        });
    });
}

/// Delivers an event about the object named `name`, whose UUID `read_uuid`
/// writes into a buffer of `VIR_UUID_STRING_BUFLEN` bytes.
///
/// # Safety
/// `name` is null or a NUL-terminated string the object owns, valid until
/// the callback returns; `opaque` as for [`deliver`].
unsafe fn deliver_about(
    opaque: *mut c_void,
    object: Object,
    name: *const c_char,
    read_uuid: impl FnOnce(*mut c_char) -> c_int,
    kind: RawKind,
    domain: Option<Domain>,
) {
    // SAFETY: the caller's promise on `name`.
    let name = unsafe { copy_c_str(name) };
    let uuid = uuid_of(read_uuid);
    // SAFETY: the caller's promise on `opaque`.
    unsafe { deliver(opaque, object, name, uuid, kind, domain) };
}

/// Delivers a domain event with the domain's name and UUID.
///
/// # Safety
/// `dom` is the domain libvirt passed to the running callback; `opaque` as
/// for [`deliver`].
unsafe fn domain(dom: sys::virDomainPtr, opaque: *mut c_void, kind: RawKind) {
    // SAFETY: `dom` is valid during the callback, and virDomainRef is a
    // local call (a reference count, no RPC). The reference it takes is
    // ours: `Domain::from_ptr` adopts it and frees it once, on drop. A
    // failed virDomainRef (null or invalid pointer) took nothing: no handle.
    let handle = (!dom.is_null() && unsafe { sys::virDomainRef(dom) } == 0)
        .then(|| unsafe { Domain::from_ptr(dom) });
    // SAFETY: `dom` is valid during the callback; both calls are local,
    // the name is a string the domain owns; `opaque` is the caller's.
    unsafe {
        deliver_about(
            opaque,
            Object::Domain,
            sys::virDomainGetName(dom),
            |b| sys::virDomainGetUUIDString(dom, b),
            kind,
            handle,
        )
    };
}

/// libvirt's `freecb` for every registration: drops the leaked `Sink`.
///
/// # Safety
/// `opaque` is null or a pointer from `Box::<Sink>::into_raw` that nothing
/// uses afterwards; libvirt calls this exactly once per registration.
pub(super) unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: the caller's promise: this is the leaked box, freed once.
        drop(unsafe { Box::from_raw(opaque as *mut Sink) });
    }
}

// Each callback below is called by libvirt with the arguments documented
// for the event id it was registered for (see `registration`); the module
// doc's argument covers every `unsafe` call they make.

pub(super) unsafe extern "C" fn on_lifecycle(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) -> c_int {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::Lifecycle { event, detail }) };
    0
}
pub(super) unsafe extern "C" fn on_reboot(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::Reboot) };
}
pub(super) unsafe extern "C" fn on_device_added(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::DeviceAdded(copy_c_str(alias))) };
}
pub(super) unsafe extern "C" fn on_device_removed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::DeviceRemoved(copy_c_str(alias))) };
}
pub(super) unsafe extern "C" fn on_device_removal_failed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::DeviceRemovalFailed(copy_c_str(alias))) };
}
pub(super) unsafe extern "C" fn on_agent(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    state: c_int,
    reason: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::AgentLifecycle { state, reason }) };
}
pub(super) unsafe extern "C" fn on_block_job(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    disk: *const c_char,
    job_type: c_int,
    status: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    let disk = unsafe { copy_c_str(disk) };
    let kind = RawKind::BlockJob {
        disk,
        job_type,
        status,
    };
    // SAFETY: module doc.
    unsafe { domain(d, o, kind) };
}
pub(super) unsafe extern "C" fn on_watchdog(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    action: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::Watchdog(action)) };
}
pub(super) unsafe extern "C" fn on_io_error(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    src: *const c_char,
    alias: *const c_char,
    action: c_int,
    reason: *const c_char,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    let kind = unsafe {
        RawKind::IoError {
            src: copy_c_str(src),
            alias: copy_c_str(alias),
            action,
            reason: copy_c_str(reason),
        }
    };
    // SAFETY: module doc.
    unsafe { domain(d, o, kind) };
}
pub(super) unsafe extern "C" fn on_metadata(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    kind: c_int,
    nsuri: *const c_char,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    let nsuri = unsafe { copy_c_str(nsuri) };
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::Metadata { kind, nsuri }) };
}
pub(super) unsafe extern "C" fn on_rtc(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    offset: c_longlong,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::RtcChange(offset)) };
}
pub(super) unsafe extern "C" fn on_balloon(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    actual: c_ulonglong,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::BalloonChange(actual)) };
}
pub(super) unsafe extern "C" fn on_pm_suspend(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    reason: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::PmSuspend(reason)) };
}
pub(super) unsafe extern "C" fn on_pm_wakeup(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    reason: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::PmWakeup(reason)) };
}
pub(super) unsafe extern "C" fn on_tray(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    reason: c_int,
    o: *mut c_void,
) {
    // SAFETY: module doc.
    let alias = unsafe { copy_c_str(alias) };
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::TrayChange { alias, reason }) };
}
pub(super) unsafe extern "C" fn on_job_completed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    params: sys::virTypedParameterPtr,
    n: c_int,
    o: *mut c_void,
) {
    // SAFETY: libvirt passes `n` initialised parameters (or null), valid
    // for the callback's duration and freed by libvirt, not us.
    let stats = unsafe { copy_params(params, n) };
    // SAFETY: module doc.
    unsafe { domain(d, o, RawKind::JobCompleted(stats)) };
}
pub(super) unsafe extern "C" fn on_pool_lifecycle(
    _c: sys::virConnectPtr,
    p: sys::virStoragePoolPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) {
    let kind = RawKind::PoolLifecycle { event, detail };
    // SAFETY: as in `domain`, for the pool `p`.
    unsafe {
        deliver_about(
            o,
            Object::StoragePool,
            sys::virStoragePoolGetName(p),
            |b| sys::virStoragePoolGetUUIDString(p, b),
            kind,
            None,
        )
    };
}
pub(super) unsafe extern "C" fn on_network_lifecycle(
    _c: sys::virConnectPtr,
    n: sys::virNetworkPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) {
    let kind = RawKind::NetworkLifecycle { event, detail };
    // SAFETY: as in `domain`, for the network `n`.
    unsafe {
        deliver_about(
            o,
            Object::Network,
            sys::virNetworkGetName(n),
            |b| sys::virNetworkGetUUIDString(n, b),
            kind,
            None,
        )
    };
}
pub(super) unsafe extern "C" fn on_close(_c: sys::virConnectPtr, reason: c_int, o: *mut c_void) {
    let kind = RawKind::Closed(reason);
    // SAFETY: module doc.
    unsafe {
        deliver(
            o,
            Object::Connection,
            String::new(),
            String::new(),
            kind,
            None,
        )
    };
}
