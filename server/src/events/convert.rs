//! Every conversion of the event stream, once: what libvirt reports
//! (callback values, observed states, reconciled changes) into
//! `v1::Event`s with proto enums, and a `WatchEventsRequest` into the
//! validated [`Watch`] the subscriber runs. Each libvirt number goes to its
//! proto enum exactly once, here (domain states and reasons through
//! [`crate::convert::state`], the one table for them).

use std::time::{Duration, SystemTime};

use libvirt_grpc::v1::{self, EventKind, ObjectType};
use virt::sys;

use super::{
    hub::Position,
    reconcile::{Change, Reconciled},
    source::{Lost, Observed},
    subscriber::Filter,
};
use crate::{
    convert::state::{domain_state, domain_state_reason},
    error::Error,
    libvirt_sys::{Object, RawEvent, RawKind, TypedValue},
    pool::Hosts,
    validate::{self, Violations},
};

use crate::convert::time::{duration, timestamp};

/// A host connectivity event (disconnected, reconnected), stamped now.
fn host_event(host: &str, kind: EventKind, details: v1::HostDetails) -> v1::Event {
    v1::Event {
        host: host.to_owned(),
        object_type: ObjectType::Host as i32,
        event_time: Some(timestamp(SystemTime::now())),
        kind: kind as i32,
        details: Some(v1::event::Details::HostDetails(details)),
        ..Default::default()
    }
}

/// `HOST_DISCONNECTED` for a connection lost for `why`.
pub fn disconnected(host: &str, why: Lost) -> v1::Event {
    host_event(
        host,
        EventKind::HostDisconnected,
        v1::HostDetails {
            disconnect_reason: disconnect_reason(why) as i32,
            reconciled_events: 0,
        },
    )
}

/// `HOST_RECONNECTED`, after `reconciled` reconciled events.
pub fn reconnected(host: &str, reconciled: u32) -> v1::Event {
    host_event(
        host,
        EventKind::HostReconnected,
        v1::HostDetails {
            disconnect_reason: v1::HostDisconnectReason::Unspecified as i32,
            reconciled_events: reconciled,
        },
    )
}

/// Why a connection was lost, as the API says it.
pub fn disconnect_reason(why: Lost) -> v1::HostDisconnectReason {
    use v1::HostDisconnectReason as R;
    match why {
        Lost::Closed(reason) => match u32::try_from(reason).unwrap_or(u32::MAX) {
            sys::VIR_CONNECT_CLOSE_REASON_ERROR => R::Error,
            sys::VIR_CONNECT_CLOSE_REASON_EOF => R::Eof,
            sys::VIR_CONNECT_CLOSE_REASON_KEEPALIVE => R::Keepalive,
            sys::VIR_CONNECT_CLOSE_REASON_CLIENT => R::Client,
            _ => R::Unknown,
        },
        Lost::NotAlive => R::NotAlive,
        Lost::ChannelClosed => R::Unknown,
    }
}

/// The state hint of an event: what libvirt said right after it.
impl From<Observed> for v1::ObjectState {
    fn from(o: Observed) -> Self {
        match o {
            Observed::Gone => v1::ObjectState::default(),
            Observed::Domain {
                state,
                reason,
                active,
            } => v1::ObjectState {
                exists: true,
                domain_state: domain_state(state) as i32,
                domain_state_reason: domain_state_reason(state, reason) as i32,
                domain_state_reason_code: reason,
                active,
            },
            Observed::Other { active } => v1::ObjectState {
                exists: true,
                active,
                ..Default::default()
            },
        }
    }
}

