//! Registering the event callbacks of [`super::callbacks`] on a connection,
//! and deregistering them when the [`Registration`] is dropped.
//!
//! # Safety argument
//!
//! * Every call gets a connection pointer from a live `Connect` that the
//!   `Registration` keeps (a clone) until it has deregistered.
//! * The `opaque` pointer is a leaked `Box<Sink>`; once a registration
//!   succeeds libvirt owns it and calls `free_sink` exactly once (when the
//!   callback is deregistered or the connection is closed), and no callback
//!   runs after its `freecb`. When a registration fails libvirt did not
//!   take it, and we free it ourselves, once.
//! * Each callback is cast to the generic callback type exactly as
//!   libvirt's `VIR_DOMAIN_EVENT_CALLBACK()` macro does in C; libvirt calls
//!   it back with the signature that matches the event id it was registered
//!   for, and each entry below pairs the id with the function written for
//!   that id's documented signature.

use std::{
    os::raw::{c_int, c_void},
    ptr,
};

use virt::{connect::Connect, sys};

use super::callbacks::{
    free_sink, on_agent, on_balloon, on_block_job, on_close, on_device_added,
    on_device_removal_failed, on_device_removed, on_io_error, on_job_completed, on_lifecycle,
    on_metadata, on_network_lifecycle, on_pm_suspend, on_pm_wakeup, on_pool_lifecycle, on_reboot,
    on_rtc, on_tray, on_watchdog, Sink,
};

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

/// Makes one registration through `register`, which gets a leaked copy of
/// `sink` as its `opaque` and returns libvirt's answer (a callback id, or
/// negative on failure). On failure libvirt did not take the copy, so it is
/// freed here and libvirt's error returned.
fn with_sink(
    sink: &Sink,
    register: impl FnOnce(*mut c_void) -> c_int,
) -> Result<c_int, virt::error::Error> {
    let opaque = Box::into_raw(Box::new(sink.clone())) as *mut c_void;
    let rc = register(opaque);
    if rc < 0 {
        let err = virt::error::Error::last_error();
        // SAFETY: registration failed, so libvirt did not take the box and
        // this is its only free (module doc).
        unsafe { free_sink(opaque) };
        return Err(err);
    }
    Ok(rc)
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
        // SAFETY: module doc; `id` and `cb` are a pair of the table above.
        let registered = with_sink(sink, |opaque| unsafe {
            sys::virConnectDomainEventRegisterAny(
                conn.as_ptr(),
                ptr::null_mut(),
                id as c_int,
                cb,
                opaque,
                Some(free_sink),
            )
        });
        match registered {
            Ok(cb_id) => reg.domain_ids.push(cb_id),
            Err(err) if id == sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE => return Err(err),
            Err(err) => tracing::debug!(id, error = %err, "domain event not supported"),
        }
    }
    let pool_cb = generic!(on_pool_lifecycle, PoolCb);
    // SAFETY: module doc.
    let registered = with_sink(sink, |opaque| unsafe {
        sys::virConnectStoragePoolEventRegisterAny(
            conn.as_ptr(),
            ptr::null_mut(),
            sys::VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE as c_int,
            pool_cb,
            opaque,
            Some(free_sink),
        )
    });
    match registered {
        Ok(cb_id) => reg.pool_ids.push(cb_id),
        Err(err) => tracing::debug!(error = %err, "pool events not supported"),
    }
    let net_cb = generic!(on_network_lifecycle, NetCb);
    // SAFETY: module doc.
    let registered = with_sink(sink, |opaque| unsafe {
        sys::virConnectNetworkEventRegisterAny(
            conn.as_ptr(),
            ptr::null_mut(),
            sys::VIR_NETWORK_EVENT_ID_LIFECYCLE as c_int,
            net_cb,
            opaque,
            Some(free_sink),
        )
    });
    match registered {
        Ok(cb_id) => reg.network_ids.push(cb_id),
        Err(err) => tracing::debug!(error = %err, "network events not supported"),
    }
    // SAFETY: module doc.
    let registered = with_sink(sink, |opaque| unsafe {
        sys::virConnectRegisterCloseCallback(conn.as_ptr(), Some(on_close), opaque, Some(free_sink))
    });
    match registered {
        Ok(_) => reg.close = true,
        Err(err) => tracing::debug!(error = %err, "close callback not supported"),
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
