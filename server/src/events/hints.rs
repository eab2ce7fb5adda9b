//! Where an event's state hint comes from: from the event itself where
//! libvirt's lifecycle detail alone says the state and reason libvirt has
//! just set, else from libvirt, read after the event in one bulk call per
//! batch ([`super::source`]).
//!
//! # Which events imply their state
//!
//! A pair `(event, detail)` implies a hint only when libvirt's drivers set
//! exactly one `(state, reason)` whenever they raise it, so the derived hint
//! is what `virDomainGetState` says at that moment. Checked against
//! libvirt's `src/qemu/qemu_process.c` and `src/test/test_driver.c`:
//!
//! | event / detail | state / reason | where libvirt sets it |
//! | --- | --- | --- |
//! | SUSPENDED / IOERROR | PAUSED / IOERROR | `qemuProcessHandleIOError` |
//! | SUSPENDED / WATCHDOG | PAUSED / WATCHDOG | `qemuProcessHandleWatchdog` |
//! | SUSPENDED / MIGRATED | PAUSED / MIGRATION | `qemuProcessHandleStop` (`qemuDomainPausedReasonToSuspendedEvent`) |
//! | SUSPENDED / FROM_SNAPSHOT | PAUSED / FROM_SNAPSHOT | same |
//! | SUSPENDED / POSTCOPY | PAUSED / POSTCOPY | same |
//! | SUSPENDED / POSTCOPY_FAILED | PAUSED / POSTCOPY_FAILED | same |
//! | STARTED / WAKEUP | RUNNING / WAKEUP | `qemuProcessHandlePMWakeup` |
//! | PMSUSPENDED / MEMORY | PMSUSPENDED / UNKNOWN | `qemuProcessHandlePMSuspend` |
//! | CRASHED / PANICKED | CRASHED / PANICKED | `processGuestPanicEvent` |
//!
//! Every other pair is observed, because its detail does not pin the
//! state down:
//! * SUSPENDED / PAUSED is raised for the paused reasons USER, SAVE, DUMP,
//!   SNAPSHOT, SHUTTING_DOWN, CRASHED, STARTING_UP and UNKNOWN alike
//!   (`qemuDomainPausedReasonToSuspendedEvent` folds them).
//! * RESUMED / UNPAUSED is also raised while a domain boots, with the
//!   state RUNNING / BOOTED (`qemuProcessHandleResume` keeps
//!   `runningReason`).
//! * STARTED / BOOTED (and RESTORED, MIGRATED) leaves the domain PAUSED
//!   when it was started paused (`VIR_DOMAIN_START_PAUSED`), the
//!   SUSPENDED event coming after.
//! * STOPPED / * leaves a persistent domain SHUT OFF but removes a
//!   transient one (gone), and STOPPED / FAILED comes with the SHUTDOWN,
//!   CRASHED or FAILED shut-off reason (`qemuProcessHandleMonitorEOF`).
//! * SHUTDOWN / * depends on the domain's `on_poweroff`; DEFINED and
//!   UNDEFINED say nothing of the run state (a running domain can be
//!   defined or undefined); other kinds (reboot, devices, jobs...) carry
//!   no state at all.

use virt::sys;

use super::source::Observed;
use crate::libvirt_sys::{Object, RawEvent, RawKind};