/// The lifecycle event a reconciled state change stands for.
fn reconciled_lifecycle(change: Change) -> v1::DomainLifecycleEvent {
    use v1::DomainLifecycleEvent as E;
    match change {
        Change::Vanished => E::Undefined,
        Change::Appeared { .. } => E::Defined,
        Change::Changed { from, state, .. } => match u32::try_from(state).unwrap_or(u32::MAX) {
            sys::VIR_DOMAIN_SHUTOFF => E::Stopped,
            sys::VIR_DOMAIN_PAUSED => E::Suspended,
            sys::VIR_DOMAIN_RUNNING if from as u32 == sys::VIR_DOMAIN_PAUSED => E::Resumed,
            sys::VIR_DOMAIN_RUNNING => E::Started,
            sys::VIR_DOMAIN_CRASHED => E::Crashed,
            sys::VIR_DOMAIN_PMSUSPENDED => E::Pmsuspended,
            sys::VIR_DOMAIN_SHUTDOWN => E::Shutdown,
            _ => E::Unknown,
        },
    }
}

/// The synthetic lifecycle event (marked `reconciled`) for a domain that
/// changed while the event connection was away. Its state hint is the
/// listed state (a listing has no `is_active`: active unless shut off).
pub fn reconciled_event(host: &str, r: &Reconciled<'_>) -> v1::Event {
    let state = match r.change {
        Change::Vanished => Observed::Gone,
        Change::Appeared { state, reason } | Change::Changed { state, reason, .. } => {
            Observed::Domain {
                state,
                reason,
                active: state as u32 != sys::VIR_DOMAIN_SHUTOFF,
            }
        }
    };
    v1::Event {
        host: host.to_owned(),
        object_type: ObjectType::Domain as i32,
        name: r.name.to_owned(),
        uuid: r.uuid.to_owned(),
        event_time: Some(timestamp(SystemTime::now())),
        kind: EventKind::Lifecycle as i32,
        reconciled: true,
        state: Some(state.into()),
        details: Some(v1::event::Details::Lifecycle(v1::LifecycleDetails {
            event: reconciled_lifecycle(r.change) as i32,
            event_code: 0,
            detail: v1::DomainLifecycleDetail::Reconciled as i32,
            detail_code: 0,
        })),
        ..Default::default()
    }
}

/// libvirt's virDomainEventType.
fn lifecycle_event(event: u32) -> v1::DomainLifecycleEvent {
    use v1::DomainLifecycleEvent as E;
    match event {
        sys::VIR_DOMAIN_EVENT_DEFINED => E::Defined,
        sys::VIR_DOMAIN_EVENT_UNDEFINED => E::Undefined,
        sys::VIR_DOMAIN_EVENT_STARTED => E::Started,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => E::Suspended,
        sys::VIR_DOMAIN_EVENT_RESUMED => E::Resumed,
        sys::VIR_DOMAIN_EVENT_STOPPED => E::Stopped,
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => E::Shutdown,
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => E::Pmsuspended,
        sys::VIR_DOMAIN_EVENT_CRASHED => E::Crashed,
        _ => E::Unknown,
    }
}

