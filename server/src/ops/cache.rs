//! What the server keeps between calls, and why no answer built from it is
//! ever wrong. Two things, nothing else:
//!
//! * [`Handles`]: per host, the domain handles (`virDomainPtr`) earlier
//!   lookups by name or UUID returned, so that a read need not look the
//!   domain up again (a lookup is a round trip). A handle calls over the
//!   pool connection that looked it up, from whichever thread uses it (libvirt
//!   connections take calls from many threads). A handle only names a
//!   domain: libvirt resolves it by UUID on every call, so a handle of a
//!   domain that was undefined (or undefined and redefined under the same
//!   name, with a new UUID) finds nothing, and a read through it is checked
//!   against the key it was kept for (the name libvirt answers must be the
//!   name asked for). A read that finds nothing, the wrong domain or any
//!   error drops the handle, looks the domain up afresh and reads once
//!   more. All handles are dropped whenever one of the host's pool
//!   connections is closed or replaced.
//! * [`Facts`]: per host, by UUID, the one value of a domain that changes
//!   only with a define, a start or a stop: its OS type (and on QEMU, never
//!   for a given UUID). Each of those changes is announced by a lifecycle
//!   event; the host's event task clears the domain's facts when
//!   it takes the event off libvirt's connection, before the event is
//!   published. Facts are kept only while that event connection is up
//!   ([`Facts::set_live`]); a value read from libvirt is kept only if no
//!   event arrived while it was being read (the generation check), so a
//!   value is never older than the last event published for its domain.
//!
//! State, resources, persistence, autostart and managed-save images are
//! never kept: libvirt announces no event for an autostart change or a
//! removed managed-save image, and persistence flips with a define or
//! undefine that a caller may check right after (before its event could
//! arrive), so those are read in every call.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use virt::domain::Domain;

use super::domain::DomainKey;

/// Most handles a host keeps; past it the map starts afresh.
const MAX_HANDLES: usize = 16_384;
/// Most domains a host's facts are kept for; past it they start afresh.
const MAX_FACTS: usize = 65_536;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a map that is merely
    // incomplete; every entry in it is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Domain handles of one host, by the key they were looked up with.
#[derive(Default)]
pub struct Handles {
    by_key: Mutex<HashMap<DomainKey, Domain>>,
}

impl Handles {
    /// The handle kept for `key` (never for ids: an id names another domain
    /// once its domain stops).
    pub fn get(&self, key: &DomainKey) -> Option<Domain> {
        lock(&self.by_key).get(key).cloned()
    }

    /// Keeps `dom` for `key`.
    pub fn keep(&self, key: &DomainKey, dom: Domain) {
        if matches!(key, DomainKey::Id(_)) {
            return;
        }
        let mut m = lock(&self.by_key);
        if m.len() >= MAX_HANDLES {
            m.clear();
        }
        m.insert(key.clone(), dom);
    }

    /// Drops the handle kept for `key`.
    pub fn forget(&self, key: &DomainKey) {
        lock(&self.by_key).remove(key);
    }

    /// Drops every handle (a pool connection was closed: its handles would
    /// keep it allocated and fail).
    pub fn clear(&self) {
        lock(&self.by_key).clear();
    }
}

/// What [`Facts`] keeps of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The OS type (virDomainGetOSType).
    pub os_type: String,
}

#[derive(Default)]
struct FactsInner {
    live: bool,
    generation: u64,
    by_uuid: HashMap<String, Fact>,
}

/// A host's [`Fact`]s by UUID (see the module doc).
#[derive(Default)]
pub struct Facts {
    inner: Mutex<FactsInner>,
}

/// Taken before reading a fact from libvirt; [`Facts::remember`] keeps the
/// value only if nothing was forgotten since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Facts {
    /// The fact kept for `uuid`.
    pub fn get(&self, uuid: &str) -> Option<Fact> {
        let f = lock(&self.inner);
        if f.live {
            f.by_uuid.get(uuid).cloned()
        } else {
            None
        }
    }

    /// A ticket for a read about to start, or `None` while nothing may be
    /// kept (the host's event connection is down).
    pub fn ticket(&self) -> Option<Ticket> {
        let f = lock(&self.inner);
        f.live.then_some(Ticket(f.generation))
    }

    /// Keeps `fact`, read under `ticket`, unless an event arrived since.
    pub fn remember(&self, ticket: Ticket, uuid: &str, fact: Fact) {
        let mut f = lock(&self.inner);
        if !f.live || f.generation != ticket.0 {
            return;
        }
        if f.by_uuid.len() >= MAX_FACTS {
            f.by_uuid.clear();
        }
        f.by_uuid.insert(uuid.to_owned(), fact);
    }

    /// Forgets what is kept of `uuid` (an event about it arrived) and voids
    /// every ticket taken before.
    pub fn forget(&self, uuid: &str) {
        let mut f = lock(&self.inner);
        f.generation = f.generation.wrapping_add(1);
        f.by_uuid.remove(uuid);
    }

    /// The host's event connection is up (callbacks registered) or down.
    /// Either way everything kept so far is dropped: events may have been
    /// missed while it was down.
    pub fn set_live(&self, live: bool) {
        let mut f = lock(&self.inner);
        f.generation = f.generation.wrapping_add(1);
        f.by_uuid.clear();
        f.live = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(os: &str) -> Fact {
        Fact { os_type: os.into() }
    }

    #[test]
    fn nothing_is_kept_without_a_live_event_connection() {
        let f = Facts::default();
        assert_eq!(f.ticket(), None);
        f.set_live(true);
        let t = f.ticket().unwrap_or(Ticket(u64::MAX));
        f.set_live(false);
        f.remember(t, "u", fact("hvm"));
        assert_eq!(f.get("u"), None);
    }

    #[test]
    fn an_event_during_a_read_voids_its_ticket() {
        let f = Facts::default();
        f.set_live(true);
        let t = f.ticket().unwrap_or(Ticket(u64::MAX));
        f.forget("other");
        f.remember(t, "u", fact("hvm"));
        assert_eq!(f.get("u"), None, "kept a value read across an event");
        let t = f.ticket().unwrap_or(Ticket(u64::MAX));
        f.remember(t, "u", fact("hvm"));
        assert_eq!(f.get("u"), Some(fact("hvm")));
        f.forget("u");
        assert_eq!(f.get("u"), None);
    }

    #[test]
    fn going_down_and_up_forgets_everything() {
        let f = Facts::default();
        f.set_live(true);
        let t = f.ticket().unwrap_or(Ticket(u64::MAX));
        f.remember(t, "u", fact("exe"));
        f.set_live(false);
        f.set_live(true);
        assert_eq!(f.get("u"), None);
    }
}
