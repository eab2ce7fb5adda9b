//! The ring buffer of recent events and the broadcast to subscribers.
//!
//! `publish` assigns the sequence, stores the event in the ring and sends it
//! on the broadcast channel, all under one lock; `subscribe` takes the same
//! lock to copy the replay out of the ring and to subscribe to the broadcast,
//! so a subscriber sees every event after its resume point exactly once.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use libvirt_grpc::v1;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind the newest before it is told it lost
/// some: the capacity of the shared broadcast channel. Memory is bounded by
/// this (shared by all subscribers) plus each stream's own small buffer.
pub const BROADCAST_CAPACITY: usize = 1024;

struct Ring {
    events: VecDeque<Arc<v1::Event>>,
    last: u64,
}

/// The hub: sequence numbers, ring and fan-out.
pub struct Hub {
    epoch: String,
    capacity: usize,
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<v1::Event>>,
    lost: LostCounts,
}

/// Events subscribers were told they lost, since start, by reason (for the
/// metrics): each `EventsLost` a subscriber gets adds its range's size.
#[derive(Debug, Default)]
pub struct LostCounts {
    /// The subscriber fell too far behind the broadcast.
    pub too_slow: AtomicU64,
    /// The resume point had left the ring.
    pub left_ring: AtomicU64,
    /// The resume point was of another epoch (a restart).
    pub epoch_changed: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Where a new subscriber starts.
#[derive(Debug)]
pub struct Subscription {
    /// The current position when subscribing.
    pub position: Position,
    /// Events lost before the replay (resume point too old, or another
    /// epoch).
    pub lost: Option<v1::EventsLost>,
    /// Events to replay, oldest first.
    pub replay: Vec<Arc<v1::Event>>,
    /// Live events after the replay.
    pub rx: broadcast::Receiver<Arc<v1::Event>>,
}

/// The hub's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The epoch.
    pub epoch: String,
    /// The last sequence assigned (0 if none).
    pub sequence: u64,
    /// The oldest sequence in the ring (0 if empty).
    pub oldest: u64,
}

