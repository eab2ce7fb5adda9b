//! Subscription and filtering: each `WatchEvents` stream replays from the
//! [`Hub`]'s ring, then reads live events off the broadcast through its
//! [`Filter`] as tonic polls it (no task or channel of its own), tells a
//! lagging subscriber exactly which range it lost, and ends with
//! `UNAVAILABLE` at server shutdown.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use libvirt_grpc::v1::{self, ObjectType};
use tokio::sync::{broadcast, watch};

use super::{
    convert::Watch,
    hub::{self, Hub},
};
use crate::error::Error;

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

/// A watch stream, as tonic polls it.
pub type EventStream = Pin<Box<dyn Stream<Item = StreamItem> + Send + 'static>>;

/// Subscribes `watch` to the hub and makes its stream; `INVALID_ARGUMENT`
/// (`resume_after`) for a resume point after the newest event of its epoch.
pub fn open(
    hub: &Arc<Hub>,
    request: Watch,
    shutdown: watch::Receiver<bool>,
) -> Result<EventStream, Error> {
    let resume = request.resume.as_ref().map(|(e, s)| (e.as_str(), *s));
    let sub = hub
        .subscribe(resume)
        .ok_or_else(|| Error::invalid("resume_after", "is after the newest event of this epoch"))?;
    Ok(stream(hub, sub, request.filter, shutdown))
}

/// The live part of a stream: its broadcast receiver and filter.
struct Live {
    hub: Arc<Hub>,
    rx: broadcast::Receiver<Arc<v1::Event>>,
    filter: Filter,
    shutdown: watch::Receiver<bool>,
    /// The last sequence received (delivered or filtered out).
    last: u64,
    /// The shutdown status was sent: nothing follows.
    done: bool,
}

impl Live {
    /// The next message of the stream; `None` ends it.
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if self.done {
                return None;
            }
            let next = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => None,
                r = self.rx.recv() => Some(r),
            };
            let Some(next) = next else {
                // Server shutdown: end the stream with UNAVAILABLE, never
                // OK, so the client knows to reconnect and resume. A
                // subscriber that stopped reading never takes this status;
                // its connection is closed at the end of the grace period.
                self.done = true;
                return Some(Err(shutting_down()));
            };
            return Some(Ok(match next {
                Ok(e) => {
                    self.last = e.sequence;
                    if !self.filter.accepts(&e) {
                        continue;
                    }
                    event_msg(&e)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let from = self.last + 1;
                    self.last += n;
                    let l = v1::EventsLost {
                        from_sequence: from,
                        to_sequence: self.last,
                        epoch: self.hub.epoch().to_owned(),
                        reason: v1::LossReason::SubscriberTooSlow as i32,
                    };
                    self.hub.record_lost(&l);
                    lost_msg(l)
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }));
        }
    }
}

/// A subscriber's stream: `started`, what was lost before the replay, the
/// replay, then live events until shutdown. No task and no channel of its
/// own: the transport polls it straight off the broadcast receiver, so an
/// event costs each subscriber one wake-up, a filter check and an encode.
/// A subscriber that stops reading stops being polled (HTTP/2 flow
/// control), falls behind the broadcast, and is told exactly which range
/// it lost when it reads again; it never slows anyone else.
pub fn stream(
    hub: &Arc<Hub>,
    sub: hub::Subscription,
    filter: Filter,
    shutdown: watch::Receiver<bool>,
) -> EventStream {
    let hub::Subscription {
        position,
        lost,
        replay,
        rx,
    } = sub;
    let started = v1::WatchEventsResponse {
        item: Some(v1::watch_events_response::Item::Started(
            v1::WatchStarted::from(&position),
        )),
    };
    let lost = lost.map(|l| {
        hub.record_lost(&l);
        Ok(lost_msg(l))
    });
    let replay_filter = filter.clone();
    let head = std::iter::once(Ok(started)).chain(lost).chain(
        replay
            .into_iter()
            .filter(move |e| replay_filter.accepts(e))
            .map(|e| Ok(event_msg(&e))),
    );
    let live = Live {
        hub: Arc::clone(hub),
        rx,
        filter,
        shutdown,
        last: position.sequence,
        done: false,
    };
    let live = futures::stream::unfold(live, |mut live| async move {
        live.next().await.map(|item| (item, live))
    });
    Box::pin(futures::stream::iter(head).chain(live))
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
        let total = hub::BROADCAST_CAPACITY as u64 * 3 + 64;
        for _ in 0..total {
            hub.publish(v1::Event::default());
        }
        let mut covered = 0u64;
        let mut lost_ranges = 0;
        let mut lost_events = 0;
        while covered < total {
            let msg = tokio::time::timeout(Duration::from_secs(5), rx.next())
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
        let first = rx.next().await.unwrap().unwrap();
        assert!(matches!(
            first.item,
            Some(v1::watch_events_response::Item::Started(_))
        ));
        stop.send(true).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert_eq!(end.message(), SHUTDOWN_MESSAGE);
        assert!(rx.next().await.is_none(), "nothing after the status");
    }
}
