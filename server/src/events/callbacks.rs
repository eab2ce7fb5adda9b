//! libvirt event callbacks, registered through `virt::sys`. The only module
//! of the event hub allowed `unsafe`.
//!
//! # Safety argument
//!
//! * Registration: every call gets a connection pointer from a live
//!   `Connect` borrowed for the call. The `opaque` pointer is a leaked
//!   `Box<Sink>`; libvirt owns it from then on and calls our `free_sink`
//!   exactly once (when the callback is deregistered or the connection is
//!   closed), which turns it back into the box and drops it. Nothing else
//!   frees it, and no callback runs after its `freecb`.
//! * Each callback is transmuted to the generic callback type exactly as
//!   libvirt's `VIR_DOMAIN_EVENT_CALLBACK()` macro does in C; libvirt calls
//!   it back with the signature that matches the event id it was registered
//!   for, and each `register` below pairs the id with the function written
//!   for that id's documented signature.
//! * Inside a callback, the object pointer (domain, pool, network) is valid
//!   for the duration of the call; we only read its name and UUID (local
//!   calls, no RPC, never blocking) and copy every string libvirt hands us
//!   into owned Rust values before returning. String pointers may be NULL
//!   and are checked.
//! * Callbacks run on the `libvirt-events` thread and never block: they
//!   only push into an unbounded tokio channel (a non-blocking send) and
//!   never call back into libvirt RPCs. A panic never crosses the FFI
//!   boundary: the code cannot panic (no indexing, no unwrap), and the
//!   closure in `deliver` is wrapped in `catch_unwind` anyway.
#![allow(unsafe_code)]

use std::{
    ffi::CStr,
    os::raw::{c_char, c_int, c_longlong, c_uint, c_ulonglong, c_void},
    time::SystemTime,
};

use tokio::sync::mpsc::UnboundedSender;
use virt::{connect::Connect, sys};

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
    /// A job completed, with its statistics as text.
    JobCompleted(Vec<(String, String)>),
    /// Storage pool lifecycle.
    PoolLifecycle { event: i32, detail: i32 },
    /// Network lifecycle.
    NetworkLifecycle { event: i32, detail: i32 },
    /// The connection closed (virConnectCloseReason).
    Closed(i32),
}

/// One callback's report.
#[derive(Debug, Clone)]
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

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null strings from libvirt are NUL-terminated and valid
    // for the callback's duration (module doc).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn uuid_of(f: impl FnOnce(*mut c_char) -> c_int) -> String {
    let mut buf = [0 as c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    if f(buf.as_mut_ptr()) < 0 {
        return String::new();
    }
    text(buf.as_ptr())
}

fn deliver(opaque: *mut c_void, object: Object, name: String, uuid: String, kind: RawKind) {
    let _ = std::panic::catch_unwind(|| {
        if opaque.is_null() {
            return;
        }
        // SAFETY: `opaque` is the `Box<Sink>` leaked at registration and
        // not yet freed (module doc).
        let sink = unsafe { &*(opaque as *const Sink) };
        let _ = sink.tx.send(RawEvent {
            generation: sink.generation,
            object,
            name,
            uuid,
            at: SystemTime::now(),
            kind,
        });
    });
}

fn domain(dom: sys::virDomainPtr, opaque: *mut c_void, kind: RawKind) {
    // SAFETY: `dom` is valid during the callback; both calls are local.
    let name = text(unsafe { sys::virDomainGetName(dom) });
    // SAFETY: as above; the buffer has VIR_UUID_STRING_BUFLEN bytes.
    let uuid = uuid_of(|b| unsafe { sys::virDomainGetUUIDString(dom, b) });
    deliver(opaque, Object::Domain, name, uuid, kind);
}

unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: libvirt calls this exactly once for the leaked box.
        drop(unsafe { Box::from_raw(opaque as *mut Sink) });
    }
}

