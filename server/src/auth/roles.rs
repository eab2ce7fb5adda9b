//! The one table that gives every RPC the role it needs.
//!
//! Rows are full gRPC paths. An RPC without a row is refused for every
//! caller (`PERMISSION_DENIED`), and the unit test below fails for it, so a
//! new RPC cannot be left open by mistake. Health and reflection have rows
//! too (`reader`); `[auth] open_health` / `open_reflection` let them
//! through without an identity.

use super::Role::{self, Admin, Operator, Reader};

/// Every RPC of the v1 API, health and reflection, and the role it needs.
pub const TABLE: &[(&str, Role)] = &[
    // DomainService
    ("/libvirt_grpc.v1.DomainService/ListDomains", Reader),
    ("/libvirt_grpc.v1.DomainService/GetDomain", Reader),
    // `secure = true` (passwords in the XML) needs admin; the handler checks.
    ("/libvirt_grpc.v1.DomainService/GetDomainXml", Reader),
    ("/libvirt_grpc.v1.DomainService/DefineDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/UndefineDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/CreateDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/StartDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/ShutdownDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/RebootDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/ResetDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/StopDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/SuspendDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/ResumeDomain", Operator),
    // A host path of the caller's choosing.
    ("/libvirt_grpc.v1.DomainService/SaveDomain", Admin),
    ("/libvirt_grpc.v1.DomainService/RestoreDomain", Admin),
    ("/libvirt_grpc.v1.DomainService/ManagedSaveDomain", Operator),
    (
        "/libvirt_grpc.v1.DomainService/RemoveDomainManagedSave",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainAutostart",
        Operator,
    ),
    ("/libvirt_grpc.v1.DomainService/SetDomainVcpus", Operator),
    ("/libvirt_grpc.v1.DomainService/SetDomainMemory", Operator),
    (
        "/libvirt_grpc.v1.DomainService/AttachDomainDevice",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/DetachDomainDevice",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/UpdateDomainDevice",
        Operator,
    ),
    ("/libvirt_grpc.v1.DomainService/GetDomainMetadata", Reader),
    ("/libvirt_grpc.v1.DomainService/SetDomainMetadata", Operator),
    ("/libvirt_grpc.v1.DomainService/GetDomainStats", Reader),
    ("/libvirt_grpc.v1.DomainService/ScreenshotDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/SendDomainKey", Operator),
    // Typing into the guest, as SendDomainKey does.
    ("/libvirt_grpc.v1.DomainService/OpenDomainConsole", Operator),
    ("/libvirt_grpc.v1.DomainService/PinDomainVcpu", Operator),
    ("/libvirt_grpc.v1.DomainService/PinDomainEmulator", Operator),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainEmulatorPinning",
        Reader,
    ),
    ("/libvirt_grpc.v1.DomainService/GetDomainIOThreads", Reader),
    ("/libvirt_grpc.v1.DomainService/AddDomainIOThread", Operator),
    (
        "/libvirt_grpc.v1.DomainService/DeleteDomainIOThread",
        Operator,
    ),
    ("/libvirt_grpc.v1.DomainService/PinDomainIOThread", Operator),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainMemoryParameters",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainMemoryParameters",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainNumaParameters",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainNumaParameters",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainBlkioParameters",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainBlkioParameters",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainInterfaceParameters",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainInterfaceParameters",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainBlockIoTune",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainBlockIoTune",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainVcpuPinning",
        Reader,
    ),
    ("/libvirt_grpc.v1.DomainService/GetDomainJob", Reader),
    ("/libvirt_grpc.v1.DomainService/AbortDomainJob", Operator),
    ("/libvirt_grpc.v1.DomainService/MigrateDomain", Operator),
    (
        "/libvirt_grpc.v1.DomainService/StartDomainMigrationPostCopy",
        Operator,
    ),
    // Domain internals (issue 13). The monitor controls QEMU entirely.
    ("/libvirt_grpc.v1.DomainService/QemuMonitorCommand", Admin),
    ("/libvirt_grpc.v1.DomainService/GetDomainMaxVcpus", Reader),
    ("/libvirt_grpc.v1.DomainService/GetDomainBlockStats", Reader),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainInterfaceStats",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainMemoryStats",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainMemoryStatsPeriod",
        Operator,
    ),
    ("/libvirt_grpc.v1.DomainService/InjectDomainNmi", Operator),
    ("/libvirt_grpc.v1.DomainService/RenameDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/WakeupDomain", Operator),
    ("/libvirt_grpc.v1.DomainService/GetDomainDiskErrors", Reader),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainSchedulerType",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/GetDomainSchedulerParameters",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.DomainService/SetDomainSchedulerParameters",
        Operator,
    ),
    // Peeks read the guest's disks and memory.
    ("/libvirt_grpc.v1.DomainService/PeekDomainBlock", Admin),
    ("/libvirt_grpc.v1.DomainService/PeekDomainMemory", Admin),
    // A dump holds the guest's whole memory.
    ("/libvirt_grpc.v1.DomainService/CoreDumpDomain", Admin),
    (
        "/libvirt_grpc.v1.DomainService/CoreDumpDomainToVolume",
        Admin,
    ),
    // EventService
    ("/libvirt_grpc.v1.EventService/WatchEvents", Reader),
    ("/libvirt_grpc.v1.EventService/GetEventPosition", Reader),
    // GuestAgentService: the agent is root in the guest. What only reads
    // what the guest reports is `reader`; every command that changes the
    // guest, reads its files or touches its credentials is `admin`.
    ("/libvirt_grpc.v1.GuestAgentService/PingGuestAgent", Reader),
    (
        "/libvirt_grpc.v1.GuestAgentService/RunGuestAgentCommand",
        Admin,
    ),
    ("/libvirt_grpc.v1.GuestAgentService/ExecGuestCommand", Admin),
    ("/libvirt_grpc.v1.GuestAgentService/ReadGuestFile", Admin),
    ("/libvirt_grpc.v1.GuestAgentService/WriteGuestFile", Admin),
    (
        "/libvirt_grpc.v1.GuestAgentService/FreezeGuestFilesystems",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/ThawGuestFilesystems",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/GetGuestFreezeStatus",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/TrimGuestFilesystems",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/GetGuestFilesystems",
        Reader,
    ),
    ("/libvirt_grpc.v1.GuestAgentService/GetGuestInfo", Reader),
    (
        "/libvirt_grpc.v1.GuestAgentService/GetGuestHostname",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/GetGuestInterfaceAddresses",
        Reader,
    ),
    ("/libvirt_grpc.v1.GuestAgentService/GetGuestTime", Reader),
    ("/libvirt_grpc.v1.GuestAgentService/SetGuestTime", Admin),
    (
        "/libvirt_grpc.v1.GuestAgentService/SetGuestUserPassword",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/GetGuestAuthorizedKeys",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/AddGuestAuthorizedKeys",
        Admin,
    ),
    (
        "/libvirt_grpc.v1.GuestAgentService/RemoveGuestAuthorizedKeys",
        Admin,
    ),
    ("/libvirt_grpc.v1.GuestAgentService/GetGuestVcpus", Reader),
    ("/libvirt_grpc.v1.GuestAgentService/SetGuestVcpus", Admin),
    // HostService
    ("/libvirt_grpc.v1.HostService/ListHosts", Reader),
    ("/libvirt_grpc.v1.HostService/GetHostInfo", Reader),
    ("/libvirt_grpc.v1.HostService/GetHostCapabilities", Reader),
    ("/libvirt_grpc.v1.HostService/GetDomainCapabilities", Reader),
    // NetworkService
    ("/libvirt_grpc.v1.NetworkService/ListNetworks", Reader),
    ("/libvirt_grpc.v1.NetworkService/GetNetwork", Reader),
    ("/libvirt_grpc.v1.NetworkService/GetNetworkXml", Reader),
    ("/libvirt_grpc.v1.NetworkService/DefineNetwork", Operator),
    ("/libvirt_grpc.v1.NetworkService/CreateNetwork", Operator),
    ("/libvirt_grpc.v1.NetworkService/StartNetwork", Operator),
    ("/libvirt_grpc.v1.NetworkService/StopNetwork", Operator),
    ("/libvirt_grpc.v1.NetworkService/UndefineNetwork", Operator),
    (
        "/libvirt_grpc.v1.NetworkService/SetNetworkAutostart",
        Operator,
    ),
    ("/libvirt_grpc.v1.NetworkService/UpdateNetwork", Operator),
    (
        "/libvirt_grpc.v1.NetworkService/GetNetworkDhcpLeases",
        Reader,
    ),
    // SnapshotService
    ("/libvirt_grpc.v1.SnapshotService/CreateSnapshot", Operator),
    ("/libvirt_grpc.v1.SnapshotService/ListSnapshots", Reader),
    ("/libvirt_grpc.v1.SnapshotService/GetSnapshot", Reader),
    (
        "/libvirt_grpc.v1.SnapshotService/GetCurrentSnapshot",
        Reader,
    ),
    ("/libvirt_grpc.v1.SnapshotService/GetSnapshotParent", Reader),
    (
        "/libvirt_grpc.v1.SnapshotService/ListSnapshotChildren",
        Reader,
    ),
    ("/libvirt_grpc.v1.SnapshotService/GetSnapshotTree", Reader),
    ("/libvirt_grpc.v1.SnapshotService/RevertSnapshot", Operator),
    ("/libvirt_grpc.v1.SnapshotService/DeleteSnapshot", Operator),
    (
        "/libvirt_grpc.v1.SnapshotService/HasCurrentSnapshot",
        Reader,
    ),
    // StorageService
    ("/libvirt_grpc.v1.StorageService/ListStoragePools", Reader),
    ("/libvirt_grpc.v1.StorageService/GetStoragePool", Reader),
    ("/libvirt_grpc.v1.StorageService/GetStoragePoolXml", Reader),
    (
        "/libvirt_grpc.v1.StorageService/DefineStoragePool",
        Operator,
    ),
    ("/libvirt_grpc.v1.StorageService/BuildStoragePool", Operator),
    ("/libvirt_grpc.v1.StorageService/StartStoragePool", Operator),
    ("/libvirt_grpc.v1.StorageService/StopStoragePool", Operator),
    (
        "/libvirt_grpc.v1.StorageService/DeleteStoragePool",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/UndefineStoragePool",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/RefreshStoragePool",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/SetStoragePoolAutostart",
        Operator,
    ),
    // Makes the host contact a source host (NFS, iSCSI) of the caller's choosing.
    (
        "/libvirt_grpc.v1.StorageService/FindStoragePoolSources",
        Operator,
    ),
    ("/libvirt_grpc.v1.StorageService/ListStorageVolumes", Reader),
    ("/libvirt_grpc.v1.StorageService/GetStorageVolume", Reader),
    (
        "/libvirt_grpc.v1.StorageService/GetStorageVolumeXml",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.StorageService/CreateStorageVolume",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/CloneStorageVolume",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/DeleteStorageVolume",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/WipeStorageVolume",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/ResizeStorageVolume",
        Operator,
    ),
    // Volumes live in pools, whose targets are confined to the roots for
    // callers below admin.
    (
        "/libvirt_grpc.v1.StorageService/UploadStorageVolume",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.StorageService/DownloadStorageVolume",
        Operator,
    ),
    // StorageService, issue 13: lookups read; a transient pool is a change
    // (its target path is confined like a defined pool's).
    (
        "/libvirt_grpc.v1.StorageService/LookupStorageVolumeByKey",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.StorageService/LookupStorageVolumeByPath",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.StorageService/LookupStoragePoolByVolume",
        Reader,
    ),
    (
        "/libvirt_grpc.v1.StorageService/CreateStoragePool",
        Operator,
    ),
    // BlockJobService (issue 13): a copy writes a new host file, confined
    // to the roots for every caller (like a snapshot's overlay).
    (
        "/libvirt_grpc.v1.BlockJobService/BlockCopyDomainDisk",
        Operator,
    ),
    ("/libvirt_grpc.v1.BlockJobService/GetDomainBlockJob", Reader),
    (
        "/libvirt_grpc.v1.BlockJobService/SetDomainBlockJobSpeed",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.BlockJobService/AbortDomainBlockJob",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.BlockJobService/BlockCommitDomainDisk",
        Operator,
    ),
    (
        "/libvirt_grpc.v1.BlockJobService/BlockPullDomainDisk",
        Operator,
    ),
    ("/grpc.health.v1.Health/Check", Reader),
    ("/grpc.health.v1.Health/Watch", Reader),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Reader,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Reader,
    ),
];

