//! The libvirt-grpc API: protobuf types and gRPC stubs generated from
//! `proto/`, and the encoded descriptor set that server reflection serves.
//!
//! `proto/` is the contract; this crate only exposes what `build.rs` generates
//! from it, so the server and the Rust client can never disagree with the
//! `.proto` files other languages generate from.
#![forbid(unsafe_code)]

/// Version 1 of the API (`libvirt_grpc.v1`).
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("libvirt_grpc.v1");
}

/// The well-known types (`Timestamp`, `Duration`) the API's messages use,
/// so that callers can build them without their own `prost-types`.
pub use prost_types;

/// The encoded `FileDescriptorSet` of every `.proto` file in the API, for
/// server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/libvirt_grpc_descriptor.bin"));
