//! Conversion of what libvirt reports (callback values, observed states,
//! reconciled changes) into protobuf events: every name table and enum
//! mapping of the event stream, once. Each value goes from libvirt's raw
//! form to the proto form exactly once, here.

use std::time::SystemTime;

use libvirt_grpc::v1::{self, EventKind, ObjectType};
use virt::sys;

use super::{
    reconcile::{Change, Reconciled},
    source::Observed,
};
use crate::{
    convert::state::domain_state as state_enum,
    libvirt_sys::{Object, RawEvent, RawKind},
    ops::domain::reason_name,
};

fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A host connectivity event (disconnected, reconnected).
pub fn host_event(host: &str, kind: EventKind, details: v1::HostDetails) -> v1::Event {
    v1::Event {
        host: host.to_owned(),
        object_type: ObjectType::Host as i32,
        time_unix_micros: micros(SystemTime::now()),
        kind: kind as i32,
        details: Some(v1::event::Details::HostDetails(details)),
        ..Default::default()
    }
}

/// libvirt's virConnectCloseReason as the text of `HostDetails.reason`.
pub fn close_reason(reason: i32) -> &'static str {
    match reason as u32 {
        sys::VIR_CONNECT_CLOSE_REASON_ERROR => "error",
        sys::VIR_CONNECT_CLOSE_REASON_EOF => "eof",
        sys::VIR_CONNECT_CLOSE_REASON_KEEPALIVE => "keepalive",
        sys::VIR_CONNECT_CLOSE_REASON_CLIENT => "client",
        _ => "unknown",
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
                domain_state: state_enum(state) as i32,
                domain_state_reason: reason,
                domain_state_reason_name: reason_name(state, reason).to_owned(),
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
        Change::Changed { from, state, .. } => match state as u32 {
            sys::VIR_DOMAIN_SHUTOFF => E::Stopped,
            sys::VIR_DOMAIN_PAUSED => E::Suspended,
            sys::VIR_DOMAIN_RUNNING if from as u32 == sys::VIR_DOMAIN_PAUSED => E::Resumed,
            sys::VIR_DOMAIN_RUNNING => E::Started,
            sys::VIR_DOMAIN_CRASHED => E::Crashed,
            sys::VIR_DOMAIN_PMSUSPENDED => E::Pmsuspended,
            sys::VIR_DOMAIN_SHUTDOWN => E::Shutdown,
            _ => E::Unspecified,
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
        time_unix_micros: micros(SystemTime::now()),
        kind: EventKind::Lifecycle as i32,
        reconciled: true,
        state: Some(state.into()),
        details: Some(v1::event::Details::Lifecycle(v1::LifecycleDetails {
            event: reconciled_lifecycle(r.change) as i32,
            detail: 0,
            detail_name: "RECONCILED".into(),
        })),
        ..Default::default()
    }
}

fn lifecycle_event(event: i32) -> v1::DomainLifecycleEvent {
    use v1::DomainLifecycleEvent as E;
    match event as u32 {
        sys::VIR_DOMAIN_EVENT_DEFINED => E::Defined,
        sys::VIR_DOMAIN_EVENT_UNDEFINED => E::Undefined,
        sys::VIR_DOMAIN_EVENT_STARTED => E::Started,
        sys::VIR_DOMAIN_EVENT_SUSPENDED => E::Suspended,
        sys::VIR_DOMAIN_EVENT_RESUMED => E::Resumed,
        sys::VIR_DOMAIN_EVENT_STOPPED => E::Stopped,
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => E::Shutdown,
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => E::Pmsuspended,
        sys::VIR_DOMAIN_EVENT_CRASHED => E::Crashed,
        _ => E::Unspecified,
    }
}

