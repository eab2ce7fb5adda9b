//! `SnapshotService` conversions: requests into `ops::snapshot` inputs
//! (VIR_DOMAIN_SNAPSHOT_* flag bits, the snapshot's XML) and its answers
//! into messages (libvirt's `<state>` names as `DomainState` through
//! `convert::state`, `<creationTime>` as a `Timestamp`).

use libvirt_grpc::v1::{self, create_snapshot_request};
use virt::sys;

use super::{flags_of, state};
use crate::{
    error::Error,
    ops::{
        external_files::ExternalFiles,
        snapshot::{ListFilter, NewSnapshot, SnapshotInfo, SnapshotNode},
    },
    render::snapshot as render,
    validate::{self, Violations},
    xml_query,
};

/// libvirt's snapshot `<state>` name that marks a disk-only snapshot.
const DISK_SNAPSHOT: &str = "disk-snapshot";

/// libvirt's virDomainState number for a snapshot `<state>` name (the names
/// of virDomainSnapshotState, which shares virDomainState's numbers).
fn state_number(name: &str) -> Option<u32> {
    Some(match name {
        "nostate" | DISK_SNAPSHOT => sys::VIR_DOMAIN_NOSTATE,
        "running" => sys::VIR_DOMAIN_RUNNING,
        "blocked" => sys::VIR_DOMAIN_BLOCKED,
        "paused" => sys::VIR_DOMAIN_PAUSED,
        "shutdown" => sys::VIR_DOMAIN_SHUTDOWN,
        "shutoff" => sys::VIR_DOMAIN_SHUTOFF,
        "crashed" => sys::VIR_DOMAIN_CRASHED,
        "pmsuspended" => sys::VIR_DOMAIN_PMSUSPENDED,
        _ => return None,
    })
}

/// The API's state for a snapshot's `<state>` name.
pub fn snapshot_state(name: &str) -> v1::DomainState {
    state_number(name)
        .and_then(|n| i32::try_from(n).ok())
        .map_or(v1::DomainState::Unspecified, state::domain_state)
}

impl From<SnapshotInfo> for v1::Snapshot {
    fn from(s: SnapshotInfo) -> Self {
        let state = s.state.as_deref();
        v1::Snapshot {
            state: state.map_or(v1::DomainState::Unspecified, snapshot_state) as i32,
            disk_only: state == Some(DISK_SNAPSHOT),
            create_time: s.create_time.map(super::time::unix_seconds),
            host: s.host,
            domain: s.domain,
            name: s.name,
            description: s.description,
            parent: s.parent,
            current: s.current,
            has_metadata: s.has_metadata,
            child_count: s.child_count,
        }
    }
}

