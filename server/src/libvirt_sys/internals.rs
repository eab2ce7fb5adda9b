//! Domain-internals calls the `virt` crate does not wrap (or wraps
//! without the typed-parameter form): per-disk statistics with times, disk
//! errors, NMI injection, block and memory peeks, and scheduler
//! parameters read and written as typed parameters.

use std::{
    os::raw::{c_char, c_int, c_uint, c_void},
    ptr,
};

use virt::{domain::Domain, sys};

use super::{copy_c_array, copy_c_str, cstring, last_error, typed_params::copy_params, TypedValue};
use crate::error::Error;

/// Copies `n` caller-allocated typed parameters, then clears them
/// (`virTypedParamsClear` frees the strings libvirt put in them).
///
/// # Safety
/// `params` must hold `n` parameters libvirt initialised.
unsafe fn take_cleared(
    params: &mut [sys::virTypedParameter],
    n: c_int,
) -> Vec<(String, TypedValue)> {
    let n = n.clamp(0, params.len() as c_int);
    // SAFETY: the caller's promise; `n` is within the array.
    let out = unsafe { copy_params(params.as_mut_ptr(), n) };
    // SAFETY: the first `n` elements were initialised by libvirt and are
    // cleared exactly once.
    unsafe { sys::virTypedParamsClear(params.as_mut_ptr(), n) };
    out
}

/// A zeroed array of `n` typed parameters for libvirt to fill.
pub(super) fn param_array(n: c_int) -> Vec<sys::virTypedParameter> {
    let n = usize::try_from(n).unwrap_or(0);
    // SAFETY: virTypedParameter is plain C data (a char array, an int and
    // a union of numbers and a pointer); all zeroes is a valid value.
    (0..n).map(|_| unsafe { std::mem::zeroed() }).collect()
}

/// `virDomainBlockStatsFlags`: the typed I/O counters of disk `disk`.
pub fn block_stats_flags(dom: &Domain, disk: &str) -> Result<Vec<(String, TypedValue)>, Error> {
    let disk = cstring("disk", disk)?;
    let mut n: c_int = 0;
    // SAFETY: see the module doc; a null array with `n = 0` asks libvirt
    // for the number of parameters.
    let rc = unsafe {
        sys::virDomainBlockStatsFlags(dom.as_ptr(), disk.as_ptr(), ptr::null_mut(), &mut n, 0)
    };
    if rc < 0 {
        return Err(last_error());
    }
    let mut params = param_array(n);
    // SAFETY: `params` holds exactly `n` elements, as the call requires.
    let rc = unsafe {
        sys::virDomainBlockStatsFlags(dom.as_ptr(), disk.as_ptr(), params.as_mut_ptr(), &mut n, 0)
    };
    if rc < 0 {
        return Err(last_error());
    }
    // SAFETY: on success libvirt filled the first `n` elements.
    Ok(unsafe { take_cleared(&mut params, n) })
}