/// libvirt's constant name for a lifecycle detail.
pub fn lifecycle_detail_name(event: i32, detail: i32) -> String {
    const DEFINED: &[&str] = &["ADDED", "UPDATED", "RENAMED", "FROM_SNAPSHOT"];
    const UNDEFINED: &[&str] = &["REMOVED", "RENAMED"];
    const STARTED: &[&str] = &[
        "BOOTED",
        "MIGRATED",
        "RESTORED",
        "FROM_SNAPSHOT",
        "WAKEUP",
        "RECREATED",
    ];
    const SUSPENDED: &[&str] = &[
        "PAUSED",
        "MIGRATED",
        "IOERROR",
        "WATCHDOG",
        "RESTORED",
        "FROM_SNAPSHOT",
        "API_ERROR",
        "POSTCOPY",
        "POSTCOPY_FAILED",
    ];
    const RESUMED: &[&str] = &[
        "UNPAUSED",
        "MIGRATED",
        "FROM_SNAPSHOT",
        "POSTCOPY",
        "POSTCOPY_FAILED",
    ];
    const STOPPED: &[&str] = &[
        "SHUTDOWN",
        "DESTROYED",
        "CRASHED",
        "MIGRATED",
        "SAVED",
        "FAILED",
        "FROM_SNAPSHOT",
    ];
    const SHUTDOWN: &[&str] = &["FINISHED", "GUEST", "HOST"];
    const PMSUSPENDED: &[&str] = &["MEMORY", "DISK"];
    const CRASHED: &[&str] = &["PANICKED", "CRASHLOADED"];
    let (prefix, table) = match event as u32 {
        sys::VIR_DOMAIN_EVENT_DEFINED => ("DEFINED", DEFINED),
        sys::VIR_DOMAIN_EVENT_UNDEFINED => ("UNDEFINED", UNDEFINED),
        sys::VIR_DOMAIN_EVENT_STARTED => ("STARTED", STARTED),
        sys::VIR_DOMAIN_EVENT_SUSPENDED => ("SUSPENDED", SUSPENDED),
        sys::VIR_DOMAIN_EVENT_RESUMED => ("RESUMED", RESUMED),
        sys::VIR_DOMAIN_EVENT_STOPPED => ("STOPPED", STOPPED),
        sys::VIR_DOMAIN_EVENT_SHUTDOWN => ("SHUTDOWN", SHUTDOWN),
        sys::VIR_DOMAIN_EVENT_PMSUSPENDED => ("PMSUSPENDED", PMSUSPENDED),
        sys::VIR_DOMAIN_EVENT_CRASHED => ("CRASHED", CRASHED),
        _ => return format!("UNKNOWN_{detail}"),
    };
    match usize::try_from(detail).ok().and_then(|d| table.get(d)) {
        Some(name) => format!("VIR_DOMAIN_EVENT_{prefix}_{name}"),
        None => format!("VIR_DOMAIN_EVENT_{prefix}_{detail}"),
    }
}

fn object_lifecycle_name(prefix: &str, event: i32) -> String {
    const NAMES: &[&str] = &[
        "DEFINED",
        "UNDEFINED",
        "STARTED",
        "STOPPED",
        "CREATED",
        "DELETED",
    ];
    match usize::try_from(event).ok().and_then(|e| NAMES.get(e)) {
        Some(n) => format!("{prefix}_{n}"),
        None => format!("{prefix}_{event}"),
    }
}

/// The details of a pool or network lifecycle event (`prefix` names the
/// libvirt constants: both enums number their events alike).
fn object_lifecycle(prefix: &str, event: i32, detail: i32) -> v1::event::Details {
    v1::event::Details::ObjectLifecycle(v1::ObjectLifecycleDetails {
        event,
        event_name: object_lifecycle_name(prefix, event),
        detail,
    })
}

fn block_job_status_name(status: i32) -> &'static str {
    match status {
        0 => "VIR_DOMAIN_BLOCK_JOB_COMPLETED",
        1 => "VIR_DOMAIN_BLOCK_JOB_FAILED",
        2 => "VIR_DOMAIN_BLOCK_JOB_CANCELED",
        3 => "VIR_DOMAIN_BLOCK_JOB_READY",
        _ => "UNKNOWN",
    }
}

fn watchdog_name(action: i32) -> &'static str {
    match action {
        0 => "VIR_DOMAIN_EVENT_WATCHDOG_NONE",
        1 => "VIR_DOMAIN_EVENT_WATCHDOG_PAUSE",
        2 => "VIR_DOMAIN_EVENT_WATCHDOG_RESET",
        3 => "VIR_DOMAIN_EVENT_WATCHDOG_POWEROFF",
        4 => "VIR_DOMAIN_EVENT_WATCHDOG_SHUTDOWN",
        5 => "VIR_DOMAIN_EVENT_WATCHDOG_DEBUG",
        6 => "VIR_DOMAIN_EVENT_WATCHDOG_INJECTNMI",
        _ => "UNKNOWN",
    }
}

