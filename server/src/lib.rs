//! libvirt-grpcd: a gRPC server in front of one or more libvirt hosts.
//!
//! Layout: [`config`] (flags and TOML) -> [`pool`] (connections per host and
//! the one door every libvirt call goes through) -> [`ops`] (the libvirt
//! calls) -> [`services`] (one module per proto service) -> [`server`]
//! (assembly, over the connection limits of [`transport`]). [`events`] turns
//! libvirt's callbacks into the event stream. [`error`] holds the one error
//! type and its gRPC code table. [`metrics`] counts calls and serves the
//! Prometheus endpoint. [`confine`] keeps the host paths callers name under
//! the configured roots. [`auth`] identifies callers (TLS certificates,
//! bearer tokens), gives every RPC its role and writes the audit line.
//!
//! [`libvirt_sys`] is the one FFI module: every `unsafe` of the server, each
//! block with its `// SAFETY:` argument. Every other module is declared
//! `#[forbid(unsafe_code)]` below, which no attribute inside it can lift; a
//! crate-wide `forbid` is not possible, as it would forbid the FFI module's
//! `allow` too. The crate root denies `unsafe_code` as well, so a module
//! added without either attribute still cannot use `unsafe` unnoticed.
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
pub mod auth;
#[forbid(unsafe_code)]
pub mod coalesce;
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod confine;
#[forbid(unsafe_code)]
pub mod convert;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
pub mod events;
#[allow(unsafe_code)]
pub mod libvirt_sys;
#[forbid(unsafe_code)]
pub mod metrics;
#[forbid(unsafe_code)]
pub mod ops;
#[forbid(unsafe_code)]
pub mod pool;
#[forbid(unsafe_code)]
pub mod render;
#[forbid(unsafe_code)]
pub mod server;
#[forbid(unsafe_code)]
pub mod services;
#[forbid(unsafe_code)]
pub mod transport;
#[forbid(unsafe_code)]
pub mod validate;
#[forbid(unsafe_code)]
pub mod xml_query;