unsafe extern "C" fn on_lifecycle(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) -> c_int {
    domain(d, o, RawKind::Lifecycle { event, detail });
    0
}
unsafe extern "C" fn on_reboot(_c: sys::virConnectPtr, d: sys::virDomainPtr, o: *mut c_void) {
    domain(d, o, RawKind::Reboot);
}
unsafe extern "C" fn on_device_added(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    domain(d, o, RawKind::DeviceAdded(text(alias)));
}
unsafe extern "C" fn on_device_removed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    domain(d, o, RawKind::DeviceRemoved(text(alias)));
}
unsafe extern "C" fn on_device_removal_failed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    o: *mut c_void,
) {
    domain(d, o, RawKind::DeviceRemovalFailed(text(alias)));
}
unsafe extern "C" fn on_agent(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    state: c_int,
    reason: c_int,
    o: *mut c_void,
) {
    domain(d, o, RawKind::AgentLifecycle { state, reason });
}
unsafe extern "C" fn on_block_job(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    disk: *const c_char,
    job_type: c_int,
    status: c_int,
    o: *mut c_void,
) {
    let disk = text(disk);
    domain(
        d,
        o,
        RawKind::BlockJob {
            disk,
            job_type,
            status,
        },
    );
}
unsafe extern "C" fn on_watchdog(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    action: c_int,
    o: *mut c_void,
) {
    domain(d, o, RawKind::Watchdog(action));
}
unsafe extern "C" fn on_io_error(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    src: *const c_char,
    alias: *const c_char,
    action: c_int,
    reason: *const c_char,
    o: *mut c_void,
) {
    let kind = RawKind::IoError {
        src: text(src),
        alias: text(alias),
        action,
        reason: text(reason),
    };
    domain(d, o, kind);
}
unsafe extern "C" fn on_metadata(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    kind: c_int,
    nsuri: *const c_char,
    o: *mut c_void,
) {
    let nsuri = text(nsuri);
    domain(d, o, RawKind::Metadata { kind, nsuri });
}
unsafe extern "C" fn on_rtc(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    offset: c_longlong,
    o: *mut c_void,
) {
    domain(d, o, RawKind::RtcChange(offset));
}
unsafe extern "C" fn on_balloon(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    actual: c_ulonglong,
    o: *mut c_void,
) {
    domain(d, o, RawKind::BalloonChange(actual));
}
unsafe extern "C" fn on_pm_suspend(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    reason: c_int,
    o: *mut c_void,
) {
    domain(d, o, RawKind::PmSuspend(reason));
}
unsafe extern "C" fn on_pm_wakeup(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    reason: c_int,
    o: *mut c_void,
) {
    domain(d, o, RawKind::PmWakeup(reason));
}
unsafe extern "C" fn on_tray(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    alias: *const c_char,
    reason: c_int,
    o: *mut c_void,
) {
    let alias = text(alias);
    domain(d, o, RawKind::TrayChange { alias, reason });
}
unsafe extern "C" fn on_job_completed(
    _c: sys::virConnectPtr,
    d: sys::virDomainPtr,
    params: sys::virTypedParameterPtr,
    n: c_int,
    o: *mut c_void,
) {
    let mut stats = Vec::new();
    if !params.is_null() {
        for i in 0..n.max(0) as usize {
            // SAFETY: libvirt passes `n` initialised parameters.
            let p = unsafe { &*params.add(i) };
            // SAFETY: `field` is NUL-terminated within its 80 bytes.
            let field = text(p.field.as_ptr());
            // SAFETY: `type_` says which union member is initialised.
            let value = unsafe {
                match p.type_ as c_uint {
                    sys::VIR_TYPED_PARAM_INT => p.value.i.to_string(),
                    sys::VIR_TYPED_PARAM_UINT => p.value.ui.to_string(),
                    sys::VIR_TYPED_PARAM_LLONG => p.value.l.to_string(),
                    sys::VIR_TYPED_PARAM_ULLONG => p.value.ul.to_string(),
                    sys::VIR_TYPED_PARAM_DOUBLE => p.value.d.to_string(),
                    sys::VIR_TYPED_PARAM_BOOLEAN => (p.value.b != 0).to_string(),
                    sys::VIR_TYPED_PARAM_STRING => text(p.value.s),
                    _ => continue,
                }
            };
            stats.push((field, value));
        }
    }
    domain(d, o, RawKind::JobCompleted(stats));
}
unsafe extern "C" fn on_pool_lifecycle(
    _c: sys::virConnectPtr,
    p: sys::virStoragePoolPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) {
    // SAFETY: `p` is valid during the callback; local calls only.
    let name = text(unsafe { sys::virStoragePoolGetName(p) });
    // SAFETY: as above; the buffer has VIR_UUID_STRING_BUFLEN bytes.
    let uuid = uuid_of(|b| unsafe { sys::virStoragePoolGetUUIDString(p, b) });
    let kind = RawKind::PoolLifecycle { event, detail };
    deliver(o, Object::StoragePool, name, uuid, kind);
}
unsafe extern "C" fn on_network_lifecycle(
    _c: sys::virConnectPtr,
    n: sys::virNetworkPtr,
    event: c_int,
    detail: c_int,
    o: *mut c_void,
) {
    // SAFETY: `n` is valid during the callback; local calls only.
    let name = text(unsafe { sys::virNetworkGetName(n) });
    // SAFETY: as above; the buffer has VIR_UUID_STRING_BUFLEN bytes.
    let uuid = uuid_of(|b| unsafe { sys::virNetworkGetUUIDString(n, b) });
    let kind = RawKind::NetworkLifecycle { event, detail };
    deliver(o, Object::Network, name, uuid, kind);
}
unsafe extern "C" fn on_close(_c: sys::virConnectPtr, reason: c_int, o: *mut c_void) {
    let kind = RawKind::Closed(reason);
    deliver(o, Object::Connection, String::new(), String::new(), kind);
}

