//! libvirt's typed parameters (`virTypedParameter`), decoded once for every
//! call and callback that returns them (bulk stats, guest info, guest
//! vCPUs, job-completed events).

use std::{fmt, os::raw::c_int};

use virt::sys;

use super::{copy_c_array, copy_c_str};

/// One typed parameter value, copied out of libvirt.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// A signed integer (INT or LLONG).
    Int(i64),
    /// An unsigned integer (UINT or ULLONG).
    UInt(u64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
}

impl TypedValue {
    /// The value as an unsigned integer, when it is a non-negative number.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            TypedValue::UInt(v) => Some(*v),
            TypedValue::Int(v) => u64::try_from(*v).ok(),
            TypedValue::Double(v) if *v >= 0.0 => Some(*v as u64),
            _ => None,
        }
    }

    /// The value as a signed integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            TypedValue::Int(v) => Some(*v),
            TypedValue::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TypedValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The value as `virsh` prints it: numbers in decimal, `true`/`false`,
/// strings as they are.
impl fmt::Display for TypedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedValue::Int(v) => write!(f, "{v}"),
            TypedValue::UInt(v) => write!(f, "{v}"),
            TypedValue::Double(v) => write!(f, "{v}"),
            TypedValue::Bool(v) => write!(f, "{v}"),
            TypedValue::String(s) => f.write_str(s),
        }
    }
}

/// Copies typed parameters out of libvirt's array (null means none);
/// parameters of an unknown type, and null strings, are skipped.
///
/// # Safety
/// `params` must be null or point to `n` initialised `virTypedParameter`s
/// that stay valid for the duration of this call.
pub(super) unsafe fn copy_params(
    params: sys::virTypedParameterPtr,
    n: c_int,
) -> Vec<(String, TypedValue)> {
    if params.is_null() {
        return Vec::new();
    }
    let n = usize::try_from(n).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the caller guarantees `n` initialised elements.
        let p = unsafe { &*params.add(i) };
        // SAFETY: `type_` says which union member libvirt initialised, and
        // a string member is null or a NUL-terminated string the array owns.
        let value = unsafe {
            match p.type_ as u32 {
                sys::VIR_TYPED_PARAM_INT => TypedValue::Int(i64::from(p.value.i)),
                sys::VIR_TYPED_PARAM_UINT => TypedValue::UInt(u64::from(p.value.ui)),
                sys::VIR_TYPED_PARAM_LLONG => TypedValue::Int(p.value.l),
                sys::VIR_TYPED_PARAM_ULLONG => TypedValue::UInt(p.value.ul),
                sys::VIR_TYPED_PARAM_DOUBLE => TypedValue::Double(p.value.d),
                sys::VIR_TYPED_PARAM_BOOLEAN => TypedValue::Bool(p.value.b != 0),
                sys::VIR_TYPED_PARAM_STRING if !p.value.s.is_null() => {
                    TypedValue::String(copy_c_str(p.value.s))
                }
                _ => continue,
            }
        };
        out.push((copy_c_array(&p.field), value));
    }
    out
}

/// Copies typed parameters libvirt handed over (see [`copy_params`]), then
/// frees them with `virTypedParamsFree`, as the calls that return them
/// document.
///
/// # Safety
/// As for [`copy_params`]; in addition the array must be ours to free and
/// must not be used again.
pub(super) unsafe fn take_params(
    params: sys::virTypedParameterPtr,
    n: c_int,
) -> Vec<(String, TypedValue)> {
    // SAFETY: the caller's promise, passed on.
    let out = unsafe { copy_params(params, n) };
    if !params.is_null() {
        // SAFETY: the array is ours and freed exactly once, after its copy.
        unsafe { sys::virTypedParamsFree(params, n) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_virsh_does() {
        assert_eq!(TypedValue::Int(-3).to_string(), "-3");
        assert_eq!(TypedValue::UInt(7).to_string(), "7");
        assert_eq!(TypedValue::Double(0.5).to_string(), "0.5");
        assert_eq!(TypedValue::Bool(true).to_string(), "true");
        assert_eq!(TypedValue::String("x y".into()).to_string(), "x y");
    }
}