/// libvirt's detail number `detail` of lifecycle event `event`
/// (virDomainEvent*DetailType, numbered from 0 per event).
fn lifecycle_detail(event: u32, detail: u32) -> v1::DomainLifecycleDetail {
    use v1::DomainLifecycleDetail as D;
    const DEFINED: &[D] = &[
        D::DefinedAdded,
        D::DefinedUpdated,
        D::DefinedRenamed,
        D::DefinedFromSnapshot,
    ];
    const UNDEFINED: &[D] = &[D::UndefinedRemoved, D::UndefinedRenamed];
    const STARTED: &[D] = &[
        D::StartedBooted,
        D::StartedMigrated,
        D::StartedRestored,
        D::StartedFromSnapshot,
        D::StartedWakeup,
        D::StartedRecreated,
    ];
    const SUSPENDED: &[D] = &[
        D::SuspendedPaused,
        D::SuspendedMigrated,
        D::SuspendedIoerror,
        D::SuspendedWatchdog,
        D::SuspendedRestored,
        D::SuspendedFromSnapshot,
        D::SuspendedApiError,
        D::SuspendedPostcopy,
        D::SuspendedPostcopyFailed,
    ];
    const RESUMED: &[D] = &[
        D::ResumedUnpaused,
        D::ResumedMigrated,
        D::ResumedFromSnapshot,
        D::ResumedPostcopy,
        D::ResumedPostcopyFailed,
    ];
    const STOPPED: &[D] = &[
        D::StoppedShutdown,
        D::StoppedDestroyed,
        D::StoppedCrashed,
        D::StoppedMigrated,
        D::StoppedSaved,
        D::StoppedFailed,
        D::StoppedFromSnapshot,
    ];
    const SHUTDOWN: &[D] = &[D::ShutdownFinished, D::ShutdownGuest, D::ShutdownHost];
    const PMSUSPENDED: &[D] = &[D::PmsuspendedMemory, D::PmsuspendedDisk];
    const CRASHED: &[D] = &[D::CrashedPanicked, D::CrashedCrashloaded];
    let table = match event {
        sys::VIR_DOMAIN_EVENT_DEFINED => DEFINED,
        sys::VIR_DOMAIN_EVENT_UNDEFINED => UNDEFINED,
        sys::VIR_DOMAIN_EVENT_STARTED => STARTED,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => SUSPENDED,
        sys::VIR_DOMAIN_EVENT_RESUMED => RESUMED,
        sys::VIR_DOMAIN_EVENT_STOPPED => STOPPED,
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => SHUTDOWN,
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => PMSUSPENDED,
        sys::VIR_DOMAIN_EVENT_CRASHED => CRASHED,
        _ => return D::Unknown,
    };
    usize::try_from(detail)
        .ok()
        .and_then(|d| table.get(d))
        .copied()
        .unwrap_or(D::Unknown)
}