/// Casts a specific callback to the generic type, like
/// `VIR_DOMAIN_EVENT_CALLBACK()` does in C.
macro_rules! generic {
    ($f:expr, $ty:ty) => {
        // SAFETY: function pointers have one size; libvirt calls it back
        // with the signature of the id it was registered with (module doc).
        Some(unsafe { std::mem::transmute::<*const (), $ty>($f as *const ()) })
    };
}

type DomainCb = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);
type PoolCb = unsafe extern "C" fn(sys::virConnectPtr, sys::virStoragePoolPtr, *mut c_void);
type NetCb = unsafe extern "C" fn(sys::virConnectPtr, sys::virNetworkPtr, *mut c_void);

/// The callbacks registered on one event connection; deregistered on drop.
pub struct Registration {
    conn: Connect,
    domain_ids: Vec<c_int>,
    pool_ids: Vec<c_int>,
    network_ids: Vec<c_int>,
    close: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("domain_ids", &self.domain_ids)
            .finish_non_exhaustive()
    }
}

fn leak(sink: &Sink) -> *mut c_void {
    Box::into_raw(Box::new(sink.clone())) as *mut c_void
}

/// Registers every event callback (and the close callback) on `conn`.
/// Event ids a driver does not support are skipped (and logged); the
/// lifecycle registration must succeed.
pub fn register(conn: &Connect, sink: &Sink) -> Result<Registration, virt::error::Error> {
    let mut reg = Registration {
        conn: conn.clone(),
        domain_ids: Vec::new(),
        pool_ids: Vec::new(),
        network_ids: Vec::new(),
        close: false,
    };
    let domain_events: [(u32, Option<DomainCb>); 16] = [
        (
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            generic!(on_lifecycle, DomainCb),
        ),
        (sys::VIR_DOMAIN_EVENT_ID_REBOOT, Some(on_reboot as DomainCb)),
        (
            sys::VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
            generic!(on_device_added, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
            generic!(on_device_removed, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
            generic!(on_device_removal_failed, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
            generic!(on_agent, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
            generic!(on_block_job, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_WATCHDOG,
            generic!(on_watchdog, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
            generic!(on_io_error, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
            generic!(on_metadata, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_RTC_CHANGE,
            generic!(on_rtc, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
            generic!(on_balloon, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_PMSUSPEND,
            generic!(on_pm_suspend, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_PMWAKEUP,
            generic!(on_pm_wakeup, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_TRAY_CHANGE,
            generic!(on_tray, DomainCb),
        ),
        (
            sys::VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
            generic!(on_job_completed, DomainCb),
        ),
    ];
    for (id, cb) in domain_events {
        if cb.is_none() {
            continue;
        }
        let opaque = leak(sink);
        // SAFETY: module doc; `opaque` is freed by `free_sink`.
        let rc = unsafe {
            sys::virConnectDomainEventRegisterAny(
                conn.as_ptr(),
                std::ptr::null_mut(),
                id as c_int,
                cb,
                opaque,
                Some(free_sink),
            )
        };
        if rc < 0 {
            let err = virt::error::Error::last_error();
            // SAFETY: registration failed, so libvirt did not take the box.
            unsafe { free_sink(opaque) };
            if id == sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE {
                return Err(err);
            }
            tracing::debug!(id, error = %err, "domain event not supported");
        } else {
            reg.domain_ids.push(rc);
        }
    }
    let opaque = leak(sink);
    let cb = generic!(on_pool_lifecycle, PoolCb);
    // SAFETY: module doc.
    let rc = unsafe {
        sys::virConnectStoragePoolEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE as c_int,
            cb,
            opaque,
            Some(free_sink),
        )
    };
    if rc < 0 {
        // SAFETY: registration failed, so libvirt did not take the box.
        unsafe { free_sink(opaque) };
        tracing::debug!(error = %virt::error::Error::last_error(), "pool events not supported");
    } else {
        reg.pool_ids.push(rc);
    }
    let opaque = leak(sink);
    let cb = generic!(on_network_lifecycle, NetCb);
    // SAFETY: module doc.
    let rc = unsafe {
        sys::virConnectNetworkEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_NETWORK_EVENT_ID_LIFECYCLE as c_int,
            cb,
            opaque,
            Some(free_sink),
        )
    };
    if rc < 0 {
        // SAFETY: registration failed, so libvirt did not take the box.
        unsafe { free_sink(opaque) };
        tracing::debug!(error = %virt::error::Error::last_error(), "network events not supported");
    } else {
        reg.network_ids.push(rc);
    }
    let opaque = leak(sink);
    // SAFETY: module doc.
    let rc = unsafe {
        sys::virConnectRegisterCloseCallback(conn.as_ptr(), Some(on_close), opaque, Some(free_sink))
    };
    if rc < 0 {
        // SAFETY: registration failed, so libvirt did not take the box.
        unsafe { free_sink(opaque) };
        tracing::debug!(error = %virt::error::Error::last_error(), "close callback not supported");
    } else {
        reg.close = true;
    }
    Ok(reg)
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Failures (a dead connection) are fine: closing the connection
        // frees the callbacks then.
        for id in &self.domain_ids {
            // SAFETY: module doc; `id` came from a successful registration.
            unsafe { sys::virConnectDomainEventDeregisterAny(self.conn.as_ptr(), *id) };
        }
        for id in &self.pool_ids {
            // SAFETY: as above.
            unsafe { sys::virConnectStoragePoolEventDeregisterAny(self.conn.as_ptr(), *id) };
        }
        for id in &self.network_ids {
            // SAFETY: as above.
            unsafe { sys::virConnectNetworkEventDeregisterAny(self.conn.as_ptr(), *id) };
        }
        if self.close {
            // SAFETY: as above.
            unsafe { sys::virConnectUnregisterCloseCallback(self.conn.as_ptr(), Some(on_close)) };
        }
    }
}
