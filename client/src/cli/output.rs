//! Printing: tables with headers (comfy-table), JSON with stable field
//! names, progress bars (indicatif) on a terminal only.
//!
//! JSON of API messages comes from the API's descriptor set: the proto's
//! own field names (snake_case; v1 never renames one), every field present
//! (unset messages and proto3 `optional`s as `null`), enum values by name
//! without their type's prefix (`RUNNING`, not `DOMAIN_STATE_RUNNING`),
//! 64-bit integers as numbers, `Timestamp`s as RFC 3339 text and
//! `Duration`s as seconds (a float).

use std::{io::IsTerminal, sync::OnceLock};

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use libvirt_grpc_client::v1;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value as PV,
};
use serde_json::{json, Map, Value};

use super::Failure;

/// The API's descriptors, decoded once.
pub(crate) fn pool() -> Result<&'static DescriptorPool, Failure> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(libvirt_grpc::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Failure::Local(format!("The API's descriptor set does not decode: {e}")))
}

/// The descriptor of `libvirt_grpc.v1.<name>`.
pub(crate) fn descriptor(name: &str) -> Result<MessageDescriptor, Failure> {
    let full = format!("libvirt_grpc.v1.{name}");
    pool()?
        .get_message_by_name(&full)
        .ok_or_else(|| Failure::Local(format!("The API has no message {full}")))
}

/// `message` (of API type `name`) as the tool's JSON.
pub(crate) fn proto_json<M: prost::Message>(name: &str, message: &M) -> Result<Value, Failure> {
    let desc = descriptor(name)?;
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .map_err(|e| Failure::Local(format!("Cannot read back a {name}: {e}")))?;
    Ok(dynamic_json(&dynamic))
}

/// The JSON of every message in `items`, as an array.
pub(crate) fn proto_json_array<M: prost::Message>(
    name: &str,
    items: &[M],
) -> Result<Value, Failure> {
    items
        .iter()
        .map(|m| proto_json(name, m))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn dynamic_json(m: &DynamicMessage) -> Value {
    let desc = m.descriptor();
    match desc.full_name() {
        "google.protobuf.Timestamp" => {
            if let Ok(t) = m.transcode_to::<prost_types::Timestamp>() {
                return Value::String(t.to_string());
            }
        }
        "google.protobuf.Duration" => {
            if let Ok(d) = m.transcode_to::<prost_types::Duration>() {
                return json!(d.seconds as f64 + f64::from(d.nanos) / 1e9);
            }
        }
        _ => {}
    }
    let mut out = Map::new();
    for f in desc.fields() {
        let has = m.has_field(&f);
        // A oneof member that is not the chosen one is left out; proto3
        // `optional`s and messages that are unset are null.
        if let Some(o) = f.containing_oneof() {
            if !o.is_synthetic() && !has {
                continue;
            }
            if o.is_synthetic() && !has {
                out.insert(f.name().to_owned(), Value::Null);
                continue;
            }
        }
        if !has && f.kind().as_message().is_some() && !f.is_list() && !f.is_map() {
            out.insert(f.name().to_owned(), Value::Null);
            continue;
        }
        let v = m.get_field(&f);
        out.insert(f.name().to_owned(), value_json(&v, &f.kind()));
    }
    Value::Object(out)
}

fn value_json(v: &PV, kind: &prost_reflect::Kind) -> Value {
    match v {
        PV::Bool(b) => json!(b),
        PV::I32(n) => json!(n),
        PV::I64(n) => json!(n),
        PV::U32(n) => json!(n),
        PV::U64(n) => json!(n),
        PV::F32(n) => json!(n),
        PV::F64(n) => json!(n),
        PV::String(s) => json!(s),
        PV::Bytes(b) => json!(String::from_utf8_lossy(b)),
        PV::EnumNumber(n) => match kind.as_enum() {
            Some(e) => match e.get_value(*n) {
                Some(ev) => json!(short_enum(e.name(), ev.name())),
                None => json!(n),
            },
            None => json!(n),
        },
        PV::Message(m) => dynamic_json(m),
        PV::List(items) => Value::Array(items.iter().map(|i| value_json(i, kind)).collect()),
        PV::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        prost_reflect::MapKey::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    let vk = kind
                        .as_message()
                        .map(|m| m.map_entry_value_field().kind())
                        .unwrap_or_else(|| kind.clone());
                    (key, value_json(v, &vk))
                })
                .collect(),
        ),
    }
}

/// The prefix of an enum's value names: `DomainState` -> `DOMAIN_STATE_`.
pub(crate) fn enum_prefix(enum_name: &str) -> String {
    let mut p = String::new();
    for (i, c) in enum_name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            p.push('_');
        }
        p.push(c.to_ascii_uppercase());
    }
    p.push('_');
    p
}

/// An enum value's name without its type's prefix.
pub(crate) fn short_enum(enum_name: &str, value_name: &str) -> String {
    let prefix = enum_prefix(enum_name);
    value_name
        .strip_prefix(&prefix)
        .unwrap_or(value_name)
        .to_owned()
}

