//! Live migration between two configured hosts: libvirt's own transport,
//! client managed (virDomainMigrate3 with a connection to each daemon; the
//! daemons never need to reach each other's libvirt, only QEMU's migration
//! stream flows between the hosts).

use virt::{domain::MigrateParameters, sys};

use super::{
    domain::{describe, lookup, DomainInfo, DomainKey},
    Connect,
};
use crate::{error::Error, libvirt_sys};

/// One migration's choices, validated (`convert::domain::migration`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// VIR_MIGRATE_* flags.
    pub flags: u32,
    /// Bandwidth limit in MiB/s; 0 is libvirt's default.
    pub bandwidth_mib: u64,
    /// The longest pause at the end, in milliseconds, when set.
    pub max_downtime_ms: Option<u64>,
    /// The URI QEMU's migration stream goes to (`tcp://ADDRESS`, from the
    /// destination's `migration_address`); `None` lets libvirt choose (the
    /// destination's host name).
    pub uri: Option<String>,
}

/// Migrates the domain `key` names from `src` to `dst` (host `dst_host`);
/// the domain as it is on the destination afterwards.
pub fn migrate(
    src: &Connect,
    dst: &Connect,
    key: &DomainKey,
    dst_host: &str,
    m: &Migration,
) -> Result<DomainInfo, Error> {
    let dom = lookup(src, key)?;
    if let Some(ms) = m.max_downtime_ms {
        dom.migrate_set_max_downtime(ms, 0)?;
    }
    let params = MigrateParameters {
        bandwidth: (m.bandwidth_mib > 0).then_some(m.bandwidth_mib),
        uri: m.uri.clone(),
        ..MigrateParameters::default()
    };
    let moved = dom.migrate3(dst, params, m.flags)?;
    if m.flags & sys::VIR_MIGRATE_OFFLINE != 0 {
        // An offline migration moves the definition only: read it by UUID
        // (the handle libvirt returned names the same domain).
        return describe(
            dst,
            dst_host,
            &dst.lookup_domain_by_uuid_string(&moved.uuid_string()?)?,
        );
    }
    describe(dst, dst_host, &moved)
}

/// Switches the domain's running migration to post-copy.
pub fn start_post_copy(conn: &Connect, key: &DomainKey) -> Result<(), Error> {
    libvirt_sys::domain_migrate_start_post_copy(&lookup(conn, key)?)
}
