//! The QEMU monitor: one command through `virDomainQemuMonitorCommand`
//! (libvirt-qemu), its reply as QEMU sent it.

use virt::sys;

use super::{
    domain::{lookup, DomainKey},
    Connect,
};
use crate::error::Error;

/// The language of a monitor command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorProtocol {
    /// QMP: a JSON object.
    Qmp,
    /// The human monitor: text (libvirt wraps it in QMP's
    /// `human-monitor-command`).
    Hmp,
}

/// Sends `command` to the monitor of domain `key`; QEMU's reply.
pub fn command(
    conn: &Connect,
    key: &DomainKey,
    command: &str,
    protocol: MonitorProtocol,
) -> Result<String, Error> {
    let dom = lookup(conn, key)?;
    let flags = match protocol {
        MonitorProtocol::Qmp => sys::VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT,
        MonitorProtocol::Hmp => sys::VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
    };
    Ok(dom.qemu_monitor_command(command, flags)?)
}