impl Hub {
    /// A hub keeping the last `capacity` events, with a fresh epoch.
    pub fn new(capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Arc::new(Hub {
            epoch: uuid::Uuid::new_v4().to_string(),
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                last: 0,
            }),
            tx,
            lost: LostCounts::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // The ring stays consistent across a panic (push and pop only).
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Subscribers currently attached.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events published since start (the last sequence assigned).
    pub fn published(&self) -> u64 {
        self.lock().last
    }

    /// Events subscribers were told they lost, by reason.
    pub fn lost(&self) -> &LostCounts {
        &self.lost
    }

    /// Counts the events of an `EventsLost` a subscriber is sent.
    pub fn record_lost(&self, l: &v1::EventsLost) {
        let n = if l.to_sequence >= l.from_sequence && l.to_sequence > 0 {
            l.to_sequence - l.from_sequence + 1
        } else {
            0
        };
        let counter = match l.reason() {
            v1::LossReason::LeftRing => &self.lost.left_ring,
            v1::LossReason::EpochChanged => &self.lost.epoch_changed,
            _ => &self.lost.too_slow,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn position_of(&self, ring: &Ring) -> Position {
        Position {
            epoch: self.epoch.clone(),
            sequence: ring.last,
            oldest: ring.events.front().map(|e| e.sequence).unwrap_or(0),
        }
    }

    /// The current position.
    pub fn position(&self) -> Position {
        let ring = self.lock();
        self.position_of(&ring)
    }

    /// Assigns the next sequence to `event`, keeps it and sends it out.
    pub fn publish(&self, mut event: v1::Event) -> Arc<v1::Event> {
        let mut ring = self.lock();
        ring.last += 1;
        event.sequence = ring.last;
        event.epoch = self.epoch.clone();
        let event = Arc::new(event);
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // No receivers is fine: the ring keeps it for later resumes.
        let _ = self.tx.send(Arc::clone(&event));
        event
    }

    /// Subscribes; with `resume`, replays what came after that
    /// `(epoch, sequence)` and reports what cannot be replayed.
    /// A resume point in the future of this epoch is answered with `None`.
    pub fn subscribe(&self, resume: Option<(&str, u64)>) -> Option<Subscription> {
        let ring = self.lock();
        let rx = self.tx.subscribe();
        let position = self.position_of(&ring);
        let mut lost = None;
        let mut replay = Vec::new();
        match resume {
            None => {}
            Some((epoch, _)) if epoch != self.epoch => {
                if ring.last > 0 {
                    lost = Some(v1::EventsLost {
                        from_sequence: 1,
                        to_sequence: ring.last,
                        epoch: self.epoch.clone(),
                        reason: v1::LossReason::EpochChanged as i32,
                    });
                } else {
                    lost = Some(v1::EventsLost {
                        from_sequence: 0,
                        to_sequence: 0,
                        epoch: self.epoch.clone(),
                        reason: v1::LossReason::EpochChanged as i32,
                    });
                }
            }
            Some((_, after)) if after > ring.last => return None,
            Some((_, after)) => {
                let oldest = position.oldest;
                if after < ring.last && oldest > after + 1 {
                    lost = Some(v1::EventsLost {
                        from_sequence: after + 1,
                        to_sequence: oldest - 1,
                        epoch: self.epoch.clone(),
                        reason: v1::LossReason::LeftRing as i32,
                    });
                }
                replay = ring
                    .events
                    .iter()
                    .filter(|e| e.sequence > after)
                    .cloned()
                    .collect();
            }
        }
        Some(Subscription {
            position,
            lost,
            replay,
            rx,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(name: &str) -> v1::Event {
        v1::Event {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Another epoch before any event: a loss of "0 to 0", as documented.
    #[test]
    fn another_epoch_on_an_empty_hub_loses_nothing_numbered() {
        let hub = Hub::new(3);
        let lost = hub.subscribe(Some(("other", 5))).unwrap().lost.unwrap();
        assert_eq!(
            (lost.from_sequence, lost.to_sequence, lost.reason()),
            (0, 0, v1::LossReason::EpochChanged)
        );
        hub.publish(ev("a"));
        let lost = hub.subscribe(Some(("other", 5))).unwrap().lost.unwrap();
        assert_eq!((lost.from_sequence, lost.to_sequence), (1, 1));
    }

    #[test]
    fn sequences_ring_and_resume() {
        let hub = Hub::new(3);
        for i in 0..5 {
            hub.publish(ev(&format!("e{i}")));
        }
        let p = hub.position();
        assert_eq!((p.sequence, p.oldest), (5, 3));
        let s = hub.subscribe(Some((hub.epoch(), 3))).unwrap();
        assert!(s.lost.is_none());
        assert_eq!(
            s.replay.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![4, 5]
        );
        let s = hub.subscribe(Some((hub.epoch(), 0))).unwrap();
        let lost = s.lost.unwrap();
        assert_eq!((lost.from_sequence, lost.to_sequence), (1, 2));
        assert_eq!(s.replay.len(), 3);
        let s = hub.subscribe(Some(("other", 2))).unwrap();
        assert_eq!(s.lost.unwrap().reason, v1::LossReason::EpochChanged as i32);
        assert!(hub.subscribe(Some((hub.epoch(), 6))).is_none());
    }

    /// `record_lost` adds each range's size under its reason; "0 to 0"
    /// (another epoch before any event) adds nothing.
    #[test]
    fn lost_events_are_counted_by_reason() {
        use std::sync::atomic::Ordering::Relaxed;
        let hub = Hub::new(3);
        let lost = |from, to, reason: v1::LossReason| v1::EventsLost {
            from_sequence: from,
            to_sequence: to,
            epoch: String::new(),
            reason: reason as i32,
        };
        hub.record_lost(&lost(1, 2, v1::LossReason::LeftRing));
        hub.record_lost(&lost(5, 5, v1::LossReason::LeftRing));
        hub.record_lost(&lost(0, 0, v1::LossReason::EpochChanged));
        hub.record_lost(&lost(1, 4, v1::LossReason::EpochChanged));
        hub.record_lost(&lost(10, 19, v1::LossReason::SubscriberTooSlow));
        let l = hub.lost();
        assert_eq!(
            (
                l.left_ring.load(Relaxed),
                l.epoch_changed.load(Relaxed),
                l.too_slow.load(Relaxed)
            ),
            (3, 4, 10)
        );
        assert_eq!(hub.published(), 0);
        hub.publish(ev("a"));
        assert_eq!(hub.published(), 1);
    }
}
