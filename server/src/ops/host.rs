//! Host (hypervisor connection) operations.

use libvirt_grpc::v1;
use virt::connect::Connect;

use crate::error::Error;

/// libvirt packs versions as `major * 1_000_000 + minor * 1_000 + micro`.
pub fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1_000) % 1_000, v % 1_000)
}

/// Reads versions, node facts and free memory.
pub fn info(conn: &Connect, host: &str) -> Result<v1::GetHostInfoResponse, Error> {
    let node = conn.node_info()?;
    let cells = node.nodes.max(1);
    let per_cell = conn.cells_free_memory(0, cells as i32)?;
    Ok(v1::GetHostInfoResponse {
        host: host.to_owned(),
        hostname: conn.hostname()?,
        libvirt_version: version_string(conn.lib_version()?),
        hypervisor_type: conn.driver_type()?,
        hypervisor_version: version_string(conn.hyp_version()?),
        uri: conn.uri()?,
        node: Some(v1::NodeInfo {
            cpu_model: node.model,
            memory_kib: node.memory,
            cpus: node.cpus,
            mhz: node.mhz,
            numa_nodes: node.nodes,
            sockets: node.sockets,
            cores: node.cores,
            threads: node.threads,
        }),
        free_memory_bytes: conn.free_memory()?,
        free_memory_per_cell_bytes: per_cell,
        max_vcpus: conn.max_vcpus(None)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(super::version_string(9_000_000), "9.0.0");
        assert_eq!(super::version_string(7_002_015), "7.2.15");
    }
}
