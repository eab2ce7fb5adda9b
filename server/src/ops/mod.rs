//! The operations layer: every libvirt call the server makes, as plain
//! blocking functions over a `&Connect`. Services run them through
//! `HostPool::run`, which puts them on the blocking pool.

pub mod agent;
pub mod domain;
pub mod host;
pub mod network;
pub mod snapshot;
pub mod storage;
