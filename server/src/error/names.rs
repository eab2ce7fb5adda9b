//! libvirt's names for its error codes and error domains, as the `reason`
//! and `libvirt_domain` of the `google.rpc.ErrorInfo` detail: the C
//! constant without its `VIR_ERR_` / `VIR_FROM_` prefix (`NO_DOMAIN`,
//! `QEMU`), which is already UPPER_SNAKE_CASE as AIP-193 asks.
//!
//! The lists are libvirt 9.0's (the `virt-sys` bindings); a code or domain
//! a newer libvirt adds has no name here and is reported as
//! [`UNKNOWN_CODE`] / [`UNKNOWN_DOMAIN`], its number still in the metadata.

use virt::sys;

/// The reason for a libvirt error code this table does not know.
pub const UNKNOWN_CODE: &str = "UNKNOWN_LIBVIRT_ERROR";

/// The `libvirt_domain` of a libvirt error domain this table does not know.
pub const UNKNOWN_DOMAIN: &str = "UNKNOWN";

/// `match` arms from constant names: `VIR_ERR_NO_DOMAIN => "NO_DOMAIN"`.
macro_rules! names {
    ($value:expr, $prefix:literal, $unknown:expr, [$($c:ident),* $(,)?]) => {
        match $value {
            $(sys::$c => {
                const NAME: &str = stringify!($c);
                // The prefix is ASCII, so this slice is on a boundary.
                &NAME[$prefix.len()..]
            })*
            _ => $unknown,
        }
    };
}

