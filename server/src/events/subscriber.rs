//! Subscription and filtering: each `WatchEvents` stream is one task that
//! replays from the [`Hub`]'s ring, then forwards live events through its
//! [`Filter`] into a small bounded channel towards tonic, tells a lagging
//! subscriber exactly which range it lost, and ends with `UNAVAILABLE` at
//! server shutdown.

use std::sync::Arc;

use libvirt_grpc::v1::{self, ObjectType};
use tokio::sync::{broadcast, mpsc, watch};

use super::{
    convert::Watch,
    hub::{self, Hub},
};
use crate::error::Error;

/// Messages buffered per stream between its task and the transport.
const STREAM_BUFFER: usize = 64;

/// A subscriber's server-side filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Hosts (empty: all).
    pub hosts: Vec<String>,
    /// Object names (empty: all).
    pub names: Vec<String>,
    /// Object UUIDs (empty: all).
    pub uuids: Vec<String>,
    /// Kinds (empty: all).
    pub kinds: Vec<i32>,
    /// Object types (empty: all).
    pub object_types: Vec<i32>,
}

impl Filter {
    /// Whether `e` passes. Host connectivity events pass every filter but
    /// the host filter.
    pub fn accepts(&self, e: &v1::Event) -> bool {
        if !self.hosts.is_empty() && !self.hosts.contains(&e.host) {
            return false;
        }
        if e.object_type == ObjectType::Host as i32 {
            return true;
        }
        (self.names.is_empty() || self.names.contains(&e.name))
            && (self.uuids.is_empty() || self.uuids.contains(&e.uuid))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && (self.object_types.is_empty() || self.object_types.contains(&e.object_type))
    }
}

fn event_msg(e: &v1::Event) -> v1::WatchEventsResponse {
    v1::WatchEventsResponse {
        item: Some(v1::watch_events_response::Item::Event(e.clone())),
    }
}

fn lost_msg(l: v1::EventsLost) -> v1::WatchEventsResponse {
    v1::WatchEventsResponse {
        item: Some(v1::watch_events_response::Item::EventsLost(l)),
    }
}

pub use crate::error::SHUTDOWN_MESSAGE;

/// The status that ends every watch stream at server shutdown.
pub fn shutting_down() -> tonic::Status {
    crate::error::Error::ShuttingDown.into()
}

/// The item type of a watch stream.
pub type StreamItem = Result<v1::WatchEventsResponse, tonic::Status>;

/// Subscribes `watch` to the hub and starts its stream; `INVALID_ARGUMENT`
/// (`resume_after`) for a resume point after the newest event of its epoch.
pub fn open(
    hub: &Arc<Hub>,
    request: Watch,
    shutdown: watch::Receiver<bool>,
) -> Result<mpsc::Receiver<StreamItem>, Error> {
    let resume = request.resume.as_ref().map(|(e, s)| (e.as_str(), *s));
    let sub = hub
        .subscribe(resume)
        .ok_or_else(|| Error::invalid("resume_after", "is after the newest event of this epoch"))?;
    Ok(stream(hub, sub, request.filter, shutdown))
}

