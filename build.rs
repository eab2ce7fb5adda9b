//! Compiles `proto/` once: Rust types and gRPC stubs for the server and the
//! client, plus one `FileDescriptorSet` that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "proto/libvirt_grpc/v1/common.proto",
        "proto/libvirt_grpc/v1/domain.proto",
        "proto/libvirt_grpc/v1/host.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("libvirt_grpc_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