/// The role RPC `path` (`/package.Service/Method`) needs; `None` for a path
/// with no row (refused for everyone).
pub fn required(path: &str) -> Option<Role> {
    TABLE.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

/// Whether `path` changes something (needs more than `reader`): such calls
/// get an audit line.
pub fn changes(path: &str) -> bool {
    required(path).is_none_or(|r| r > Role::Reader)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use prost::Message;

    use super::*;

    /// Every RPC of every service in the descriptor sets the server serves.
    fn served_paths() -> Vec<String> {
        let mut paths = Vec::new();
        for set in [
            libvirt_grpc::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in set.file {
                for svc in &file.service {
                    for m in &svc.method {
                        paths.push(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
                    }
                }
            }
        }
        paths
    }

    #[test]
    fn every_rpc_has_a_row() {
        let paths = served_paths();
        assert!(paths.len() > 100, "{}", paths.len());
        let missing: Vec<_> = paths.iter().filter(|p| required(p).is_none()).collect();
        assert!(missing.is_empty(), "RPCs without a role: {missing:?}");
    }

    #[test]
    fn every_row_is_an_rpc_once() {
        let mut paths = served_paths();
        paths.push("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo".into());
        paths.push("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo".into());
        let mut seen = std::collections::HashSet::new();
        for (p, _) in TABLE {
            assert!(paths.iter().any(|x| x == p), "a row for no RPC: {p}");
            assert!(seen.insert(*p), "two rows for {p}");
        }
    }

    #[test]
    fn roles_follow_the_rules() {
        assert_eq!(
            required("/libvirt_grpc.v1.DomainService/GetDomain"),
            Some(Reader)
        );
        assert_eq!(
            required("/libvirt_grpc.v1.DomainService/StopDomain"),
            Some(Operator)
        );
        assert_eq!(
            required("/libvirt_grpc.v1.DomainService/SaveDomain"),
            Some(Admin)
        );
        assert_eq!(
            required("/libvirt_grpc.v1.GuestAgentService/ExecGuestCommand"),
            Some(Admin)
        );
        // Domain internals: the monitor, peeks and dumps are admin.
        for rpc in [
            "QemuMonitorCommand",
            "PeekDomainBlock",
            "PeekDomainMemory",
            "CoreDumpDomain",
            "CoreDumpDomainToVolume",
        ] {
            let path = format!("/libvirt_grpc.v1.DomainService/{rpc}");
            assert_eq!(required(&path), Some(Admin), "{rpc}");
        }
        assert_eq!(
            required("/libvirt_grpc.v1.DomainService/GetDomainBlockStats"),
            Some(Reader)
        );
        assert_eq!(
            required("/libvirt_grpc.v1.DomainService/SetDomainSchedulerParameters"),
            Some(Operator)
        );
        assert_eq!(required("/libvirt_grpc.v1.DomainService/Nope"), None);
        assert!(changes("/libvirt_grpc.v1.DomainService/Nope"));
        assert!(!changes("/libvirt_grpc.v1.EventService/WatchEvents"));
        assert!(Admin > Operator && Operator > Reader);
    }
}
