//! Spec files: a `DomainSpec` (or pool, volume, network, snapshot spec)
//! from TOML or JSON, read through the API's descriptor set so that every
//! field of the proto works without a hand-copied struct.
//!
//! The path: TOML (or JSON) -> `serde_json::Value` -> a pass that lets
//! enum values be written short (`bus = "virtio"` for `DISK_BUS_VIRTIO`,
//! any case, `-` for `_`) -> `DynamicMessage` (protobuf's JSON mapping:
//! field names as in the proto or in lowerCamelCase, 64-bit integers as
//! numbers or strings, unknown fields refused) -> the generated type.
//!
//! ```toml
//! name = "web1"
//! memory_bytes = 1073741824
//! vcpus = 2
//! [[disks]]
//! source_path = "/var/lib/libvirt/images/web1.qcow2"
//! target_dev = "vda"
//! format = "qcow2"
//! ```

use std::path::Path;

use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor};
use serde_json::Value;

use super::{output, Failure};

/// Reads `path` (`.toml`, else JSON) as the API message `name`.
pub(crate) fn load<M: prost::Message + Default>(path: &Path, name: &str) -> Result<M, Failure> {
    let text = super::read_text(path)?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    parse(&text, is_toml, name).map_err(|e| Failure::Input(format!("{}: {e}", path.display())))
}

/// Parses `text` (TOML or JSON) as the API message `name`.
pub(crate) fn parse<M: prost::Message + Default>(
    text: &str,
    is_toml: bool,
    name: &str,
) -> Result<M, String> {
    let mut value: Value = if is_toml {
        let t: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    };
    let desc = output::descriptor(name).map_err(|e| match e {
        Failure::Local(m) | Failure::Input(m) => m,
        _ => "no descriptor".to_owned(),
    })?;
    expand_enums(&mut value, &desc);
    let dynamic = DynamicMessage::deserialize_with_options(
        desc,
        value,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|e| e.to_string())?;
    dynamic.transcode_to::<M>().map_err(|e| e.to_string())
}

/// Rewrites short enum names into the proto's full ones, in place.
fn expand_enums(value: &mut Value, desc: &MessageDescriptor) {
    let Value::Object(map) = value else {
        return;
    };
    for (key, v) in map.iter_mut() {
        let field = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key));
        let Some(field) = field else {
            continue;
        };
        let items: Vec<&mut Value> = match v {
            Value::Array(a) if field.is_list() => a.iter_mut().collect(),
            other => vec![other],
        };
        for item in items {
            match field.kind() {
                Kind::Enum(e) => {
                    if let Value::String(s) = item {
                        if e.get_value_by_name(s).is_none() {
                            let full = format!(
                                "{}{}",
                                output::enum_prefix(e.name()),
                                s.to_ascii_uppercase().replace('-', "_")
                            );
                            if e.get_value_by_name(&full).is_some() {
                                *s = full;
                            }
                        }
                    }
                }
                Kind::Message(m) => expand_enums(item, &m),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use libvirt_grpc_client::v1;

    use super::*;

    #[test]
    fn a_toml_domain_spec_with_short_enums() {
        let spec: v1::DomainSpec = parse(
            r#"
name = "web1"
memory_bytes = 1073741824
vcpus = 2
guest_agent_channel = true
[boot]
devices = ["hd", "CDROM"]
[[disks]]
source_path = "/images/web1.qcow2"
target_dev = "vda"
format = "qcow2"
bus = "DISK_BUS_SATA"
[[graphics]]
type = "vnc"
autoport = true
[on_lifecycle]
on_crash = "coredump-restart"
"#,
            true,
            "DomainSpec",
        )
        .unwrap();
        assert_eq!(spec.name, "web1");
        assert_eq!(spec.memory_bytes, 1 << 30);
        assert!(spec.guest_agent_channel);
        let boot = spec.boot.unwrap();
        assert_eq!(
            boot.devices().collect::<Vec<_>>(),
            [v1::BootDevice::Hd, v1::BootDevice::Cdrom]
        );
        assert_eq!(spec.disks[0].format(), v1::DiskFormat::Qcow2);
        assert_eq!(spec.disks[0].bus(), v1::DiskBus::Sata);
        assert_eq!(spec.graphics[0].r#type(), v1::GraphicsType::Vnc);
        assert_eq!(
            spec.on_lifecycle.unwrap().on_crash(),
            v1::LifecycleAction::CoredumpRestart
        );
    }

    #[test]
    fn json_camel_case_and_unknown_fields() {
        let spec: v1::DomainSpec = parse(
            r#"{"name":"x","memoryBytes":"1048576","vcpus":1}"#,
            false,
            "DomainSpec",
        )
        .unwrap();
        assert_eq!(spec.memory_bytes, 1 << 20);
        let bad = parse::<v1::DomainSpec>(r#"{"name":"x","memroy_bytes":1}"#, false, "DomainSpec");
        assert!(bad.unwrap_err().contains("memroy_bytes"));
        let bad = parse::<v1::DomainSpec>("name = ", true, "DomainSpec");
        assert!(bad.is_err());
    }
}