/// libvirt's name of error code `code`, e.g. `NO_DOMAIN` for 42.
pub fn code_name(code: u32) -> &'static str {
    names!(
        code,
        "VIR_ERR_",
        UNKNOWN_CODE,
        [
            VIR_ERR_OK,
            VIR_ERR_INTERNAL_ERROR,
            VIR_ERR_NO_MEMORY,
            VIR_ERR_NO_SUPPORT,
            VIR_ERR_UNKNOWN_HOST,
            VIR_ERR_NO_CONNECT,
            VIR_ERR_INVALID_CONN,
            VIR_ERR_INVALID_DOMAIN,
            VIR_ERR_INVALID_ARG,
            VIR_ERR_OPERATION_FAILED,
            VIR_ERR_GET_FAILED,
            VIR_ERR_POST_FAILED,
            VIR_ERR_HTTP_ERROR,
            VIR_ERR_SEXPR_SERIAL,
            VIR_ERR_NO_XEN,
            VIR_ERR_XEN_CALL,
            VIR_ERR_OS_TYPE,
            VIR_ERR_NO_KERNEL,
            VIR_ERR_NO_ROOT,
            VIR_ERR_NO_SOURCE,
            VIR_ERR_NO_TARGET,
            VIR_ERR_NO_NAME,
            VIR_ERR_NO_OS,
            VIR_ERR_NO_DEVICE,
            VIR_ERR_NO_XENSTORE,
            VIR_ERR_DRIVER_FULL,
            VIR_ERR_CALL_FAILED,
            VIR_ERR_XML_ERROR,
            VIR_ERR_DOM_EXIST,
            VIR_ERR_OPERATION_DENIED,
            VIR_ERR_OPEN_FAILED,
            VIR_ERR_READ_FAILED,
            VIR_ERR_PARSE_FAILED,
            VIR_ERR_CONF_SYNTAX,
            VIR_ERR_WRITE_FAILED,
            VIR_ERR_XML_DETAIL,
            VIR_ERR_INVALID_NETWORK,
            VIR_ERR_NETWORK_EXIST,
            VIR_ERR_SYSTEM_ERROR,
            VIR_ERR_RPC,
            VIR_ERR_GNUTLS_ERROR,
            VIR_ERR_NO_DOMAIN,
            VIR_ERR_NO_NETWORK,
            VIR_ERR_INVALID_MAC,
            VIR_ERR_AUTH_FAILED,
            VIR_ERR_INVALID_STORAGE_POOL,
            VIR_ERR_INVALID_STORAGE_VOL,
            VIR_ERR_NO_STORAGE_POOL,
            VIR_ERR_NO_STORAGE_VOL,
            VIR_ERR_INVALID_NODE_DEVICE,
            VIR_ERR_NO_NODE_DEVICE,
            VIR_ERR_NO_SECURITY_MODEL,
            VIR_ERR_OPERATION_INVALID,
            VIR_ERR_NO_INTERFACE,
            VIR_ERR_INVALID_INTERFACE,
            VIR_ERR_MULTIPLE_INTERFACES,
            VIR_ERR_INVALID_NWFILTER,
            VIR_ERR_NO_NWFILTER,
            VIR_ERR_BUILD_FIREWALL,
            VIR_ERR_INVALID_SECRET,
            VIR_ERR_NO_SECRET,
            VIR_ERR_CONFIG_UNSUPPORTED,
            VIR_ERR_OPERATION_TIMEOUT,
            VIR_ERR_MIGRATE_PERSIST_FAILED,
            VIR_ERR_HOOK_SCRIPT_FAILED,
            VIR_ERR_INVALID_DOMAIN_SNAPSHOT,
            VIR_ERR_NO_DOMAIN_SNAPSHOT,
            VIR_ERR_INVALID_STREAM,
            VIR_ERR_ARGUMENT_UNSUPPORTED,
            VIR_ERR_STORAGE_PROBE_FAILED,
            VIR_ERR_STORAGE_POOL_BUILT,
            VIR_ERR_SNAPSHOT_REVERT_RISKY,
            VIR_ERR_OPERATION_ABORTED,
            VIR_ERR_AUTH_CANCELLED,
            VIR_ERR_NO_DOMAIN_METADATA,
            VIR_ERR_MIGRATE_UNSAFE,
            VIR_ERR_OVERFLOW,
            VIR_ERR_BLOCK_COPY_ACTIVE,
            VIR_ERR_OPERATION_UNSUPPORTED,
            VIR_ERR_SSH,
            VIR_ERR_AGENT_UNRESPONSIVE,
            VIR_ERR_RESOURCE_BUSY,
            VIR_ERR_ACCESS_DENIED,
            VIR_ERR_DBUS_SERVICE,
            VIR_ERR_STORAGE_VOL_EXIST,
            VIR_ERR_CPU_INCOMPATIBLE,
            VIR_ERR_XML_INVALID_SCHEMA,
            VIR_ERR_MIGRATE_FINISH_OK,
            VIR_ERR_AUTH_UNAVAILABLE,
            VIR_ERR_NO_SERVER,
            VIR_ERR_NO_CLIENT,
            VIR_ERR_AGENT_UNSYNCED,
            VIR_ERR_LIBSSH,
            VIR_ERR_DEVICE_MISSING,
            VIR_ERR_INVALID_NWFILTER_BINDING,
            VIR_ERR_NO_NWFILTER_BINDING,
            VIR_ERR_INVALID_DOMAIN_CHECKPOINT,
            VIR_ERR_NO_DOMAIN_CHECKPOINT,
            VIR_ERR_NO_DOMAIN_BACKUP,
            VIR_ERR_INVALID_NETWORK_PORT,
            VIR_ERR_NETWORK_PORT_EXIST,
            VIR_ERR_NO_NETWORK_PORT,
            VIR_ERR_NO_HOSTNAME,
            VIR_ERR_CHECKPOINT_INCONSISTENT,
            VIR_ERR_MULTIPLE_DOMAINS,
            VIR_ERR_NO_NETWORK_METADATA,
            VIR_ERR_AGENT_COMMAND_TIMEOUT,
            VIR_ERR_AGENT_COMMAND_FAILED,
            VIR_ERR_INVALID_ENCR_KEY_SECRET,
        ]
    )
}

