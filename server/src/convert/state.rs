//! libvirt's domain state and state reason numbers as the API's enums:
//! the one table both domain reads and events use.

use libvirt_grpc::v1;
use virt::sys;

/// The API's state for libvirt's virDomainState.
pub fn domain_state(state: i32) -> v1::DomainState {
    use v1::DomainState as S;
    match u32::try_from(state).unwrap_or(u32::MAX) {
        sys::VIR_DOMAIN_NOSTATE => S::Nostate,
        sys::VIR_DOMAIN_RUNNING => S::Running,
        sys::VIR_DOMAIN_BLOCKED => S::Blocked,
        sys::VIR_DOMAIN_PAUSED => S::Paused,
        sys::VIR_DOMAIN_SHUTDOWN => S::Shutdown,
        sys::VIR_DOMAIN_SHUTOFF => S::Shutoff,
        sys::VIR_DOMAIN_CRASHED => S::Crashed,
        sys::VIR_DOMAIN_PMSUSPENDED => S::Pmsuspended,
        _ => S::Unspecified,
    }
}

/// The API's reason for libvirt's reason number `reason` of state `state`
/// (`UNKNOWN` for libvirt's own unknown and for numbers newer than this
/// table).
pub fn domain_state_reason(state: i32, reason: i32) -> v1::DomainStateReason {
    use v1::DomainStateReason as R;
    let (Ok(state), Ok(reason)) = (u32::try_from(state), u32::try_from(reason)) else {
        return R::Unknown;
    };
    match (state, reason) {
        (sys::VIR_DOMAIN_RUNNING, 1) => R::RunningBooted,
        (sys::VIR_DOMAIN_RUNNING, 2) => R::RunningMigrated,
        (sys::VIR_DOMAIN_RUNNING, 3) => R::RunningRestored,
        (sys::VIR_DOMAIN_RUNNING, 4) => R::RunningFromSnapshot,
        (sys::VIR_DOMAIN_RUNNING, 5) => R::RunningUnpaused,
        (sys::VIR_DOMAIN_RUNNING, 6) => R::RunningMigrationCanceled,
        (sys::VIR_DOMAIN_RUNNING, 7) => R::RunningSaveCanceled,
        (sys::VIR_DOMAIN_RUNNING, 8) => R::RunningWakeup,
        (sys::VIR_DOMAIN_RUNNING, 9) => R::RunningCrashed,
        (sys::VIR_DOMAIN_RUNNING, 10) => R::RunningPostcopy,
        (sys::VIR_DOMAIN_RUNNING, 11) => R::RunningPostcopyFailed,
        (sys::VIR_DOMAIN_PAUSED, 1) => R::PausedUser,
        (sys::VIR_DOMAIN_PAUSED, 2) => R::PausedMigration,
        (sys::VIR_DOMAIN_PAUSED, 3) => R::PausedSave,
        (sys::VIR_DOMAIN_PAUSED, 4) => R::PausedDump,
        (sys::VIR_DOMAIN_PAUSED, 5) => R::PausedIoerror,
        (sys::VIR_DOMAIN_PAUSED, 6) => R::PausedWatchdog,
        (sys::VIR_DOMAIN_PAUSED, 7) => R::PausedFromSnapshot,
        (sys::VIR_DOMAIN_PAUSED, 8) => R::PausedShuttingDown,
        (sys::VIR_DOMAIN_PAUSED, 9) => R::PausedSnapshot,
        (sys::VIR_DOMAIN_PAUSED, 10) => R::PausedCrashed,
        (sys::VIR_DOMAIN_PAUSED, 11) => R::PausedStartingUp,
        (sys::VIR_DOMAIN_PAUSED, 12) => R::PausedPostcopy,
        (sys::VIR_DOMAIN_PAUSED, 13) => R::PausedPostcopyFailed,
        (sys::VIR_DOMAIN_PAUSED, 14) => R::PausedApiError,
        (sys::VIR_DOMAIN_SHUTDOWN, 1) => R::ShutdownUser,
        (sys::VIR_DOMAIN_SHUTOFF, 1) => R::ShutoffShutdown,
        (sys::VIR_DOMAIN_SHUTOFF, 2) => R::ShutoffDestroyed,
        (sys::VIR_DOMAIN_SHUTOFF, 3) => R::ShutoffCrashed,
        (sys::VIR_DOMAIN_SHUTOFF, 4) => R::ShutoffMigrated,
        (sys::VIR_DOMAIN_SHUTOFF, 5) => R::ShutoffSaved,
        (sys::VIR_DOMAIN_SHUTOFF, 6) => R::ShutoffFailed,
        (sys::VIR_DOMAIN_SHUTOFF, 7) => R::ShutoffFromSnapshot,
        (sys::VIR_DOMAIN_SHUTOFF, 8) => R::ShutoffDaemon,
        (sys::VIR_DOMAIN_CRASHED, 1) => R::CrashedPanicked,
        _ => R::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_their_state() {
        use v1::DomainStateReason as R;
        let shutoff = sys::VIR_DOMAIN_SHUTOFF as i32;
        let running = sys::VIR_DOMAIN_RUNNING as i32;
        assert_eq!(
            domain_state_reason(shutoff, sys::VIR_DOMAIN_SHUTOFF_DESTROYED as i32),
            R::ShutoffDestroyed
        );
        assert_eq!(
            domain_state_reason(running, sys::VIR_DOMAIN_RUNNING_BOOTED as i32),
            R::RunningBooted
        );
        assert_eq!(
            domain_state_reason(running, sys::VIR_DOMAIN_RUNNING_UNPAUSED as i32),
            R::RunningUnpaused
        );
        assert_eq!(domain_state_reason(running, 0), R::Unknown);
        assert_eq!(domain_state_reason(running, 999), R::Unknown);
        assert_eq!(domain_state_reason(-1, 1), R::Unknown);
        assert_eq!(domain_state(shutoff), v1::DomainState::Shutoff);
        assert_eq!(domain_state(99), v1::DomainState::Unspecified);
    }
}
