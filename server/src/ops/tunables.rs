//! Domain tunables read and written as libvirt's typed parameters: memory,
//! NUMA, blkio, one interface's bandwidth, one disk's I/O limits.

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::{
    error::Error,
    libvirt_sys::{
        internals::TypedParam,
        tunables::{self, Family},
        TypedValue,
    },
};

/// Which family of tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// virDomainGet/SetMemoryParameters.
    Memory,
    /// virDomainGet/SetNumaParameters.
    Numa,
    /// virDomainGet/SetBlkioParameters.
    Blkio,
    /// virDomainGet/SetInterfaceParameters (needs a device).
    Interface,
    /// virDomainGet/SetBlockIoTune (needs a device).
    BlockIoTune,
}

impl Kind {
    fn family<'a>(&self, device: &'a str) -> Family<'a> {
        match self {
            Kind::Memory => Family::Memory,
            Kind::Numa => Family::Numa,
            Kind::Blkio => Family::Blkio,
            Kind::Interface => Family::Interface(device),
            Kind::BlockIoTune => Family::BlockIoTune(device),
        }
    }

    /// What the family is called in messages.
    pub fn noun(&self) -> &'static str {
        match self {
            Kind::Memory => "memory parameter",
            Kind::Numa => "NUMA parameter",
            Kind::Blkio => "blkio parameter",
            Kind::Interface => "interface parameter",
            Kind::BlockIoTune => "block I/O tunable",
        }
    }
}

/// The family's parameters (`flags`: VIR_DOMAIN_AFFECT_CURRENT or CONFIG;
/// `device` for the interface and disk families).
pub fn get(
    conn: &Connect,
    key: &DomainKey,
    kind: Kind,
    device: &str,
    flags: u32,
) -> Result<Vec<TypedParam>, Error> {
    let dom = lookup(conn, key)?;
    tunables::tunables(&dom, kind.family(device), flags)
}

/// Sets `values` (by field name) in the types libvirt reports for them
/// (`flags`: VIR_DOMAIN_AFFECT_*), then reads the family back. A field the
/// domain does not have is INVALID_ARGUMENT before anything changes.
pub fn set(
    conn: &Connect,
    key: &DomainKey,
    kind: Kind,
    device: &str,
    values: Vec<(String, TypedValue)>,
    flags: u32,
) -> Result<Vec<TypedParam>, Error> {
    let dom = lookup(conn, key)?;
    let family = kind.family(device);
    let read = super::read_back_flags(flags);
    let current = tunables::tunables(&dom, family, read)?;
    let mut typed = Vec::with_capacity(values.len());
    for (field, value) in values {
        let Some(known) = current.iter().find(|p| p.field == field) else {
            let names: Vec<&str> = current.iter().map(|p| p.field.as_str()).collect();
            return Err(Error::invalid(
                format!("parameters[{field}]"),
                format!(
                    "not a {} of this domain (it has: {})",
                    kind.noun(),
                    names.join(", ")
                ),
            ));
        };
        typed.push(TypedParam {
            field,
            kind: known.kind,
            value,
        });
    }
    tunables::set_tunables(&dom, family, &typed, flags)?;
    tunables::tunables(&dom, family, read)
}
