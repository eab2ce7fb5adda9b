//! `EventService`: subscriptions to the event hub.

use std::sync::Arc;

use libvirt_grpc::v1::{self, event_service_server::EventService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    error::Error,
    events::{self, hub::Hub, Filter, StreamItem},
    pool::Hosts,
    validate,
};

/// The EventService implementation.
#[derive(Debug, Clone)]
pub struct EventApi {
    hosts: Hosts,
    hub: Arc<Hub>,
    ready: tokio::sync::watch::Receiver<bool>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl EventApi {
    /// A service over `hub`. Subscriptions wait for `ready` (the hosts'
    /// first event registrations, see [`events::start`]); open streams end
    /// with `UNAVAILABLE` once `shutdown` turns true, and new ones are
    /// refused the same way.
    pub fn new(
        hosts: Hosts,
        hub: Arc<Hub>,
        ready: tokio::sync::watch::Receiver<bool>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        EventApi {
            hosts,
            hub,
            ready,
            shutdown,
        }
    }
}

fn filter(hosts: &Hosts, r: &v1::WatchEventsRequest) -> Result<Filter, Error> {
    for h in &r.hosts {
        hosts.get(h)?;
    }
    for n in &r.names {
        validate::required_text("names", n)?;
    }
    let mut uuids = Vec::new();
    for u in &r.uuids {
        uuids.push(validate::uuid("uuids", u)?);
    }
    for k in &r.kinds {
        match v1::EventKind::try_from(*k) {
            Ok(v1::EventKind::Unspecified) | Err(_) => {
                return Err(Error::invalid("kinds", format!("unknown kind {k}")))
            }
            Ok(_) => {}
        }
    }
    for t in &r.object_types {
        match v1::ObjectType::try_from(*t) {
            Ok(v1::ObjectType::Unspecified) | Err(_) => {
                return Err(Error::invalid("object_types", format!("unknown type {t}")))
            }
            Ok(_) => {}
        }
    }
    Ok(Filter {
        hosts: r.hosts.clone(),
        names: r.names.clone(),
        uuids,
        kinds: r.kinds.clone(),
        object_types: r.object_types.clone(),
    })
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = ReceiverStream<StreamItem>;

    #[tracing::instrument(skip_all)]
    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        if *self.shutdown.borrow() {
            return Err(events::shutting_down());
        }
        let r = req.into_inner();
        let f = filter(&self.hosts, &r)?;
        let resume = match r.resume_after {
            None => None,
            Some(_) if r.epoch.is_empty() => {
                return Err(Error::invalid("epoch", "is required with resume_after").into())
            }
            Some(seq) => Some((r.epoch.as_str(), seq)),
        };
        let mut ready = self.ready.clone();
        // Bounded: a host that hangs on connect must not hold streams back.
        let _ = tokio::time::timeout(events::STARTUP_WAIT, ready.wait_for(|r| *r)).await;
        let sub = self.hub.subscribe(resume).ok_or_else(|| {
            Error::invalid("resume_after", "is after the newest event of this epoch")
        })?;
        Ok(Response::new(ReceiverStream::new(events::stream(
            &self.hub,
            sub,
            f,
            self.shutdown.clone(),
        ))))
    }

    async fn get_event_position(
        &self,
        _req: Request<v1::GetEventPositionRequest>,
    ) -> Result<Response<v1::GetEventPositionResponse>, Status> {
        let p = self.hub.position();
        Ok(Response::new(v1::GetEventPositionResponse {
            epoch: p.epoch,
            sequence: p.sequence,
            oldest_sequence: p.oldest,
        }))
    }
}