/// libvirt's name of error domain `domain`, e.g. `QEMU` for 10.
pub fn domain_name(domain: u32) -> &'static str {
    names!(
        domain,
        "VIR_FROM_",
        UNKNOWN_DOMAIN,
        [
            VIR_FROM_NONE,
            VIR_FROM_XEN,
            VIR_FROM_XEND,
            VIR_FROM_XENSTORE,
            VIR_FROM_SEXPR,
            VIR_FROM_XML,
            VIR_FROM_DOM,
            VIR_FROM_RPC,
            VIR_FROM_PROXY,
            VIR_FROM_CONF,
            VIR_FROM_QEMU,
            VIR_FROM_NET,
            VIR_FROM_TEST,
            VIR_FROM_REMOTE,
            VIR_FROM_OPENVZ,
            VIR_FROM_XENXM,
            VIR_FROM_STATS_LINUX,
            VIR_FROM_LXC,
            VIR_FROM_STORAGE,
            VIR_FROM_NETWORK,
            VIR_FROM_DOMAIN,
            VIR_FROM_UML,
            VIR_FROM_NODEDEV,
            VIR_FROM_XEN_INOTIFY,
            VIR_FROM_SECURITY,
            VIR_FROM_VBOX,
            VIR_FROM_INTERFACE,
            VIR_FROM_ONE,
            VIR_FROM_ESX,
            VIR_FROM_PHYP,
            VIR_FROM_SECRET,
            VIR_FROM_CPU,
            VIR_FROM_XENAPI,
            VIR_FROM_NWFILTER,
            VIR_FROM_HOOK,
            VIR_FROM_DOMAIN_SNAPSHOT,
            VIR_FROM_AUDIT,
            VIR_FROM_SYSINFO,
            VIR_FROM_STREAMS,
            VIR_FROM_VMWARE,
            VIR_FROM_EVENT,
            VIR_FROM_LIBXL,
            VIR_FROM_LOCKING,
            VIR_FROM_HYPERV,
            VIR_FROM_CAPABILITIES,
            VIR_FROM_URI,
            VIR_FROM_AUTH,
            VIR_FROM_DBUS,
            VIR_FROM_PARALLELS,
            VIR_FROM_DEVICE,
            VIR_FROM_SSH,
            VIR_FROM_LOCKSPACE,
            VIR_FROM_INITCTL,
            VIR_FROM_IDENTITY,
            VIR_FROM_CGROUP,
            VIR_FROM_ACCESS,
            VIR_FROM_SYSTEMD,
            VIR_FROM_BHYVE,
            VIR_FROM_CRYPTO,
            VIR_FROM_FIREWALL,
            VIR_FROM_POLKIT,
            VIR_FROM_THREAD,
            VIR_FROM_ADMIN,
            VIR_FROM_LOGGING,
            VIR_FROM_XENXL,
            VIR_FROM_PERF,
            VIR_FROM_LIBSSH,
            VIR_FROM_RESCTRL,
            VIR_FROM_FIREWALLD,
            VIR_FROM_DOMAIN_CHECKPOINT,
            VIR_FROM_TPM,
            VIR_FROM_BPF,
            VIR_FROM_CH,
        ]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_name() {
        assert_eq!(code_name(sys::VIR_ERR_OK), "OK");
        assert_eq!(code_name(sys::VIR_ERR_NO_DOMAIN), "NO_DOMAIN");
        assert_eq!(code_name(55), "OPERATION_INVALID");
        assert_eq!(code_name(sys::VIR_ERR_XML_ERROR), "XML_ERROR");
        assert_eq!(code_name(sys::VIR_ERR_NO_NWFILTER), "NO_NWFILTER");
        assert_eq!(
            code_name(sys::VIR_ERR_INVALID_ENCR_KEY_SECRET),
            "INVALID_ENCR_KEY_SECRET"
        );
        // 41 is VIR_WAR_NO_NETWORK, a warning, never an error.
        assert_eq!(code_name(41), UNKNOWN_CODE);
        assert_eq!(code_name(100_000), UNKNOWN_CODE);
    }

    #[test]
    fn domains_by_name() {
        assert_eq!(domain_name(sys::VIR_FROM_NONE), "NONE");
        assert_eq!(domain_name(10), "QEMU");
        assert_eq!(domain_name(sys::VIR_FROM_STORAGE), "STORAGE");
        assert_eq!(
            domain_name(sys::VIR_FROM_DOMAIN_SNAPSHOT),
            "DOMAIN_SNAPSHOT"
        );
        assert_eq!(domain_name(sys::VIR_FROM_CH), "CH");
        assert_eq!(domain_name(100_000), UNKNOWN_DOMAIN);
    }
}
