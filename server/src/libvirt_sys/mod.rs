//! The server's one FFI module: every libvirt call the `virt` crate does not
//! wrap (or wraps without error handling), made through `virt::sys`, and the
//! event callbacks libvirt calls back into. Every `unsafe` of the server is
//! here; everything else calls the safe functions below and is compiled with
//! `forbid(unsafe_code)` (see the crate root).
//!
//! | module | what it wraps |
//! | --- | --- |
//! | [`event_loop`] | the event implementation libvirt runs its keepalives and callbacks on |
//! | [`domain`] | state, save, vCPU pinning, bulk statistics, job statistics and abort |
//! | [`internals`] | per-disk statistics, disk errors, NMI, block and memory peeks, scheduler parameters |
//! | [`guest`] | guest-agent calls: file systems, SSH keys, guest info, guest vCPUs |
//! | [`network`] | DHCP leases |
//! | [`snapshot`] | whether a domain has a current snapshot |
//! | [`blockjob`] | block jobs: copy, commit, pull, job info, speed, abort |
//! | [`callbacks`] | the event callbacks and the values they copy out |
//! | [`console`] | the serial console stream and its readiness callback |
//! | [`cpumap`] | libvirt's CPU bit maps (no FFI; shared by the pinning calls) |
//! | [`threads`] | emulator pinning and IOThreads |
//! | [`tunables`] | memory, NUMA, blkio, interface and block I/O tunables (typed parameters) |
//! | [`registration`] | registering those callbacks on a connection, and deregistering |
//! | [`typed_params`] | decoding libvirt's typed parameters (once, for all of the above) |
//!
//! # Safety argument, shared by every block of these modules
//!
//! * Every pointer handed to libvirt comes from a live `virt` wrapper
//!   (`Domain::as_ptr`, `Connect::as_ptr`) borrowed for the whole call, so
//!   libvirt's reference outlives the call; we never free those pointers.
//! * Out-pointers point to local variables or to buffers sized exactly as
//!   the libvirt documentation of that call requires.
//! * Strings handed to libvirt are `CString`s (or `CStrings`) that live
//!   until the call returns.
//! * Memory libvirt hands back (stats records, typed parameters, strings) is
//!   copied into owned Rust values (`copy_c_str`,
//!   `typed_params::copy_params`) and then freed exactly once with the
//!   deallocator libvirt documents for it. The one exception is a bulk
//!   statistics answer ([`domain::StatsList`]), kept as libvirt gave it so
//!   that its domain handles are lent rather than referenced again; it is
//!   freed exactly once, when dropped, and lends only `&` borrows of itself.
//! * libvirt's last error is per thread; each failure is turned into
//!   `virt::error::Error::last_error()` on the same thread, right after the
//!   failing call.
//! * The callback-specific argument (who owns the `opaque` pointer, why the
//!   function-pointer casts are sound, why a callback never blocks) is in
//!   [`registration`] and [`callbacks`].

pub mod blockjob;
pub mod callbacks;
pub mod console;
pub mod cpumap;
pub mod domain;
pub mod event_loop;
pub mod guest;
pub mod internals;
pub mod network;
pub mod registration;
pub mod snapshot;
pub mod threads;
pub mod tunables;
pub mod typed_params;

use std::{
    ffi::{CStr, CString},
    os::raw::{c_char, c_uint},
    ptr,
};

pub use blockjob::{
    block_commit, block_copy, block_job_abort, block_job_info, block_job_set_speed, block_pull,
    RawBlockJob,
};
pub use callbacks::{Object, RawEvent, RawKind, Sink};
pub use domain::{
    connection_of, domain_abort_job, domain_job_stats, domain_migrate_start_post_copy, domain_save,
    domain_state, domain_stats, uuid_of, vcpu_pin_info, LentRecord, StatsList,
};
pub use guest::{
    fs_freeze, fs_info, fs_thaw, fs_trim, guest_info, guest_vcpus, set_guest_vcpus, ssh_keys_get,
    ssh_keys_set, FsInfo,
};
pub use network::{network_dhcp_leases, DhcpLease};
pub use registration::{register, Registration};
pub use snapshot::has_current_snapshot;
pub use typed_params::TypedValue;

use crate::error::Error;

/// libvirt's last error on this thread, as ours.
fn last_error() -> Error {
    Error::from(virt::error::Error::last_error())
}

/// A string for libvirt; `field` names the request field when it holds a
/// NUL byte.
fn cstring(field: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::invalid(field, "must not contain NUL bytes"))
}

/// Copies a C string libvirt owns (null means empty), lossily as UTF-8.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string that stays valid
/// for the duration of this call.
unsafe fn copy_c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, and NUL-terminated and valid (the caller's promise).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Copies a string out of a fixed-size C array (a typed parameter's field
/// name, a UUID buffer): the bytes up to the first NUL, or all of them if
/// there is none, so nothing past the array is ever read.
fn copy_c_array(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A NULL-free array of C strings kept alive with its pointer list.
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStrings {
    fn new(field: &str, items: &[String]) -> Result<Self, Error> {
        let owned = items
            .iter()
            .map(|s| cstring(field, s))
            .collect::<Result<Vec<_>, _>>()?;
        let ptrs = owned.iter().map(|c| c.as_ptr()).collect();
        Ok(CStrings {
            _owned: owned,
            ptrs,
        })
    }

    /// The pointer list, or null when empty (libvirt's "all").
    fn as_mut_ptr(&mut self) -> *mut *const c_char {
        if self.ptrs.is_empty() {
            ptr::null_mut()
        } else {
            self.ptrs.as_mut_ptr()
        }
    }

    fn len(&self) -> c_uint {
        self.ptrs.len() as c_uint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_arrays_stop_at_nul_or_their_end() {
        let mut field = [0 as c_char; 8];
        for (dst, src) in field.iter_mut().zip(b"cpu.time") {
            *dst = *src as c_char;
        }
        assert_eq!(copy_c_array(&field), "cpu.time", "no NUL: the whole array");
        field[3] = 0;
        assert_eq!(copy_c_array(&field), "cpu");
    }

    #[test]
    fn null_c_strings_are_empty() {
        // SAFETY: null is allowed.
        assert_eq!(unsafe { copy_c_str(ptr::null()) }, "");
        let s = CString::new("vda").unwrap_or_default();
        // SAFETY: `s` is NUL-terminated and outlives the call.
        assert_eq!(unsafe { copy_c_str(s.as_ptr()) }, "vda");
    }
}
