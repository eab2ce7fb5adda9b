//! CPU scheduler tuning: the scheduler's name, its parameters with the
//! types libvirt gives them, and changes converted to those types.

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::{
    error::Error,
    libvirt_sys::{
        internals::{self as sys_internals, ParamKind, TypedParam},
        TypedValue,
    },
};

/// `virDomainGetSchedulerType`: the name and the number of parameters.
pub fn scheduler_type(conn: &Connect, key: &DomainKey) -> Result<(String, i32), Error> {
    let dom = lookup(conn, key)?;
    sys_internals::scheduler_type(&dom)
}

/// The scheduler's name and its parameters (`flags`: VIR_DOMAIN_AFFECT_*).
pub fn scheduler_parameters(
    conn: &Connect,
    key: &DomainKey,
    flags: u32,
) -> Result<(String, Vec<TypedParam>), Error> {
    let dom = lookup(conn, key)?;
    let (name, _) = sys_internals::scheduler_type(&dom)?;
    Ok((name, sys_internals::scheduler_parameters(&dom, flags)?))
}

/// `value` as libvirt's type `kind`, when it fits; `field` names the
/// request field for the error.
fn fit(field: &str, kind: ParamKind, value: &TypedValue) -> Result<TypedValue, Error> {
    let bad = || {
        Error::invalid(
            field,
            format!("the value {value} does not fit the field's type ({kind:?})"),
        )
    };
    Ok(match kind {
        ParamKind::Int => {
            let v = value.as_i64().ok_or_else(bad)?;
            i32::try_from(v).map_err(|_| bad())?;
            TypedValue::Int(v)
        }
        ParamKind::LLong => TypedValue::Int(value.as_i64().ok_or_else(bad)?),
        ParamKind::UInt => {
            let v = match value {
                TypedValue::UInt(v) => *v,
                TypedValue::Int(v) => u64::try_from(*v).map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            u32::try_from(v).map_err(|_| bad())?;
            TypedValue::UInt(v)
        }
        ParamKind::ULLong => match value {
            TypedValue::UInt(v) => TypedValue::UInt(*v),
            TypedValue::Int(v) => TypedValue::UInt(u64::try_from(*v).map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ParamKind::Double => match value {
            TypedValue::Double(v) => TypedValue::Double(*v),
            TypedValue::Int(v) => TypedValue::Double(*v as f64),
            TypedValue::UInt(v) => TypedValue::Double(*v as f64),
            _ => return Err(bad()),
        },
        ParamKind::Boolean => match value {
            TypedValue::Bool(v) => TypedValue::Bool(*v),
            _ => return Err(bad()),
        },
        ParamKind::String => match value {
            TypedValue::String(s) => TypedValue::String(s.clone()),
            _ => return Err(bad()),
        },
    })
}

/// Sets `wanted` (field, value; validated, each field once), each value
/// converted to the type libvirt reports for its field; then the
/// parameters as read back. A field the scheduler does not have is
/// INVALID_ARGUMENT naming the fields it has. `read_flags` selects what
/// is read (the definition's values when only the config changes).
pub fn set_scheduler_parameters(
    conn: &Connect,
    key: &DomainKey,
    wanted: &[(String, TypedValue)],
    flags: u32,
    read_flags: u32,
) -> Result<(String, Vec<TypedParam>), Error> {
    let dom = lookup(conn, key)?;
    let (name, _) = sys_internals::scheduler_type(&dom)?;
    let current = sys_internals::scheduler_parameters(&dom, read_flags)?;
    let mut v = crate::validate::Violations::default();
    let mut typed = Vec::with_capacity(wanted.len());
    for (i, (field, value)) in wanted.iter().enumerate() {
        let Some(known) = current.iter().find(|p| p.field == *field) else {
            let have: Vec<&str> = current.iter().map(|p| p.field.as_str()).collect();
            v.add(
                format!("parameters[{i}].field"),
                format!(
                    "the scheduler '{name}' has no field '{field}'; it has: {}",
                    have.join(", ")
                ),
            );
            continue;
        };
        if let Some(value) = v.check(fit(&format!("parameters[{i}]"), known.kind, value)) {
            typed.push(TypedParam {
                field: field.clone(),
                kind: known.kind,
                value,
            });
        }
    }
    v.finish()?;
    sys_internals::set_scheduler_parameters(&dom, &typed, flags)?;
    Ok((name, sys_internals::scheduler_parameters(&dom, read_flags)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_fit_the_field_type_or_are_refused() {
        use TypedValue as V;
        assert_eq!(fit("p", ParamKind::ULLong, &V::Int(5)).unwrap(), V::UInt(5));
        assert!(fit("p", ParamKind::ULLong, &V::Int(-5)).is_err());
        assert_eq!(fit("p", ParamKind::LLong, &V::UInt(7)).unwrap(), V::Int(7));
        assert!(fit("p", ParamKind::LLong, &V::UInt(u64::MAX)).is_err());
        assert!(fit("p", ParamKind::UInt, &V::UInt(1 << 33)).is_err());
        assert!(fit("p", ParamKind::Int, &V::Int(1 << 40)).is_err());
        assert_eq!(
            fit("p", ParamKind::Double, &V::UInt(2)).unwrap(),
            V::Double(2.0)
        );
        assert!(fit("p", ParamKind::Boolean, &V::Int(1)).is_err());
        assert!(fit("p", ParamKind::String, &V::Int(1)).is_err());
    }
}
