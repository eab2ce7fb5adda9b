//! libvirt-grpcd: a gRPC server in front of one or more libvirt hosts.
//!
//! Layout: [`config`] (flags and TOML) -> [`pool`] (connections per host and
//! the one door every libvirt call goes through) -> [`ops`] (the libvirt
//! calls) -> [`services`] (one module per proto service) -> [`server`]
//! (assembly, over the connection limits of [`transport`]). [`error`] holds
//! the one error type and its gRPC code table; [`libvirt_sys`] is the only
//! module with `unsafe`.

pub mod config;
pub mod error;
pub mod events;
pub mod libvirt_sys;
pub mod ops;
pub mod pool;
pub mod render;
pub mod server;
pub mod services;
pub mod transport;
pub mod validate;
pub mod xml_query;