/// `virDomainGetDiskErrors`: each disk with an error and libvirt's error
/// code for it.
pub fn disk_errors(dom: &Domain) -> Result<Vec<(String, i32)>, Error> {
    // SAFETY: see the module doc; a null array asks for the count.
    let n = unsafe { sys::virDomainGetDiskErrors(dom.as_ptr(), ptr::null_mut(), 0, 0) };
    if n < 0 {
        return Err(last_error());
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut errors: Vec<sys::virDomainDiskError> = (0..n)
        .map(|_| sys::virDomainDiskError {
            disk: ptr::null_mut(),
            error: 0,
        })
        .collect();
    // SAFETY: `errors` holds `n` elements and `maxerrors` says so.
    let got =
        unsafe { sys::virDomainGetDiskErrors(dom.as_ptr(), errors.as_mut_ptr(), n as c_uint, 0) };
    if got < 0 {
        return Err(last_error());
    }
    let got = (got as usize).min(errors.len());
    let mut out = Vec::with_capacity(got);
    for e in errors.iter().take(got) {
        // SAFETY: libvirt filled `disk` with a string the caller frees.
        let disk = unsafe { copy_c_str(e.disk) };
        // SAFETY: freed exactly once, with the allocator libvirt used.
        unsafe { libc::free(e.disk as *mut c_void) };
        out.push((disk, e.error));
    }
    Ok(out)
}

/// `virDomainInjectNMI`.
pub fn inject_nmi(dom: &Domain) -> Result<(), Error> {
    // SAFETY: see the module doc.
    let rc = unsafe { sys::virDomainInjectNMI(dom.as_ptr(), 0) };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `virDomainBlockPeek`: `size` bytes of disk `disk` from `offset`.
pub fn block_peek(dom: &Domain, disk: &str, offset: u64, size: usize) -> Result<Vec<u8>, Error> {
    let disk = cstring("disk", disk)?;
    let mut buf = vec![0u8; size];
    // SAFETY: see the module doc; `buf` holds exactly `size` bytes.
    let rc = unsafe {
        sys::virDomainBlockPeek(
            dom.as_ptr(),
            disk.as_ptr(),
            offset,
            size,
            buf.as_mut_ptr() as *mut c_void,
            0,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(buf)
}

/// `virDomainMemoryPeek`: `size` bytes of guest memory from `start`
/// (`flags`: VIR_MEMORY_VIRTUAL or VIR_MEMORY_PHYSICAL).
pub fn memory_peek(dom: &Domain, start: u64, size: usize, flags: u32) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; size];
    // SAFETY: see the module doc; `buf` holds exactly `size` bytes.
    let rc = unsafe {
        sys::virDomainMemoryPeek(
            dom.as_ptr(),
            start,
            size,
            buf.as_mut_ptr() as *mut c_void,
            flags,
        )
    };
    if rc < 0 {
        return Err(last_error());
    }
    Ok(buf)
}

/// `virDomainGetSchedulerType`: the scheduler's name and its number of
/// parameters.
pub fn scheduler_type(dom: &Domain) -> Result<(String, i32), Error> {
    let mut n: c_int = 0;
    // SAFETY: see the module doc; `n` is a local.
    let name: *mut c_char = unsafe { sys::virDomainGetSchedulerType(dom.as_ptr(), &mut n) };
    if name.is_null() {
        return Err(last_error());
    }
    // SAFETY: a NUL-terminated string the caller owns.
    let out = unsafe { copy_c_str(name) };
    // SAFETY: freed exactly once, as libvirt documents.
    unsafe { libc::free(name as *mut c_void) };
    Ok((out, n))
}

/// The C type libvirt gives a typed parameter (`VIR_TYPED_PARAM_*`):
/// a value sent back must have exactly this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `int`.
    Int,
    /// `unsigned int`.
    UInt,
    /// `long long`.
    LLong,
    /// `unsigned long long`.
    ULLong,
    /// `double`.
    Double,
    /// A boolean.
    Boolean,
    /// A string.
    String,
}

impl ParamKind {
    fn of(raw: c_int) -> Option<ParamKind> {
        Some(match raw as u32 {
            sys::VIR_TYPED_PARAM_INT => ParamKind::Int,
            sys::VIR_TYPED_PARAM_UINT => ParamKind::UInt,
            sys::VIR_TYPED_PARAM_LLONG => ParamKind::LLong,
            sys::VIR_TYPED_PARAM_ULLONG => ParamKind::ULLong,
            sys::VIR_TYPED_PARAM_DOUBLE => ParamKind::Double,
            sys::VIR_TYPED_PARAM_BOOLEAN => ParamKind::Boolean,
            sys::VIR_TYPED_PARAM_STRING => ParamKind::String,
            _ => return None,
        })
    }
}

/// One scheduler parameter: its field, libvirt's type for it, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    /// The field name (`cpu_shares`, `weight`).
    pub field: String,
    /// libvirt's type for the field.
    pub kind: ParamKind,
    /// The value.
    pub value: TypedValue,
}

/// `virDomainGetSchedulerParametersFlags`: the scheduler's parameters
/// with their types (`flags`: VIR_DOMAIN_AFFECT_*).
pub fn scheduler_parameters(dom: &Domain, flags: u32) -> Result<Vec<TypedParam>, Error> {
    let (_, mut n) = scheduler_type(dom)?;
    let mut params = param_array(n);
    // SAFETY: `params` holds exactly `n` elements, as the calls require.
    // For the current values the call without flags: libvirt adds
    // VIR_TYPED_PARAM_STRING_OKAY to the flags call, which the test driver
    // refuses (virsh makes the same choice).
    let rc = unsafe {
        if flags == sys::VIR_DOMAIN_AFFECT_CURRENT {
            sys::virDomainGetSchedulerParameters(dom.as_ptr(), params.as_mut_ptr(), &mut n)
        } else {
            sys::virDomainGetSchedulerParametersFlags(
                dom.as_ptr(),
                params.as_mut_ptr(),
                &mut n,
                flags,
            )
        }
    };
    if rc < 0 {
        return Err(last_error());
    }
    // SAFETY: on success libvirt filled the first `n` elements.
    Ok(unsafe { take_typed(&mut params, n) })
}

