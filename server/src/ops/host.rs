//! Host (hypervisor connection) operations: versions, node facts and
//! capabilities. Answers are plain values ([`HostInfo`]); `convert::host`
//! makes messages of them.

use super::Connect;

use crate::error::Error;

/// libvirt packs versions as `major * 1_000_000 + minor * 1_000 + micro`.
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1_000) % 1_000, v % 1_000)
}

/// The version of the libvirt library this process runs with
/// (`virGetVersion`), e.g. `10.10.0`. Needs no connection; `--version`
/// prints it.
pub fn library_version() -> Result<String, Error> {
    Ok(version_string(virt::connect::Connect::version()?))
}

/// libvirt's virNodeInfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The CPU model.
    pub cpu_model: String,
    /// Memory size in KiB, as libvirt counts it.
    pub memory_kib: u64,
    /// Active CPUs.
    pub cpus: u32,
    /// CPU frequency in MHz.
    pub mhz: u32,
    /// NUMA cells.
    pub numa_nodes: u32,
    /// Sockets per cell.
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

/// What `GetHostInfo` reports of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// The configured host's name.
    pub host: String,
    /// Its hostname.
    pub hostname: String,
    /// The libvirt library version ("major.minor.micro").
    pub libvirt_version: String,
    /// The hypervisor driver's name.
    pub hypervisor_type: String,
    /// The hypervisor version ("major.minor.micro").
    pub hypervisor_version: String,
    /// The connection URI libvirt reports.
    pub uri: String,
    /// Node facts.
    pub node: NodeFacts,
    /// Free bytes of each NUMA cell.
    pub free_memory_per_cell_bytes: Vec<u64>,
    /// Free bytes in total.
    pub free_memory_bytes: u64,
    /// The largest vCPU count of a domain of the default type.
    pub max_vcpus: u32,
}

/// Reads versions, node facts and free memory.
pub fn info(conn: &Connect, host: &str) -> Result<HostInfo, Error> {
    let node = conn.node_info()?;
    let cells = node.nodes.max(1);
    let per_cell = conn.cells_free_memory(0, cells as i32)?;
    Ok(HostInfo {
        host: host.to_owned(),
        hostname: conn.hostname()?,
        libvirt_version: version_string(conn.lib_version()?),
        hypervisor_type: conn.driver_type()?,
        hypervisor_version: version_string(conn.hyp_version()?),
        uri: conn.uri()?,
        node: NodeFacts {
            cpu_model: node.model,
            memory_kib: node.memory,
            cpus: node.cpus,
            mhz: node.mhz,
            numa_nodes: node.nodes,
            sockets: node.sockets,
            cores: node.cores,
            threads: node.threads,
        },
        free_memory_bytes: conn.free_memory()?,
        free_memory_per_cell_bytes: per_cell,
        max_vcpus: conn.max_vcpus(None)?,
    })
}

/// The host's capabilities XML.
pub fn capabilities(conn: &Connect) -> Result<String, Error> {
    Ok(conn.capabilities()?)
}

/// What the domain capabilities describe; `None` lets libvirt choose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainCapsQuery {
    /// The emulator binary.
    pub emulator: Option<String>,
    /// The architecture.
    pub arch: Option<String>,
    /// The machine type.
    pub machine: Option<String>,
    /// The virtualization type.
    pub virt_type: Option<String>,
}

/// The domain capabilities XML.
pub fn domain_capabilities(conn: &Connect, q: &DomainCapsQuery) -> Result<String, Error> {
    Ok(conn.domain_capabilities(
        q.emulator.as_deref(),
        q.arch.as_deref(),
        q.machine.as_deref(),
        q.virt_type.as_deref(),
        0,
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(super::version_string(9_000_000), "9.0.0");
        assert_eq!(super::version_string(7_002_015), "7.2.15");
    }
}
