//! `HostService` conversions: a host's health and facts into messages
//! (node memory from libvirt's KiB to bytes), `GetDomainCapabilities`
//! requests into `ops::host` queries.

use libvirt_grpc::v1;

use crate::{
    error::Error,
    ops::host::{DomainCapsQuery, HostInfo},
    pool::Health,
    validate::{self, Violations},
};

/// The API's health for the pool's.
pub fn health(h: Health) -> v1::HostHealth {
    match h {
        Health::Unknown => v1::HostHealth::Unknown,
        Health::Serving => v1::HostHealth::Serving,
        Health::NotServing => v1::HostHealth::NotServing,
    }
}

impl From<HostInfo> for v1::GetHostInfoResponse {
    fn from(i: HostInfo) -> Self {
        let n = i.node;
        v1::GetHostInfoResponse {
            host: i.host,
            hostname: i.hostname,
            libvirt_version: i.libvirt_version,
            hypervisor_type: i.hypervisor_type,
            hypervisor_version: i.hypervisor_version,
            uri: i.uri,
            node: Some(v1::NodeInfo {
                cpu_model: n.cpu_model,
                memory_bytes: n.memory_kib.saturating_mul(1024),
                cpus: n.cpus,
                mhz: n.mhz,
                numa_nodes: n.numa_nodes,
                sockets: n.sockets,
                cores: n.cores,
                threads: n.threads,
            }),
            free_memory_per_cell_bytes: i.free_memory_per_cell_bytes,
            free_memory_bytes: i.free_memory_bytes,
            max_vcpus: i.max_vcpus,
        }
    }
}

/// An optional text field: `None` when empty.
fn optional(v: &mut Violations, field: &str, s: &str) -> Option<String> {
    v.check(validate::text(field, s));
    (!s.is_empty()).then(|| s.to_owned())
}

impl TryFrom<&v1::GetDomainCapabilitiesRequest> for DomainCapsQuery {
    type Error = Error;

    /// Every bad field in one error.
    fn try_from(r: &v1::GetDomainCapabilitiesRequest) -> Result<Self, Error> {
        let mut v = Violations::default();
        if !r.emulator.is_empty() {
            v.check(validate::absolute_path("emulator", &r.emulator));
        }
        let q = DomainCapsQuery {
            emulator: (!r.emulator.is_empty()).then(|| r.emulator.clone()),
            arch: optional(&mut v, "arch", &r.arch),
            machine: optional(&mut v, "machine", &r.machine),
            virt_type: optional(&mut v, "virt_type", &r.virt_type),
        };
        v.finish()?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::host::NodeFacts;

    #[test]
    fn node_memory_is_bytes() {
        let r: v1::GetHostInfoResponse = HostInfo {
            node: NodeFacts {
                memory_kib: 4,
                ..Default::default()
            },
            ..Default::default()
        }
        .into();
        assert_eq!(r.node.map(|n| n.memory_bytes), Some(4096));
    }

    #[test]
    fn health_is_never_unspecified() {
        for h in [Health::Unknown, Health::Serving, Health::NotServing] {
            assert_ne!(health(h), v1::HostHealth::Unspecified);
        }
    }
}
