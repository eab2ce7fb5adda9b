//! Typed parameters (`TypedParameter`) in and out: the tunables families of
//! `DomainService` (memory, NUMA, blkio, interface, block I/O).

use libvirt_grpc::v1;

use crate::{
    error::Error,
    libvirt_sys::{
        internals::{ParamKind, TypedParam},
        TypedValue,
    },
    validate::{self, Violations},
};

/// Most parameters one tunables request may set.
pub const MAX_PARAMETERS: usize = 64;
/// Longest typed-parameter field name (libvirt's
/// VIR_TYPED_PARAM_FIELD_LENGTH, 80, with its NUL).
pub const MAX_PARAMETER_FIELD_BYTES: usize = 79;
/// Longest string value of a typed parameter.
pub const MAX_PARAMETER_STRING_BYTES: usize = 4096;
/// Longest device name (an interface target or MAC; a disk target or path).
const MAX_DEVICE: usize = 4096;

/// A parameter as the API's message.
pub fn typed_parameter(p: TypedParam) -> v1::TypedParameter {
    use v1::typed_parameter::Value;
    let r#type = match p.kind {
        ParamKind::Int => v1::TypedParameterType::Int,
        ParamKind::UInt => v1::TypedParameterType::Uint,
        ParamKind::LLong => v1::TypedParameterType::Llong,
        ParamKind::ULLong => v1::TypedParameterType::Ullong,
        ParamKind::Double => v1::TypedParameterType::Double,
        ParamKind::Boolean => v1::TypedParameterType::Boolean,
        ParamKind::String => v1::TypedParameterType::String,
    };
    let value = match p.value {
        TypedValue::Int(v) => Value::IntValue(v),
        TypedValue::UInt(v) => Value::UintValue(v),
        TypedValue::Double(v) => Value::DoubleValue(v),
        TypedValue::Bool(v) => Value::BoolValue(v),
        TypedValue::String(v) => Value::StringValue(v),
    };
    v1::TypedParameter {
        field: p.field,
        r#type: r#type as i32,
        value: Some(value),
    }
}

/// Parameters as messages.
pub fn typed_parameters(p: Vec<TypedParam>) -> Vec<v1::TypedParameter> {
    p.into_iter().map(typed_parameter).collect()
}

/// The values of a Set call (tunables, scheduler), checked: 1 to `max`,
/// each with a field name (at most [`MAX_PARAMETER_FIELD_BYTES`], no NUL,
/// not repeated) and a value (a finite double, a string of at most
/// [`MAX_PARAMETER_STRING_BYTES`] without NUL). Every bad one is reported.
pub fn typed_values(
    max: usize,
    params: &[v1::TypedParameter],
) -> Result<Vec<(String, TypedValue)>, Error> {
    use v1::typed_parameter::Value;
    let mut v = Violations::default();
    if params.is_empty() {
        v.add("parameters", "set at least one parameter");
    }
    if params.len() > max {
        v.add(
            "parameters",
            format!("sets {} parameters; the limit is {max}", params.len()),
        );
        return Err(v
            .finish()
            .err()
            .unwrap_or_else(|| Error::internal("no violation")));
    }
    let mut out: Vec<(String, TypedValue)> = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let field = format!("parameters[{i}].field");
        let named = v
            .check(validate::required_text(&field, &p.field))
            .and_then(|()| {
                v.check(validate::max_bytes(
                    &field,
                    &p.field,
                    MAX_PARAMETER_FIELD_BYTES,
                ))
            });
        if named.is_some() && out.iter().any(|(f, _)| *f == p.field) {
            v.add(&field, format!("'{}' is set twice", p.field));
        }
        let value = match &p.value {
            None => {
                v.add(format!("parameters[{i}].value"), "is required");
                None
            }
            Some(Value::IntValue(x)) => Some(TypedValue::Int(*x)),
            Some(Value::UintValue(x)) => Some(TypedValue::UInt(*x)),
            Some(Value::DoubleValue(x)) if x.is_finite() => Some(TypedValue::Double(*x)),
            Some(Value::DoubleValue(_)) => {
                v.add(format!("parameters[{i}].double_value"), "must be finite");
                None
            }
            Some(Value::BoolValue(x)) => Some(TypedValue::Bool(*x)),
            Some(Value::StringValue(x)) => {
                let f = format!("parameters[{i}].string_value");
                v.check(validate::text(&f, x))
                    .and_then(|()| v.check(validate::max_bytes(&f, x, MAX_PARAMETER_STRING_BYTES)))
                    .map(|()| TypedValue::String(x.clone()))
            }
        };
        if let (Some(()), Some(value)) = (named, value) {
            out.push((p.field.clone(), value));
        }
    }
    v.done(Some(out))
}

/// The device of the interface and disk families: 1 to 4096 characters.
pub fn device(d: &str) -> Result<(), Error> {
    if d.is_empty() || d.len() > MAX_DEVICE {
        return Err(Error::invalid(
            "device",
            format!("name the device (1 to {MAX_DEVICE} characters)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use v1::typed_parameter::Value;

    fn param(field: &str, value: Option<Value>) -> v1::TypedParameter {
        v1::TypedParameter {
            field: field.into(),
            r#type: 0,
            value,
        }
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let ok = typed_values(
            MAX_PARAMETERS,
            &[param("hard_limit", Some(Value::UintValue(1024)))],
        )
        .unwrap();
        assert_eq!(ok, vec![("hard_limit".to_owned(), TypedValue::UInt(1024))]);
        let Err(Error::InvalidArgument(bad)) = typed_values(
            MAX_PARAMETERS,
            &[
                param("", Some(Value::IntValue(1))),
                param("a", None),
                param("b", Some(Value::BoolValue(true))),
                param("b", Some(Value::BoolValue(false))),
                param("s", Some(Value::StringValue("x".repeat(4097)))),
            ],
        ) else {
            panic!("expected INVALID_ARGUMENT");
        };
        let fields: Vec<&str> = bad.iter().map(|b| b.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "parameters[0].field",
                "parameters[1].value",
                "parameters[3].field",
                "parameters[4].string_value"
            ]
        );
        assert!(typed_values(MAX_PARAMETERS, &[]).is_err());
    }
}
