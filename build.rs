//! Compiles `proto/` once: Rust types and gRPC stubs for the server and the
//! client, plus one `FileDescriptorSet` that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Every .proto of the API; adding a file to proto/libvirt_grpc/v1 is
    // all it takes to compile it.
    let mut protos: Vec<String> = std::fs::read_dir("proto/libvirt_grpc/v1")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    protos.sort();
    println!("cargo:rerun-if-changed=proto/libvirt_grpc/v1");
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("libvirt_grpc_descriptor.bin"))
        .compile_protos(&protos, &["proto".to_owned()])?;
    Ok(())
}
