//! Typed parameters (`TypedParameter`) in and out: the tunables families of
//! `DomainService` (memory, NUMA, blkio, interface, block I/O).

use libvirt_grpc::v1;

use crate::{
    error::Error,
    libvirt_sys::{
        internals::{ParamKind, TypedParam},
        TypedValue,
    },
    validate::Violations,
};

/// Most parameters one request may set.
const MAX_PARAMETERS: usize = 64;
/// Longest field name libvirt has room for (VIR_TYPED_PARAM_FIELD_LENGTH
/// less its NUL).
const MAX_FIELD: usize = 79;
/// Longest string value accepted.
const MAX_STRING: usize = 4096;
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

/// The values a Set call asks for, each checked: 1 to 64, names 1 to 79
/// bytes and unique, a value set, strings bounded. Every bad one is
/// reported.
pub fn requested(params: Vec<v1::TypedParameter>) -> Result<Vec<(String, TypedValue)>, Error> {
    use v1::typed_parameter::Value;
    let mut v = Violations::default();
    if params.is_empty() || params.len() > MAX_PARAMETERS {
        v.add(
            "parameters",
            format!("give 1 to {MAX_PARAMETERS} parameters"),
        );
    }
    let mut out: Vec<(String, TypedValue)> = Vec::with_capacity(params.len());
    for (i, p) in params.into_iter().enumerate() {
        let at = format!("parameters[{i}]");
        if p.field.is_empty() || p.field.len() > MAX_FIELD {
            v.add(format!("{at}.field"), format!("1 to {MAX_FIELD} bytes"));
            continue;
        }
        if out.iter().any(|(f, _)| *f == p.field) {
            v.add(
                format!("{at}.field"),
                format!("'{}' is named twice", p.field),
            );
            continue;
        }
        let value = match p.value {
            None => {
                v.add(format!("{at}.value"), "set one value member");
                continue;
            }
            Some(Value::IntValue(x)) => TypedValue::Int(x),
            Some(Value::UintValue(x)) => TypedValue::UInt(x),
            Some(Value::DoubleValue(x)) => TypedValue::Double(x),
            Some(Value::BoolValue(x)) => TypedValue::Bool(x),
            Some(Value::StringValue(s)) if s.len() > MAX_STRING => {
                v.add(
                    format!("{at}.string_value"),
                    format!("at most {MAX_STRING} bytes"),
                );
                continue;
            }
            Some(Value::StringValue(s)) => TypedValue::String(s),
        };
        out.push((p.field, value));
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
        let ok = requested(vec![param("hard_limit", Some(Value::UintValue(1024)))]).unwrap();
        assert_eq!(ok, vec![("hard_limit".to_owned(), TypedValue::UInt(1024))]);
        let Err(Error::InvalidArgument(bad)) = requested(vec![
            param("", Some(Value::IntValue(1))),
            param("a", None),
            param("b", Some(Value::BoolValue(true))),
            param("b", Some(Value::BoolValue(false))),
            param("s", Some(Value::StringValue("x".repeat(4097)))),
        ]) else {
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
        assert!(requested(vec![]).is_err());
    }
}
