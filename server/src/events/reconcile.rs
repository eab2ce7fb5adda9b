//! Reconciliation after a reconnect: what changed while the event
//! connection was away, found by comparing the domains as last seen with a
//! fresh listing, and published as `reconciled` lifecycle events.

use std::collections::HashMap;

use super::{convert, hub::Hub};

/// Every domain as last seen, by UUID: `(name, state, reason)` in libvirt's
/// raw values.
pub type Snapshot = HashMap<String, (String, i32, i32)>;

/// How one domain changed between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It is gone.
    Vanished,
    /// It is new, in this state and reason.
    Appeared {
        /// virDomainState now.
        state: i32,
        /// Its reason now.
        reason: i32,
    },
    /// Its state or reason changed.
    Changed {
        /// virDomainState before.
        from: i32,
        /// virDomainState now.
        state: i32,
        /// Its reason now.
        reason: i32,
    },
}

/// One reconciled domain: its UUID, name and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled<'a> {
    /// The domain's UUID.
    pub uuid: &'a str,
    /// The domain's name (as last seen when it vanished).
    pub name: &'a str,
    /// What changed.
    pub change: Change,
}

/// Every domain that changed between `before` and `now`, ordered by UUID.
pub fn diff<'a>(before: &'a Snapshot, now: &'a Snapshot) -> Vec<Reconciled<'a>> {
    let mut uuids: Vec<&String> = before.keys().chain(now.keys()).collect();
    uuids.sort();
    uuids.dedup();
    uuids
        .into_iter()
        .filter_map(|uuid| {
            let (name, change) = match (before.get(uuid), now.get(uuid)) {
                (Some((name, ..)), None) => (name, Change::Vanished),
                (None, Some((name, s, r))) => (
                    name,
                    Change::Appeared {
                        state: *s,
                        reason: *r,
                    },
                ),
                (Some((_, s0, r0)), Some((name, s, r))) if (s0, r0) != (s, r) => (
                    name,
                    Change::Changed {
                        from: *s0,
                        state: *s,
                        reason: *r,
                    },
                ),
                _ => return None,
            };
            Some(Reconciled { uuid, name, change })
        })
        .collect()
}

/// Publishes a reconciled lifecycle event for every domain that changed
/// between `before` and `now`; returns how many.
pub fn publish_changes(hub: &Hub, host: &str, before: &Snapshot, now: &Snapshot) -> u32 {
    let mut n = 0;
    for r in diff(before, now) {
        hub.publish(convert::reconciled_event(host, &r));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(entries: &[(&str, &str, i32, i32)]) -> Snapshot {
        entries
            .iter()
            .map(|(u, n, s, r)| ((*u).to_owned(), ((*n).to_owned(), *s, *r)))
            .collect()
    }

    #[test]
    fn diff_reports_vanished_appeared_and_changed_in_uuid_order() {
        let before = snap(&[
            ("a", "gone", 1, 1),
            ("b", "same", 1, 1),
            ("c", "moved", 1, 1),
        ]);
        let now = snap(&[
            ("b", "same", 1, 1),
            ("c", "moved", 3, 1),
            ("d", "new", 5, 2),
        ]);
        let d = diff(&before, &now);
        assert_eq!(
            d,
            vec![
                Reconciled {
                    uuid: "a",
                    name: "gone",
                    change: Change::Vanished
                },
                Reconciled {
                    uuid: "c",
                    name: "moved",
                    change: Change::Changed {
                        from: 1,
                        state: 3,
                        reason: 1
                    }
                },
                Reconciled {
                    uuid: "d",
                    name: "new",
                    change: Change::Appeared {
                        state: 5,
                        reason: 2
                    }
                },
            ]
        );
    }

    #[test]
    fn a_changed_reason_alone_is_a_change() {
        let before = snap(&[("a", "x", 5, 1)]);
        let now = snap(&[("a", "x", 5, 2)]);
        assert_eq!(diff(&before, &now).len(), 1);
        assert!(diff(&now, &now).is_empty());
    }
}