/// A libvirt number as the `u32` its constants are (negative: none of them).
fn raw(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pool_lifecycle(event: i32) -> v1::StoragePoolLifecycleEvent {
    use v1::StoragePoolLifecycleEvent as E;
    match raw(event) {
        sys::VIR_STORAGE_POOL_EVENT_DEFINED => E::Defined,
        sys::VIR_STORAGE_POOL_EVENT_UNDEFINED => E::Undefined,
        sys::VIR_STORAGE_POOL_EVENT_STARTED => E::Started,
        sys::VIR_STORAGE_POOL_EVENT_STOPPED => E::Stopped,
        sys::VIR_STORAGE_POOL_EVENT_CREATED => E::Created,
        sys::VIR_STORAGE_POOL_EVENT_DELETED => E::Deleted,
        _ => E::Unknown,
    }
}

fn network_lifecycle(event: i32) -> v1::NetworkLifecycleEvent {
    use v1::NetworkLifecycleEvent as E;
    match raw(event) {
        sys::VIR_NETWORK_EVENT_DEFINED => E::Defined,
        sys::VIR_NETWORK_EVENT_UNDEFINED => E::Undefined,
        sys::VIR_NETWORK_EVENT_STARTED => E::Started,
        sys::VIR_NETWORK_EVENT_STOPPED => E::Stopped,
        _ => E::Unknown,
    }
}

fn agent_state(state: i32) -> v1::AgentState {
    match raw(state) {
        sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED => v1::AgentState::Connected,
        sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED => {
            v1::AgentState::Disconnected
        }
        _ => v1::AgentState::Unknown,
    }
}

fn agent_reason(reason: i32) -> v1::AgentStateReason {
    use v1::AgentStateReason as R;
    match raw(reason) {
        sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED => R::DomainStarted,
        sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL => R::Channel,
        _ => R::Unknown,
    }
}

/// The API's block job type for libvirt's virDomainBlockJobType (events
/// and `BlockJobService` alike).
pub fn block_job_type(t: i32) -> v1::BlockJobType {
    use v1::BlockJobType as T;
    match raw(t) {
        sys::VIR_DOMAIN_BLOCK_JOB_TYPE_PULL => T::Pull,
        sys::VIR_DOMAIN_BLOCK_JOB_TYPE_COPY => T::Copy,
        sys::VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT => T::Commit,
        sys::VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT => T::ActiveCommit,
        sys::VIR_DOMAIN_BLOCK_JOB_TYPE_BACKUP => T::Backup,
        _ => T::Unknown,
    }
}

fn block_job_status(status: i32) -> v1::BlockJobStatus {
    use v1::BlockJobStatus as S;
    match raw(status) {
        sys::VIR_DOMAIN_BLOCK_JOB_COMPLETED => S::Completed,
        sys::VIR_DOMAIN_BLOCK_JOB_FAILED => S::Failed,
        sys::VIR_DOMAIN_BLOCK_JOB_CANCELED => S::Canceled,
        sys::VIR_DOMAIN_BLOCK_JOB_READY => S::Ready,
        _ => S::Unknown,
    }
}

fn watchdog_action(action: i32) -> v1::WatchdogAction {
    use v1::WatchdogAction as A;
    match raw(action) {
        sys::VIR_DOMAIN_EVENT_WATCHDOG_NONE => A::None,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_PAUSE => A::Pause,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_RESET => A::Reset,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF => A::Poweroff,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN => A::Shutdown,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_DEBUG => A::Debug,
        sys::VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI => A::Injectnmi,
        _ => A::Unknown,
    }
}

fn io_error_action(action: i32) -> v1::IoErrorAction {
    use v1::IoErrorAction as A;
    match raw(action) {
        sys::VIR_DOMAIN_EVENT_IO_ERROR_NONE => A::None,
        sys::VIR_DOMAIN_EVENT_IO_ERROR_PAUSE => A::Pause,
        sys::VIR_DOMAIN_EVENT_IO_ERROR_REPORT => A::Report,
        _ => A::Unknown,
    }
}

/// libvirt's virDomainMetadataType in the numbering of the metadata RPCs
/// (UNSPECIFIED for a type newer than this server: `MetadataKind` has no
/// UNKNOWN).
fn metadata_kind(kind: i32) -> v1::MetadataKind {
    use v1::MetadataKind as K;
    match raw(kind) {
        sys::VIR_DOMAIN_METADATA_DESCRIPTION => K::Description,
        sys::VIR_DOMAIN_METADATA_TITLE => K::Title,
        sys::VIR_DOMAIN_METADATA_ELEMENT => K::Element,
        _ => K::Unspecified,
    }
}

fn tray_reason(reason: i32) -> v1::TrayChangeReason {
    use v1::TrayChangeReason as R;
    match raw(reason) {
        sys::VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN => R::Open,
        sys::VIR_DOMAIN_EVENT_TRAY_CHANGE_CLOSE => R::Close,
        _ => R::Unknown,
    }
}

fn job_operation(op: Option<i64>) -> v1::DomainJobOperation {
    use v1::DomainJobOperation as O;
    let Some(op) = op.and_then(|o| u32::try_from(o).ok()) else {
        return O::Unknown;
    };
    match op {
        sys::VIR_DOMAIN_JOB_OPERATION_START => O::Start,
        sys::VIR_DOMAIN_JOB_OPERATION_SAVE => O::Save,
        sys::VIR_DOMAIN_JOB_OPERATION_RESTORE => O::Restore,
        sys::VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN => O::MigrationIn,
        sys::VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT => O::MigrationOut,
        sys::VIR_DOMAIN_JOB_OPERATION_SNAPSHOT => O::Snapshot,
        sys::VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT => O::SnapshotRevert,
        sys::VIR_DOMAIN_JOB_OPERATION_DUMP => O::Dump,
        sys::VIR_DOMAIN_JOB_OPERATION_BACKUP => O::Backup,
        sys::VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_DELETE => O::SnapshotDelete,
        _ => O::Unknown,
    }
}

/// A completed job's typed statistics as its details.
fn job_completed(stats: Vec<(String, TypedValue)>) -> v1::JobCompletedDetails {
    let get = |name: &str| stats.iter().find(|(f, _)| f == name).map(|(_, v)| v);
    v1::JobCompletedDetails {
        operation: job_operation(get("operation").and_then(TypedValue::as_i64)) as i32,
        elapsed: get("time_elapsed")
            .and_then(TypedValue::as_u64)
            .map(|ms| duration(Duration::from_millis(ms))),
        stats: stats
            .iter()
            .map(|(field, value)| (field.clone(), value.to_string()))
            .collect(),
    }
}

/// Turns a raw callback report, and the object's state observed right
/// after it, into a protobuf event (without sequence).
pub fn event(host: &str, raw_event: RawEvent, observed: Option<Observed>) -> v1::Event {
    use v1::event::Details as D;
    let (kind, details) = match raw_event.kind {
        RawKind::Lifecycle { event, detail } => (
            EventKind::Lifecycle,
            Some(D::Lifecycle(v1::LifecycleDetails {
                event: lifecycle_event(raw(event)) as i32,
                event_code: event,
                detail: lifecycle_detail(raw(event), raw(detail)) as i32,
                detail_code: detail,
            })),
        ),
        RawKind::Reboot => (EventKind::Reboot, None),
        RawKind::DeviceAdded(alias) => (
            EventKind::DeviceAdded,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::DeviceRemoved(alias) => (
            EventKind::DeviceRemoved,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::DeviceRemovalFailed(alias) => (
            EventKind::DeviceRemovalFailed,
            Some(D::Device(v1::DeviceDetails { alias })),
        ),
        RawKind::AgentLifecycle { state, reason } => (
            EventKind::AgentLifecycle,
            Some(D::AgentLifecycle(v1::AgentLifecycleDetails {
                state: agent_state(state) as i32,
                reason: agent_reason(reason) as i32,
            })),
        ),
        RawKind::BlockJob {
            disk,
            job_type,
            status,
        } => (
            EventKind::BlockJob,
            Some(D::BlockJob(v1::BlockJobDetails {
                disk,
                job_type: block_job_type(job_type) as i32,
                status: block_job_status(status) as i32,
            })),
        ),
        RawKind::Watchdog(action) => (
            EventKind::Watchdog,
            Some(D::Watchdog(v1::WatchdogDetails {
                action: watchdog_action(action) as i32,
            })),
        ),
        RawKind::IoError {
            src,
            alias,
            action,
            reason,
        } => (
            EventKind::IoError,
            Some(D::IoError(v1::IoErrorDetails {
                source_path: src,
                device_alias: alias,
                action: io_error_action(action) as i32,
                reason,
            })),
        ),
        RawKind::Metadata { kind, nsuri } => (
            EventKind::MetadataChange,
            Some(D::MetadataChange(v1::MetadataChangeDetails {
                kind: metadata_kind(kind) as i32,
                namespace_uri: nsuri,
            })),
        ),
        RawKind::RtcChange(offset) => (
            EventKind::RtcChange,
            Some(D::RtcChange(v1::RtcChangeDetails {
                utc_offset: Some(prost_types::Duration {
                    seconds: offset,
                    nanos: 0,
                }),
            })),
        ),
        RawKind::BalloonChange(kib) => (
            EventKind::BalloonChange,
            Some(D::BalloonChange(v1::BalloonChangeDetails {
                actual_bytes: kib.saturating_mul(1024),
            })),
        ),
        RawKind::PmSuspend(_) => (EventKind::PmSuspend, None),
        RawKind::PmWakeup(_) => (EventKind::PmWakeup, None),
        RawKind::TrayChange { alias, reason } => (
            EventKind::TrayChange,
            Some(D::TrayChange(v1::TrayChangeDetails {
                device_alias: alias,
                reason: tray_reason(reason) as i32,
            })),
        ),
        RawKind::JobCompleted(stats) => (
            EventKind::JobCompleted,
            Some(D::JobCompleted(job_completed(stats))),
        ),
        RawKind::PoolLifecycle { event, .. } => (
            EventKind::StoragePoolLifecycle,
            Some(D::StoragePoolLifecycle(v1::StoragePoolLifecycleDetails {
                event: pool_lifecycle(event) as i32,
                event_code: event,
            })),
        ),
        RawKind::NetworkLifecycle { event, .. } => (
            EventKind::NetworkLifecycle,
            Some(D::NetworkLifecycle(v1::NetworkLifecycleDetails {
                event: network_lifecycle(event) as i32,
                event_code: event,
            })),
        ),
        RawKind::Closed(r) => (
            EventKind::HostDisconnected,
            Some(D::HostDetails(v1::HostDetails {
                disconnect_reason: disconnect_reason(Lost::Closed(r)) as i32,
                reconciled_events: 0,
            })),
        ),
    };
    let object_type = match raw_event.object {
        Object::Domain => ObjectType::Domain,
        Object::StoragePool => ObjectType::StoragePool,
        Object::Network => ObjectType::Network,
        Object::Connection => ObjectType::Host,
    };
    v1::Event {
        host: host.to_owned(),
        object_type: object_type as i32,
        name: raw_event.name,
        uuid: raw_event.uuid,
        event_time: Some(timestamp(raw_event.at)),
        kind: kind as i32,
        state: observed.map(v1::ObjectState::from),
        details,
        ..Default::default()
    }
}

/// A validated `WatchEventsRequest`: the filter, and where to resume.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Which events pass.
    pub filter: Filter,
    /// `(epoch, sequence)` to resume after; `None`: live only.
    pub resume: Option<(String, u64)>,
}

/// Every value of a repeated enum field, each checked against `known`
/// (UNSPECIFIED and numbers this server does not know are bad).
fn enums(v: &mut Violations, field: &str, values: &[i32], known: impl Fn(i32) -> bool) -> Vec<i32> {
    for n in values {
        if !known(*n) {
            v.add(field, format!("{n} is not a known value"));
        }
    }
    values.to_vec()
}

/// Checks every field of a `WatchEventsRequest` (all bad fields in one
/// `INVALID_ARGUMENT`); an empty host name stands for the default host.
pub fn watch_request(hosts: &Hosts, r: v1::WatchEventsRequest) -> Result<Watch, Error> {
    let mut v = Violations::default();
    let host_names = r
        .hosts
        .iter()
        .filter_map(|h| v.check(hosts.get(h)).map(|p| p.name().to_owned()))
        .collect();
    for n in &r.names {
        v.check(validate::required_text("names", n));
    }
    let uuids = r
        .uuids
        .iter()
        .filter_map(|u| v.check(validate::uuid("uuids", u)))
        .collect();
    let kinds = enums(&mut v, "kinds", &r.kinds, |k| {
        !matches!(EventKind::try_from(k), Ok(EventKind::Unspecified) | Err(_))
    });
    let object_types = enums(&mut v, "object_types", &r.object_types, |t| {
        !matches!(
            ObjectType::try_from(t),
            Ok(ObjectType::Unspecified) | Err(_)
        )
    });
    let resume = match r.resume_after {
        None => None,
        Some(_) if r.epoch.is_empty() => {
            v.add("epoch", "is required with resume_after");
            None
        }
        Some(seq) => Some((r.epoch, seq)),
    };
    v.finish()?;
    Ok(Watch {
        filter: Filter {
            hosts: host_names,
            names: r.names,
            uuids,
            kinds,
            object_types,
        },
        resume,
    })
}

impl From<Position> for v1::GetEventPositionResponse {
    fn from(p: Position) -> Self {
        v1::GetEventPositionResponse {
            epoch: p.epoch,
            sequence: p.sequence,
            oldest_sequence: p.oldest,
        }
    }
}

impl From<&Position> for v1::WatchStarted {
    fn from(p: &Position) -> Self {
        v1::WatchStarted {
            epoch: p.epoch.clone(),
            sequence: p.sequence,
            oldest_sequence: p.oldest,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw_event(kind: RawKind) -> RawEvent {
        RawEvent {
            generation: 1,
            object: Object::Domain,
            name: "n".into(),
            uuid: "u".into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_000),
            kind,
            domain: None,
        }
    }

    #[test]
    fn lifecycle_details_follow_libvirt() {
        use v1::DomainLifecycleDetail as D;
        let stopped = sys::VIR_DOMAIN_EVENT_STOPPED;
        assert_eq!(
            lifecycle_detail(stopped, sys::VIR_DOMAIN_EVENT_STOPPED_DESTROYED),
            D::StoppedDestroyed
        );
        assert_eq!(
            lifecycle_detail(sys::VIR_DOMAIN_EVENT_DEFINED, 0),
            D::DefinedAdded
        );
        assert_eq!(
            lifecycle_detail(sys::VIR_DOMAIN_EVENT_SUSPENDED, 8),
            D::SuspendedPostcopyFailed
        );
        assert_eq!(
            lifecycle_detail(sys::VIR_DOMAIN_EVENT_CRASHED, 1),
            D::CrashedCrashloaded
        );
        assert_eq!(lifecycle_detail(stopped, 99), D::Unknown);
        assert_eq!(lifecycle_detail(99, 0), D::Unknown);
        let e = event(
            "h",
            raw_event(RawKind::Lifecycle {
                event: 99,
                detail: 7,
            }),
            None,
        );
        let Some(v1::event::Details::Lifecycle(l)) = e.details else {
            panic!("lifecycle details expected");
        };
        assert_eq!(
            (l.event(), l.event_code, l.detail(), l.detail_code),
            (v1::DomainLifecycleEvent::Unknown, 99, D::Unknown, 7)
        );
        assert_eq!(
            e.event_time,
            Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn details_carry_enums_and_units() {
        use v1::event::Details as D;
        let details = |k| event("h", raw_event(k), None).details.unwrap();
        assert_eq!(
            details(RawKind::BalloonChange(3)),
            D::BalloonChange(v1::BalloonChangeDetails { actual_bytes: 3072 })
        );
        assert_eq!(
            details(RawKind::RtcChange(-3600)),
            D::RtcChange(v1::RtcChangeDetails {
                utc_offset: Some(prost_types::Duration {
                    seconds: -3600,
                    nanos: 0
                })
            })
        );
        assert_eq!(
            details(RawKind::Metadata {
                kind: sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                nsuri: "x".into()
            }),
            D::MetadataChange(v1::MetadataChangeDetails {
                kind: v1::MetadataKind::Element as i32,
                namespace_uri: "x".into()
            })
        );
        assert_eq!(
            details(RawKind::Watchdog(0)),
            D::Watchdog(v1::WatchdogDetails {
                action: v1::WatchdogAction::None as i32
            })
        );
        assert_eq!(
            details(RawKind::TrayChange {
                alias: "cd".into(),
                reason: 1
            }),
            D::TrayChange(v1::TrayChangeDetails {
                device_alias: "cd".into(),
                reason: v1::TrayChangeReason::Close as i32
            })
        );
        assert_eq!(
            details(RawKind::AgentLifecycle {
                state: 1,
                reason: 0
            }),
            D::AgentLifecycle(v1::AgentLifecycleDetails {
                state: v1::AgentState::Connected as i32,
                reason: v1::AgentStateReason::Unknown as i32
            })
        );
        assert_eq!(
            details(RawKind::BlockJob {
                disk: "vda".into(),
                job_type: 2,
                status: 3
            }),
            D::BlockJob(v1::BlockJobDetails {
                disk: "vda".into(),
                job_type: v1::BlockJobType::Copy as i32,
                status: v1::BlockJobStatus::Ready as i32
            })
        );
        let D::JobCompleted(j) = details(RawKind::JobCompleted(vec![
            ("operation".into(), TypedValue::Int(2)),
            ("time_elapsed".into(), TypedValue::UInt(1500)),
        ])) else {
            panic!("job details expected");
        };
        assert_eq!(j.operation(), v1::DomainJobOperation::Save);
        assert_eq!(
            j.elapsed,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            j.stats.get("time_elapsed").map(String::as_str),
            Some("1500")
        );
        assert!(event("h", raw_event(RawKind::PmWakeup(0)), None)
            .details
            .is_none());
    }

    #[test]
    fn pool_network_and_host_events_carry_enums() {
        use v1::event::Details as D;
        let mut raw = raw_event(RawKind::NetworkLifecycle {
            event: 2,
            detail: 0,
        });
        raw.object = Object::Network;
        assert_eq!(
            event("h", raw, None).details,
            Some(D::NetworkLifecycle(v1::NetworkLifecycleDetails {
                event: v1::NetworkLifecycleEvent::Started as i32,
                event_code: 2
            }))
        );
        assert_eq!(
            pool_lifecycle(sys::VIR_STORAGE_POOL_EVENT_DELETED as i32),
            v1::StoragePoolLifecycleEvent::Deleted
        );
        assert_eq!(
            disconnect_reason(Lost::Closed(sys::VIR_CONNECT_CLOSE_REASON_EOF as i32)),
            v1::HostDisconnectReason::Eof
        );
        assert_eq!(
            disconnect_reason(Lost::NotAlive),
            v1::HostDisconnectReason::NotAlive
        );
        let back = reconnected("h", 3);
        assert_eq!(back.kind(), EventKind::HostReconnected);
        assert!(back.event_time.is_some());
    }

    #[test]
    fn state_hints_are_converted_once_from_libvirt_numbers() {
        let hint = v1::ObjectState::from(Observed::Domain {
            state: sys::VIR_DOMAIN_SHUTOFF as i32,
            reason: sys::VIR_DOMAIN_SHUTOFF_DESTROYED as i32,
            active: false,
        });
        assert!(hint.exists && !hint.active);
        assert_eq!(hint.domain_state(), v1::DomainState::Shutoff);
        assert_eq!(
            hint.domain_state_reason(),
            v1::DomainStateReason::ShutoffDestroyed
        );
        assert_eq!(
            hint.domain_state_reason_code,
            sys::VIR_DOMAIN_SHUTOFF_DESTROYED as i32
        );
    }

    #[test]
    fn reconciled_events_carry_the_listed_state() {
        let (paused, running) = (
            sys::VIR_DOMAIN_PAUSED as i32,
            sys::VIR_DOMAIN_RUNNING as i32,
        );
        let e = reconciled_event(
            "h",
            &Reconciled {
                uuid: "u",
                name: "n",
                change: Change::Changed {
                    from: paused,
                    state: running,
                    reason: 5,
                },
            },
        );
        assert!(e.reconciled);
        let state = e.state.unwrap_or_default();
        assert!(state.exists && state.active);
        assert_eq!(state.domain_state(), v1::DomainState::Running);
        assert_eq!(
            state.domain_state_reason(),
            v1::DomainStateReason::RunningUnpaused
        );
        let Some(v1::event::Details::Lifecycle(l)) = e.details else {
            panic!("lifecycle details expected");
        };
        assert_eq!(l.event(), v1::DomainLifecycleEvent::Resumed);
        assert_eq!(l.detail(), v1::DomainLifecycleDetail::Reconciled);
        let gone = reconciled_event(
            "h",
            &Reconciled {
                uuid: "u",
                name: "n",
                change: Change::Vanished,
            },
        );
        assert_eq!(gone.state, Some(v1::ObjectState::default()));
    }
}
