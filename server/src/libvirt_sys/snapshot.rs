//! Snapshot calls the `virt` crate does not wrap.

use virt::{domain::Domain, sys};

use super::last_error;
use crate::error::Error;

/// `virDomainHasCurrentSnapshot`: whether the domain has a current
/// snapshot.
pub fn has_current_snapshot(dom: &Domain) -> Result<bool, Error> {
    // SAFETY: see the module doc of `libvirt_sys`; `dom` is a live handle
    // borrowed for the call, and the call takes no other pointer.
    let rc = unsafe { sys::virDomainHasCurrentSnapshot(dom.as_ptr(), 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(rc == 1)
}