/// Copies `n` caller-allocated typed parameters libvirt filled, with the
/// type of each, then clears them.
///
/// # Safety
/// As for [`take_cleared`].
pub(super) unsafe fn take_typed(
    params: &mut [sys::virTypedParameter],
    n: c_int,
) -> Vec<TypedParam> {
    let n = n.clamp(0, params.len() as c_int);
    let kinds: Vec<(String, ParamKind)> = params
        .iter()
        .take(n as usize)
        .filter_map(|p| ParamKind::of(p.type_).map(|k| (copy_c_array(&p.field), k)))
        .collect();
    // SAFETY: the caller's promise, passed on.
    let values = unsafe { take_cleared(params, n) };
    values
        .into_iter()
        .filter_map(|(field, value)| {
            let kind = kinds.iter().find(|(f, _)| *f == field)?.1;
            Some(TypedParam { field, kind, value })
        })
        .collect()
}

/// `virDomainSetSchedulerParametersFlags` with these parameters.
pub fn set_scheduler_parameters(
    dom: &Domain,
    values: &[TypedParam],
    flags: u32,
) -> Result<(), Error> {
    with_params(values, |params, n| {
        // SAFETY: `params` holds the `n` parameters built from `values`.
        unsafe {
            if flags == sys::VIR_DOMAIN_AFFECT_CURRENT {
                sys::virDomainSetSchedulerParameters(dom.as_ptr(), params, n)
            } else {
                sys::virDomainSetSchedulerParametersFlags(dom.as_ptr(), params, n, flags)
            }
        }
    })
}

/// Builds libvirt's array of `values`, makes the setter call `set` with
/// it (a negative answer is libvirt's error), and frees the array.
pub(super) fn with_params(
    values: &[TypedParam],
    set: impl FnOnce(sys::virTypedParameterPtr, c_int) -> c_int,
) -> Result<(), Error> {
    let mut params: sys::virTypedParameterPtr = ptr::null_mut();
    let mut n: c_int = 0;
    let mut max: c_int = 0;
    let result = add_params(&mut params, &mut n, &mut max, values).and_then(|()| {
        if set(params, n) < 0 {
            Err(last_error())
        } else {
            Ok(())
        }
    });
    if !params.is_null() {
        // SAFETY: the array virTypedParamsAdd* grew, freed exactly once.
        unsafe { sys::virTypedParamsFree(params, n) };
    }
    result
}

/// Appends `values` with the `virTypedParamsAdd*` call of each one's
/// kind; a value that does not fit its kind is INVALID_ARGUMENT.
fn add_params(
    params: &mut sys::virTypedParameterPtr,
    n: &mut c_int,
    max: &mut c_int,
    values: &[TypedParam],
) -> Result<(), Error> {
    for p in values {
        let name = cstring("parameters", &p.field)?;
        let field = format!("parameters[{}]", p.field);
        let bad = || Error::invalid(&field, format!("does not fit libvirt's type {:?}", p.kind));
        let n_ = &mut *n;
        let m_ = &mut *max;
        let name = name.as_ptr();
        // SAFETY (every Add call below): the out-pointers are the caller's
        // locals, which libvirt grows with its own allocator; `name` and
        // string values live until the call returns.
        let rc = match (p.kind, &p.value) {
            (ParamKind::Int, v) => {
                let v = v
                    .as_i64()
                    .and_then(|v| c_int::try_from(v).ok())
                    .ok_or_else(bad)?;
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddInt(params, n_, m_, name, v) }
            }
            (ParamKind::UInt, v) => {
                let v = v
                    .as_u64()
                    .and_then(|v| c_uint::try_from(v).ok())
                    .ok_or_else(bad)?;
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddUInt(params, n_, m_, name, v) }
            }
            (ParamKind::LLong, v) => {
                let v = v.as_i64().ok_or_else(bad)?;
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddLLong(params, n_, m_, name, v) }
            }
            (ParamKind::ULLong, v) => {
                let v = v.as_u64().ok_or_else(bad)?;
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddULLong(params, n_, m_, name, v) }
            }
            (ParamKind::Double, TypedValue::Double(v)) => {
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddDouble(params, n_, m_, name, *v) }
            }
            (ParamKind::Boolean, TypedValue::Bool(v)) => {
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddBoolean(params, n_, m_, name, c_int::from(*v)) }
            }
            (ParamKind::String, TypedValue::String(s)) => {
                let s = cstring(&field, s)?;
                // SAFETY: see above.
                unsafe { sys::virTypedParamsAddString(params, n_, m_, name, s.as_ptr()) }
            }
            _ => return Err(bad()),
        };
        if rc < 0 {
            return Err(last_error());
        }
    }
    Ok(())
}
