//! The tunables libvirt reads and writes as typed parameters, one pair of
//! calls per family: memory (`virDomainGet/SetMemoryParameters`), NUMA,
//! blkio, one interface's bandwidth, one disk's I/O limits
//! (`virDomainGet/SetBlockIoTune`). Reading asks libvirt how many
//! parameters there are first (a call with none), then reads them with
//! their types, so that a write can send each value in the type libvirt
//! expects.

use std::{
    ffi::CString,
    os::raw::{c_char, c_int, c_uint},
    ptr,
};

use virt::{domain::Domain, sys};

use super::{
    cstring,
    internals::{param_array, take_typed, with_params, TypedParam},
    last_error,
};
use crate::error::Error;

/// A family of tunables, with the device it concerns where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family<'a> {
    /// Memory limits (`hard_limit`, `soft_limit`, `swap_hard_limit`, KiB).
    Memory,
    /// NUMA placement (`numa_mode`, `numa_nodeset`).
    Numa,
    /// Block I/O weights (`weight`, `device_weight`, ...).
    Blkio,
    /// One interface's bandwidth (`inbound.average`, ...), by its target
    /// name or MAC.
    Interface(&'a str),
    /// One disk's I/O limits (`total_bytes_sec`, ...), by its target.
    BlockIoTune(&'a str),
}

impl Family<'_> {
    fn device(&self) -> Option<&str> {
        match self {
            Family::Interface(d) | Family::BlockIoTune(d) => Some(d),
            _ => None,
        }
    }

    /// The getter, on raw pointers.
    ///
    /// # Safety
    /// `params` must be null (with `*n == 0`) or hold `*n` parameters;
    /// `dev` must be null or a NUL-terminated string.
    unsafe fn get(
        &self,
        dom: &Domain,
        dev: *const c_char,
        params: sys::virTypedParameterPtr,
        n: &mut c_int,
        flags: c_uint,
    ) -> c_int {
        // SAFETY: the caller's promise, passed on; `dom` is live.
        unsafe {
            let d = dom.as_ptr();
            match self {
                Family::Memory => sys::virDomainGetMemoryParameters(d, params, n, flags),
                Family::Numa => sys::virDomainGetNumaParameters(d, params, n, flags),
                Family::Blkio => sys::virDomainGetBlkioParameters(d, params, n, flags),
                Family::Interface(_) => {
                    sys::virDomainGetInterfaceParameters(d, dev, params, n, flags)
                }
                Family::BlockIoTune(_) => sys::virDomainGetBlockIoTune(d, dev, params, n, flags),
            }
        }
    }

    /// The setter, on raw pointers.
    ///
    /// # Safety
    /// `params` must hold `n` parameters; `dev` as for [`get`](Self::get).
    unsafe fn set(
        &self,
        dom: &Domain,
        dev: *const c_char,
        params: sys::virTypedParameterPtr,
        n: c_int,
        flags: c_uint,
    ) -> c_int {
        // SAFETY: the caller's promise, passed on; `dom` is live.
        unsafe {
            let d = dom.as_ptr();
            match self {
                Family::Memory => sys::virDomainSetMemoryParameters(d, params, n, flags),
                Family::Numa => sys::virDomainSetNumaParameters(d, params, n, flags),
                Family::Blkio => sys::virDomainSetBlkioParameters(d, params, n, flags),
                Family::Interface(_) => {
                    sys::virDomainSetInterfaceParameters(d, dev, params, n, flags)
                }
                Family::BlockIoTune(_) => sys::virDomainSetBlockIoTune(d, dev, params, n, flags),
            }
        }
    }
}

fn device(family: &Family<'_>) -> Result<Option<CString>, Error> {
    family.device().map(|d| cstring("device", d)).transpose()
}

fn ptr_of(dev: &Option<CString>) -> *const c_char {
    dev.as_ref().map_or(ptr::null(), |d| d.as_ptr())
}

/// Reads the family's tunables with their types (`flags`:
/// VIR_DOMAIN_AFFECT_CURRENT/LIVE/CONFIG).
pub fn tunables(dom: &Domain, family: Family<'_>, flags: u32) -> Result<Vec<TypedParam>, Error> {
    let dev = device(&family)?;
    let mut n: c_int = 0;
    // SAFETY: no parameters and a count of 0: libvirt answers the count.
    if unsafe { family.get(dom, ptr_of(&dev), ptr::null_mut(), &mut n, flags) } < 0 {
        return Err(last_error());
    }
    let mut params = param_array(n);
    let flags = flags | sys::VIR_TYPED_PARAM_STRING_OKAY;
    // SAFETY: `params` holds exactly `n` zeroed parameters.
    if unsafe { family.get(dom, ptr_of(&dev), params.as_mut_ptr(), &mut n, flags) } < 0 {
        return Err(last_error());
    }
    // SAFETY: on success libvirt filled the first `n` elements.
    Ok(unsafe { take_typed(&mut params, n) })
}

/// Writes `values` (each in the type libvirt gave its field).
pub fn set_tunables(
    dom: &Domain,
    family: Family<'_>,
    values: &[TypedParam],
    flags: u32,
) -> Result<(), Error> {
    let dev = device(&family)?;
    with_params(values, |params, n| {
        // SAFETY: `params` holds the `n` parameters built from `values`.
        unsafe { family.set(dom, ptr_of(&dev), params, n, flags) }
    })
}