/// Starts a subscriber's task; the receiver is the gRPC response stream.
pub fn stream(
    hub: &Arc<Hub>,
    sub: hub::Subscription,
    filter: Filter,
    mut shutdown: watch::Receiver<bool>,
) -> mpsc::Receiver<StreamItem> {
    let (tx, out) = mpsc::channel::<StreamItem>(STREAM_BUFFER);
    let hub = Arc::clone(hub);
    tokio::spawn(async move {
        let hub::Subscription {
            position,
            lost,
            replay,
            mut rx,
        } = sub;
        let started = v1::WatchEventsResponse {
            item: Some(v1::watch_events_response::Item::Started(
                v1::WatchStarted::from(&position),
            )),
        };
        if tx.send(Ok(started)).await.is_err() {
            return;
        }
        if let Some(l) = lost {
            hub.record_lost(&l);
            if tx.send(Ok(lost_msg(l))).await.is_err() {
                return;
            }
        }
        for e in replay.iter().filter(|e| filter.accepts(e)) {
            if tx.send(Ok(event_msg(e))).await.is_err() {
                return;
            }
        }
        drop(replay);
        let mut last = position.sequence;
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => None,
                _ = tx.closed() => return,
                r = rx.recv() => Some(r),
            };
            let Some(next) = next else {
                // Server shutdown: end the stream with UNAVAILABLE, never
                // OK, so the client knows to reconnect and resume. A
                // subscriber that stopped reading never takes this status;
                // its connection is closed at the end of the grace period,
                // which ends this send too.
                tokio::select! {
                    _ = tx.send(Err(shutting_down())) => {}
                    _ = tx.closed() => {}
                }
                return;
            };
            let msg = match next {
                Ok(e) => {
                    last = e.sequence;
                    if !filter.accepts(&e) {
                        continue;
                    }
                    event_msg(&e)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let from = last + 1;
                    last += n;
                    let l = v1::EventsLost {
                        from_sequence: from,
                        to_sequence: last,
                        epoch: hub.epoch().to_owned(),
                        reason: v1::LossReason::SubscriberTooSlow as i32,
                    };
                    hub.record_lost(&l);
                    lost_msg(l)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    /// Host connectivity events pass every axis but `hosts`; other events
    /// must pass every non-empty axis.
    #[test]
    fn host_events_pass_all_but_the_host_filter() {
        let host_event = v1::Event {
            host: "a".into(),
            object_type: ObjectType::Host as i32,
            kind: v1::EventKind::HostDisconnected as i32,
            ..Default::default()
        };
        let narrow = Filter {
            names: vec!["vm".into()],
            uuids: vec!["u".into()],
            kinds: vec![v1::EventKind::Lifecycle as i32],
            object_types: vec![ObjectType::Domain as i32],
            ..Default::default()
        };
        assert!(narrow.accepts(&host_event));
        let other_host = Filter {
            hosts: vec!["b".into()],
            ..Default::default()
        };
        assert!(!other_host.accepts(&host_event));
        let domain_event = v1::Event {
            host: "a".into(),
            name: "vm".into(),
            uuid: "u".into(),
            object_type: ObjectType::Domain as i32,
            kind: v1::EventKind::Reboot as i32,
            ..Default::default()
        };
        assert!(!narrow.accepts(&domain_event), "kind filtered out");
        assert!(Filter::default().accepts(&domain_event));
    }

    /// A subscriber that does not read is told exactly which range it lost,
    /// and every sequence is either delivered or inside a reported range.
    #[tokio::test]
    async fn slow_subscriber_is_told_what_it_lost() {
        let hub = Hub::new(16);
        let sub = hub.subscribe(None).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let mut rx = stream(&hub, sub, Filter::default(), shutdown);
        let total = (hub::BROADCAST_CAPACITY + STREAM_BUFFER) as u64 * 3;
        for _ in 0..total {
            hub.publish(v1::Event::default());
        }
        let mut covered = 0u64;
        let mut lost_ranges = 0;
        let mut lost_events = 0;
        while covered < total {
            let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match msg.item.unwrap() {
                v1::watch_events_response::Item::Started(s) => assert_eq!(s.sequence, 0),
                v1::watch_events_response::Item::Event(e) => {
                    assert_eq!(e.sequence, covered + 1);
                    covered = e.sequence;
                }
                v1::watch_events_response::Item::EventsLost(l) => {
                    assert_eq!(l.reason(), v1::LossReason::SubscriberTooSlow);
                    assert_eq!(l.from_sequence, covered + 1);
                    lost_events += l.to_sequence - l.from_sequence + 1;
                    covered = l.to_sequence;
                    lost_ranges += 1;
                }
            }
        }
        assert!(lost_ranges >= 1);
        assert_eq!(covered, total);
        // The metrics count exactly what the subscriber was told it lost.
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(hub.lost().too_slow.load(Relaxed), lost_events);
        assert_eq!(hub.published(), total);
    }

    /// Shutdown ends a stream with UNAVAILABLE, never a clean end.
    #[tokio::test]
    async fn shutdown_ends_streams_unavailable() {
        let hub = Hub::new(16);
        let sub = hub.subscribe(None).unwrap();
        let (stop, shutdown) = watch::channel(false);
        let mut rx = stream(&hub, sub, Filter::default(), shutdown);
        let first = rx.recv().await.unwrap().unwrap();
        assert!(matches!(
            first.item,
            Some(v1::watch_events_response::Item::Started(_))
        ));
        stop.send(true).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert_eq!(end.message(), SHUTDOWN_MESSAGE);
        assert!(rx.recv().await.is_none(), "nothing after the status");
    }
}