/// The `(state, reason)` libvirt has set when it raises lifecycle `event`
/// with `detail`, where that pair says it alone (module doc); `None`
/// otherwise.
pub fn implied(event: i32, detail: i32) -> Option<(i32, i32)> {
    let (Ok(event), Ok(detail)) = (u32::try_from(event), u32::try_from(detail)) else {
        return None;
    };
    let (state, reason) = match (event, detail) {
        (sys::VIR_DOMAIN_EVENT_SUSPENDED, d) => (
            sys::VIR_DOMAIN_PAUSED,
            match d {
                sys::VIR_DOMAIN_EVENT_SUSPENDED_IOERROR => sys::VIR_DOMAIN_PAUSED_IOERROR,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG => sys::VIR_DOMAIN_PAUSED_WATCHDOG,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED => sys::VIR_DOMAIN_PAUSED_MIGRATION,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT => {
                    sys::VIR_DOMAIN_PAUSED_FROM_SNAPSHOT
                }
                sys::VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY => sys::VIR_DOMAIN_PAUSED_POSTCOPY,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED => {
                    sys::VIR_DOMAIN_PAUSED_POSTCOPY_FAILED
                }
                _ => return None,
            },
        ),
        (sys::VIR_DOMAIN_EVENT_STARTED, sys::VIR_DOMAIN_EVENT_STARTED_WAKEUP) => {
            (sys::VIR_DOMAIN_RUNNING, sys::VIR_DOMAIN_RUNNING_WAKEUP)
        }
        (sys::VIR_DOMAIN_EVENT_PMSUSPENDED, sys::VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY) => (
            sys::VIR_DOMAIN_PMSUSPENDED,
            sys::VIR_DOMAIN_PMSUSPENDED_UNKNOWN,
        ),
        (sys::VIR_DOMAIN_EVENT_CRASHED, sys::VIR_DOMAIN_EVENT_CRASHED_PANICKED) => {
            (sys::VIR_DOMAIN_CRASHED, sys::VIR_DOMAIN_CRASHED_PANICKED)
        }
        _ => return None,
    };
    Some((state as i32, reason as i32))
}

/// How an event gets its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the event itself.
    Derived(Observed),
    /// Read from libvirt after the event (batched).
    Observe,
    /// None: host events.
    Nothing,
}

/// Where `raw`'s hint comes from.
pub fn source(raw: &RawEvent) -> Source {
    match (raw.object, &raw.kind) {
        (Object::Connection, _) => Source::Nothing,
        (Object::Domain, RawKind::Lifecycle { event, detail }) => match implied(*event, *detail) {
            // Every implied state is an active one (the domain has an id).
            Some((state, reason)) => Source::Derived(Observed::Domain {
                state,
                reason,
                active: true,
            }),
            None => Source::Observe,
        },
        _ => Source::Observe,
    }
}

/// The `(state, reason)` of a `state` group stats record's parameters.
pub fn state_of(params: &[(String, crate::libvirt_sys::TypedValue)]) -> Option<(i32, i32)> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(f, _)| f == name)
            .and_then(|(_, v)| v.as_i64())
            .and_then(|v| i32::try_from(v).ok())
    };
    Some((get("state.state")?, get("state.reason")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(e: u32, d: u32) -> Option<(i32, i32)> {
        implied(e as i32, d as i32)
    }

    /// The implied table, and the ambiguous pairs it must leave alone.
    #[test]
    fn only_unambiguous_details_imply_a_state() {
        assert_eq!(
            ev(
                sys::VIR_DOMAIN_EVENT_SUSPENDED,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_IOERROR
            ),
            Some((
                sys::VIR_DOMAIN_PAUSED as i32,
                sys::VIR_DOMAIN_PAUSED_IOERROR as i32
            ))
        );
        assert_eq!(
            ev(
                sys::VIR_DOMAIN_EVENT_STARTED,
                sys::VIR_DOMAIN_EVENT_STARTED_WAKEUP
            ),
            Some((
                sys::VIR_DOMAIN_RUNNING as i32,
                sys::VIR_DOMAIN_RUNNING_WAKEUP as i32
            ))
        );
        for (e, d) in [
            (
                sys::VIR_DOMAIN_EVENT_SUSPENDED,
                sys::VIR_DOMAIN_EVENT_SUSPENDED_PAUSED,
            ),
            (
                sys::VIR_DOMAIN_EVENT_RESUMED,
                sys::VIR_DOMAIN_EVENT_RESUMED_UNPAUSED,
            ),
            (
                sys::VIR_DOMAIN_EVENT_STARTED,
                sys::VIR_DOMAIN_EVENT_STARTED_BOOTED,
            ),
            (
                sys::VIR_DOMAIN_EVENT_STOPPED,
                sys::VIR_DOMAIN_EVENT_STOPPED_DESTROYED,
            ),
            (
                sys::VIR_DOMAIN_EVENT_DEFINED,
                sys::VIR_DOMAIN_EVENT_DEFINED_ADDED,
            ),
            (
                sys::VIR_DOMAIN_EVENT_UNDEFINED,
                sys::VIR_DOMAIN_EVENT_UNDEFINED_REMOVED,
            ),
        ] {
            assert_eq!(ev(e, d), None, "event {e} detail {d} is ambiguous");
        }
        assert_eq!(implied(-1, 0), None);
    }
}
