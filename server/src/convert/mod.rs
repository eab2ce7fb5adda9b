//! Conversions between the API's messages and libvirt's values, one module
//! per subject, each table written once: services turn requests into `ops`
//! inputs (`TryFrom`) and `ops` answers into messages (`From`) here.

pub mod agent;
pub mod domain;
pub mod host;
pub mod network;
pub mod snapshot;
pub mod state;
pub mod storage;
pub mod time;