/// Turns a raw callback report, and the object's state observed right
/// after it, into a protobuf event (without sequence).
pub fn event(host: &str, raw: RawEvent, observed: Option<Observed>) -> v1::Event {
    use v1::event::Details as D;
    let (kind, details) = match raw.kind {
        RawKind::Lifecycle { event, detail } => (
            EventKind::Lifecycle,
            Some(D::Lifecycle(v1::LifecycleDetails {
                event: lifecycle_event(event) as i32,
                detail,
                detail_name: lifecycle_detail_name(event, detail),
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
                connected: state as u32
                    == sys::VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED,
                state,
                reason,
                reason_name: match reason {
                    1 => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED",
                    2 => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL",
                    _ => "VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_UNKNOWN",
                }
                .to_owned(),
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
                job_type,
                status,
                status_name: block_job_status_name(status).to_owned(),
            })),
        ),
        RawKind::Watchdog(action) => (
            EventKind::Watchdog,
            Some(D::Watchdog(v1::WatchdogDetails {
                action,
                action_name: watchdog_name(action).to_owned(),
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
                action,
                reason,
            })),
        ),
        RawKind::Metadata { kind, nsuri } => (
            EventKind::MetadataChange,
            Some(D::MetadataChange(v1::MetadataChangeDetails {
                metadata_type: kind,
                namespace_uri: nsuri,
            })),
        ),
        RawKind::RtcChange(off) => (
            EventKind::RtcChange,
            Some(D::RtcChange(v1::RtcChangeDetails {
                utc_offset_seconds: off,
            })),
        ),
        RawKind::BalloonChange(kib) => (
            EventKind::BalloonChange,
            Some(D::BalloonChange(v1::BalloonChangeDetails {
                actual_kib: kib,
            })),
        ),
        RawKind::PmSuspend(reason) => (EventKind::PmSuspend, Some(D::Pm(v1::PmDetails { reason }))),
        RawKind::PmWakeup(reason) => (EventKind::PmWakeup, Some(D::Pm(v1::PmDetails { reason }))),
        RawKind::TrayChange { alias, reason } => (
            EventKind::TrayChange,
            Some(D::TrayChange(v1::TrayChangeDetails {
                device_alias: alias,
                opened: reason as u32 == sys::VIR_DOMAIN_EVENT_TRAY_CHANGE_OPEN,
            })),
        ),
        RawKind::JobCompleted(stats) => (
            EventKind::JobCompleted,
            Some(D::JobCompleted(v1::JobCompletedDetails {
                stats: stats
                    .into_iter()
                    .map(|(field, value)| (field, value.to_string()))
                    .collect(),
            })),
        ),
        RawKind::PoolLifecycle { event, detail } => (
            EventKind::StoragePoolLifecycle,
            Some(object_lifecycle("VIR_STORAGE_POOL_EVENT", event, detail)),
        ),
        RawKind::NetworkLifecycle { event, detail } => (
            EventKind::NetworkLifecycle,
            Some(object_lifecycle("VIR_NETWORK_EVENT", event, detail)),
        ),
        RawKind::Closed(r) => (
            EventKind::HostDisconnected,
            Some(D::HostDetails(v1::HostDetails {
                reason: close_reason(r).to_owned(),
                reconciled_events: 0,
            })),
        ),
    };
    let object_type = match raw.object {
        Object::Domain => ObjectType::Domain,
        Object::StoragePool => ObjectType::StoragePool,
        Object::Network => ObjectType::Network,
        Object::Connection => ObjectType::Host,
    };
    v1::Event {
        host: host.to_owned(),
        object_type: object_type as i32,
        name: raw.name,
        uuid: raw.uuid,
        time_unix_micros: micros(raw.at),
        kind: kind as i32,
        state: observed.map(v1::ObjectState::from),
        details,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_names_follow_libvirt() {
        assert_eq!(
            lifecycle_detail_name(sys::VIR_DOMAIN_EVENT_STOPPED as i32, 1),
            "VIR_DOMAIN_EVENT_STOPPED_DESTROYED"
        );
        assert_eq!(
            object_lifecycle_name("VIR_NETWORK_EVENT", 2),
            "VIR_NETWORK_EVENT_STARTED"
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
        assert_eq!(state.domain_state_reason_name, "unpaused");
        let Some(v1::event::Details::Lifecycle(l)) = e.details else {
            panic!("lifecycle details expected");
        };
        assert_eq!(l.event(), v1::DomainLifecycleEvent::Resumed);
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