/// A table with these headers.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(arrangement())
        .set_header(header.to_vec());
    t
}

/// Fitted to the terminal's width on stdout, unless the terminal reports
/// none: a pseudo-terminal nobody sized (under `script`, `ssh -t` from a
/// pipe, a serial line) has 0 columns, which would squeeze every column to
/// one character. Piped output is never wrapped.
fn arrangement() -> ContentArrangement {
    if !std::io::stdout().is_terminal() {
        return ContentArrangement::Dynamic;
    }
    match crossterm::terminal::size() {
        Ok((columns, _)) if columns > 0 => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    }
}

/// A value as a table cell: empty for false, "yes" for true.
pub(crate) fn yes(b: bool) -> String {
    if b { "yes" } else { "" }.to_owned()
}

/// Bytes as MiB (rounded down), for tables.
pub(crate) fn mib(bytes: u64) -> String {
    (bytes >> 20).to_string()
}

/// Prints one JSON document.
pub(crate) fn print_json(v: &Value) {
    println!("{v}");
}

/// The result of a change without an object to show: `{"name": ...,
/// "<what>": true}` or `name: <what>`.
pub(crate) fn done(json: bool, name: &str, what: &str) {
    if json {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        m.insert(what.into(), json!(true));
        print_json(&Value::Object(m));
    } else {
        println!("{name}: {what}");
    }
}

pub(crate) fn state_name(d: &v1::Domain) -> &'static str {
    d.state().as_str_name().trim_start_matches("DOMAIN_STATE_")
}

pub(crate) fn reason_name(d: &v1::Domain) -> &'static str {
    d.state_reason()
        .as_str_name()
        .trim_start_matches("DOMAIN_STATE_REASON_")
}

/// A domain as the tool's JSON: stable field names, enums by name.
pub(crate) fn domain_json(d: &v1::Domain) -> Value {
    json!({
        "host": d.host,
        "name": d.name,
        "uuid": d.uuid,
        "id": d.id,
        "state": state_name(d),
        "state_reason": reason_name(d),
        "memory_bytes": d.memory_bytes,
        "max_memory_bytes": d.max_memory_bytes,
        "vcpus": d.vcpus,
        "autostart": d.autostart,
        "persistent": d.persistent,
    })
}

pub(crate) fn print_domains(json: bool, domains: &[v1::Domain]) {
    if json {
        let all: Vec<Value> = domains.iter().map(domain_json).collect();
        print_json(&Value::Array(all));
        return;
    }
    let mut t = table(&[
        "HOST",
        "NAME",
        "STATE",
        "REASON",
        "VCPUS",
        "MEMORY (MiB)",
        "UUID",
    ]);
    for d in domains {
        t.add_row(vec![
            d.host.clone(),
            d.name.clone(),
            state_name(d).to_owned(),
            reason_name(d).to_owned(),
            d.vcpus.to_string(),
            mib(d.memory_bytes),
            d.uuid.clone(),
        ]);
    }
    println!("{t}");
}

pub(crate) fn print_domain(json: bool, d: &v1::Domain) {
    if json {
        print_json(&domain_json(d));
    } else {
        print_domains(false, std::slice::from_ref(d));
    }
}

/// A changed domain, or the server's missing answer as a failure.
pub(crate) fn print_optional(json: bool, d: Option<v1::Domain>) -> Result<(), Failure> {
    let d = d.ok_or_else(|| Failure::missing("domain"))?;
    print_domain(json, &d);
    Ok(())
}

/// A progress bar of `total` bytes (`None`: not known yet, drawn empty
/// until `set_length`) on stderr when stderr is a terminal; a hidden one
/// (drawing nothing) when it is piped or redirected.
pub(crate) fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_lose_their_prefix() {
        assert_eq!(enum_prefix("DomainState"), "DOMAIN_STATE_");
        assert_eq!(short_enum("DiskBus", "DISK_BUS_VIRTIO"), "VIRTIO");
        assert_eq!(short_enum("DiskBus", "OTHER"), "OTHER");
    }

    #[test]
    fn messages_become_json_with_proto_names() {
        let p = v1::StoragePool {
            name: "p".into(),
            state: v1::StoragePoolState::Running as i32,
            capacity_bytes: 1 << 40,
            ..Default::default()
        };
        let j = proto_json("StoragePool", &p).unwrap();
        assert_eq!(j["name"], "p");
        assert_eq!(j["state"], "RUNNING");
        assert_eq!(j["capacity_bytes"], 1u64 << 40);
        assert_eq!(j["autostart"], false);
        let b = v1::BalloonStats {
            current_bytes: Some(5),
            ..Default::default()
        };
        let j = proto_json("BalloonStats", &b).unwrap();
        assert_eq!(j["current_bytes"], 5);
        assert_eq!(j["rss_bytes"], Value::Null);
    }
}