impl From<SnapshotNode> for v1::SnapshotNode {
    fn from(n: SnapshotNode) -> Self {
        v1::SnapshotNode {
            snapshot: Some(n.snapshot.into()),
            children: n.children.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<&v1::CreateSnapshotRequest> for NewSnapshot {
    type Error = Error;

    /// Every bad field of the request (the domain aside) in one error.
    fn try_from(r: &v1::CreateSnapshotRequest) -> Result<Self, Error> {
        use create_snapshot_request::Source;
        let mut v = Violations::default();
        let xml = match &r.source {
            Some(Source::Xml(x)) => v.check(validate::required_xml("xml", x).map(|()| x.clone())),
            Some(Source::Spec(s)) => {
                if r.redefine {
                    v.add("redefine", "needs the snapshot's xml");
                }
                v.check(render::render(s))
            }
            None => {
                v.add("source", "set one of xml or spec");
                None
            }
        };
        if r.redefine_current && !r.redefine {
            v.add("redefine_current", "needs redefine");
        }
        // libvirt's own rule, checked here for every driver alike.
        if r.quiesce && !r.disk_only {
            v.add("quiesce", "needs disk_only");
        }
        let flags = flags_of(&[
            (r.disk_only, sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY),
            (r.quiesce, sys::VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE),
            (r.atomic, sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC),
            (r.live, sys::VIR_DOMAIN_SNAPSHOT_CREATE_LIVE),
            (r.halt, sys::VIR_DOMAIN_SNAPSHOT_CREATE_HALT),
            (r.no_metadata, sys::VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA),
            (r.redefine, sys::VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE),
            (r.redefine_current, sys::VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT),
            (r.reuse_external, sys::VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT),
            (r.validate, sys::VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE),
        ]);
        v.done(xml.map(|xml| NewSnapshot {
            files: external_files(&xml, r.redefine, r.reuse_external),
            xml,
            flags,
            no_metadata: r.no_metadata,
        }))
    }
}

/// The files a snapshot's XML names for libvirt to create: external disk
/// overlays and the memory file. A redefine creates nothing (its XML
/// describes files that exist). Whether they are this machine's is the
/// service's to say (`ExternalFiles::local`).
fn external_files(xml: &str, redefine: bool, reuse: bool) -> ExternalFiles {
    if redefine {
        return ExternalFiles::default();
    }
    ExternalFiles {
        disks: xml_query::attrs(xml, &["domainsnapshot", "disks", "disk", "source"], "file"),
        memory: xml_query::attr(xml, &["domainsnapshot", "memory"], "file"),
        reuse,
        local: false,
    }
}

/// The flag of a filter value: `flags[value - 1]`, 0 for UNSPECIFIED; a
/// number past the table is a violation of `field`.
fn filter_flag(v: &mut Violations, field: &str, value: i32, flags: &[u32]) -> u32 {
    if value == 0 {
        return 0;
    }
    match usize::try_from(value)
        .ok()
        .and_then(|v| v.checked_sub(1))
        .and_then(|i| flags.get(i))
    {
        Some(f) => *f,
        None => {
            v.add(field, format!("{value} is not a known filter value"));
            0
        }
    }
}

impl TryFrom<&v1::ListSnapshotsRequest> for ListFilter {
    type Error = Error;

    /// Every bad filter in one error.
    fn try_from(r: &v1::ListSnapshotsRequest) -> Result<Self, Error> {
        use v1::SnapshotParentFilter as Parent;
        let mut v = Violations::default();
        // The tables follow each enum's numbering (1, 2, 3); the unit test
        // `filter_tables_follow_the_enums` checks it.
        let parent = filter_flag(
            &mut v,
            "parent_filter",
            r.parent_filter,
            &[sys::VIR_DOMAIN_SNAPSHOT_LIST_ROOTS, 0],
        );
        let flags = parent
            | filter_flag(
                &mut v,
                "leaf_filter",
                r.leaf_filter,
                &[
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_LEAVES,
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES,
                ],
            )
            | filter_flag(
                &mut v,
                "location_filter",
                r.location_filter,
                &[
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL,
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL,
                ],
            )
            | filter_flag(
                &mut v,
                "metadata_filter",
                r.metadata_filter,
                &[
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_METADATA,
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA,
                ],
            )
            | filter_flag(
                &mut v,
                "state_filter",
                r.state_filter,
                &[
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE,
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE,
                    sys::VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY,
                ],
            )
            | if r.topological {
                sys::VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL
            } else {
                0
            };
        v.finish()?;
        Ok(ListFilter {
            flags,
            with_parent: r.parent_filter == Parent::Children as i32,
            topological: r.topological,
        })
    }
}

/// libvirt's VIR_DOMAIN_SNAPSHOT_LIST_* flags of `ListSnapshotChildren`.
pub fn children_flags(descendants: bool) -> u32 {
    if descendants {
        sys::VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS
    } else {
        0
    }
}

/// libvirt's VIR_DOMAIN_SNAPSHOT_REVERT_* flags of a revert.
pub fn revert_flags(r: &v1::RevertSnapshotRequest) -> Result<u32, Error> {
    use v1::SnapshotRevertState as S;
    let state = match S::try_from(r.state) {
        Ok(S::Unspecified) => 0,
        Ok(S::Running) => sys::VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING,
        Ok(S::Paused) => sys::VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED,
        Err(_) => {
            return Err(Error::invalid(
                "state",
                format!("{} is not a SnapshotRevertState", r.state),
            ))
        }
    };
    Ok(state | flags_of(&[(r.force, sys::VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)]))
}

/// libvirt's VIR_DOMAIN_SNAPSHOT_DELETE_* flags of a delete.
pub fn delete_flags(r: &v1::DeleteSnapshotRequest) -> Result<u32, Error> {
    use v1::SnapshotDeleteExtent as E;
    let extent = match E::try_from(r.extent) {
        Ok(E::Unspecified | E::Snapshot) => 0,
        Ok(E::WithDescendants) => sys::VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN,
        Ok(E::DescendantsOnly) => sys::VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY,
        Err(_) => {
            return Err(Error::invalid(
                "extent",
                format!("{} is not a SnapshotDeleteExtent", r.extent),
            ))
        }
    };
    Ok(extent
        | flags_of(&[(
            r.metadata_only,
            sys::VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY,
        )]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn states_map_through_the_one_table() {
        assert_eq!(snapshot_state("shutoff"), v1::DomainState::Shutoff);
        assert_eq!(snapshot_state("running"), v1::DomainState::Running);
        assert_eq!(snapshot_state(DISK_SNAPSHOT), v1::DomainState::Nostate);
        assert_eq!(snapshot_state("newer"), v1::DomainState::Unspecified);
        let s: v1::Snapshot = SnapshotInfo {
            state: Some(DISK_SNAPSHOT.into()),
            create_time: Some(1_700_000_000),
            ..Default::default()
        }
        .into();
        assert!(s.disk_only);
        assert_eq!(s.create_time.unwrap().seconds, 1_700_000_000);
    }

    #[test]
    fn filter_tables_follow_the_enums() {
        assert_eq!(v1::SnapshotParentFilter::Roots as i32, 1);
        assert_eq!(v1::SnapshotParentFilter::Children as i32, 2);
        assert_eq!(v1::SnapshotLeafFilter::Leaves as i32, 1);
        assert_eq!(v1::SnapshotLeafFilter::NonLeaves as i32, 2);
        assert_eq!(v1::SnapshotLocationFilter::Internal as i32, 1);
        assert_eq!(v1::SnapshotLocationFilter::External as i32, 2);
        assert_eq!(v1::SnapshotStateFilter::Active as i32, 1);
        assert_eq!(v1::SnapshotStateFilter::Inactive as i32, 2);
        assert_eq!(v1::SnapshotStateFilter::DiskOnly as i32, 3);
        assert_eq!(v1::SnapshotMetadataFilter::Metadata as i32, 1);
        assert_eq!(v1::SnapshotMetadataFilter::NoMetadata as i32, 2);
    }

    #[test]
    fn list_filters() {
        let f = ListFilter::try_from(&v1::ListSnapshotsRequest {
            parent_filter: v1::SnapshotParentFilter::Children as i32,
            leaf_filter: v1::SnapshotLeafFilter::Leaves as i32,
            state_filter: v1::SnapshotStateFilter::DiskOnly as i32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.flags,
            sys::VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | sys::VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY
        );
        assert!(f.with_parent && !f.topological);
        let none = ListFilter::try_from(&v1::ListSnapshotsRequest::default()).unwrap();
        assert_eq!(none, ListFilter::default());
        let Err(Error::InvalidArgument(v)) = ListFilter::try_from(&v1::ListSnapshotsRequest {
            parent_filter: 3,
            leaf_filter: i32::MIN,
            location_filter: 3,
            state_filter: 4,
            ..Default::default()
        }) else {
            panic!("not INVALID_ARGUMENT");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "parent_filter",
                "leaf_filter",
                "location_filter",
                "state_filter"
            ]
        );
    }

    #[test]
    fn creation_flags_and_the_files_to_guard() {
        use v1::{SnapshotDiskMode, SnapshotDiskSpec};
        let spec = v1::SnapshotSpec {
            name: "s".into(),
            disks: vec![SnapshotDiskSpec {
                name: "vda".into(),
                mode: SnapshotDiskMode::External as i32,
                file: "/r/vda.overlay".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let new = NewSnapshot::try_from(&v1::CreateSnapshotRequest {
            source: Some(create_snapshot_request::Source::Spec(spec)),
            disk_only: true,
            atomic: true,
            reuse_external: true,
            validate: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            new.flags,
            sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
                | sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
                | sys::VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
                | sys::VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE
        );
        assert_eq!(new.files.disks, ["/r/vda.overlay"]);
        assert!(new.files.reuse && !new.files.local);
        let raw = |redefine| {
            NewSnapshot::try_from(&v1::CreateSnapshotRequest {
                source: Some(create_snapshot_request::Source::Xml(
                    "<domainsnapshot><memory snapshot='external' file='/r/mem'/><disks>\
                     <disk name='vda'><source file='/r/a'/></disk>\
                     <disk name='vdb'><source file='/r/b'/></disk></disks></domainsnapshot>"
                        .into(),
                )),
                redefine,
                ..Default::default()
            })
            .unwrap()
            .files
        };
        let files = raw(false);
        assert_eq!(files.disks, ["/r/a", "/r/b"]);
        assert_eq!(files.memory.as_deref(), Some("/r/mem"));
        assert_eq!(raw(true), ExternalFiles::default());
        let Err(Error::InvalidArgument(bad)) = NewSnapshot::try_from(&v1::CreateSnapshotRequest {
            source: Some(create_snapshot_request::Source::Xml(
                "<domainsnapshot/>".into(),
            )),
            quiesce: true,
            ..Default::default()
        }) else {
            panic!("quiesce without disk_only passed");
        };
        assert_eq!(bad[0].field, "quiesce");
    }

    #[test]
    fn delete_and_revert_defaults_set_no_flag() {
        assert_eq!(
            delete_flags(&v1::DeleteSnapshotRequest::default()).unwrap(),
            0
        );
        assert_eq!(
            revert_flags(&v1::RevertSnapshotRequest::default()).unwrap(),
            0
        );
        assert!(delete_flags(&v1::DeleteSnapshotRequest {
            extent: 9,
            ..Default::default()
        })
        .is_err());
    }
}
