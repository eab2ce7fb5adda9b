//! `EventService`: each handler validates its request
//! ([`events::convert::watch_request`]), subscribes to the event hub and
//! hands its stream to tonic. Everything else (sources, reconciliation,
//! conversion, filtering) lives in [`crate::events`].

use std::sync::Arc;

use libvirt_grpc::v1::{self, event_service_server::EventService};
use tonic::{Request, Response, Status};

use crate::{
    events::{self, convert, hub::Hub, EventStream},
    pool::Hosts,
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

impl EventApi {
    /// Waits until every host's first event registration is made (or
    /// failed), at most `STARTUP_WAIT`: a host that hangs on connect must
    /// not hold callers back.
    async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = tokio::time::timeout(events::STARTUP_WAIT, ready.wait_for(|r| *r)).await;
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = EventStream;

    #[tracing::instrument(skip_all)]
    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        if *self.shutdown.borrow() {
            return Err(events::shutting_down());
        }
        let watch = convert::watch_request(&self.hosts, req.into_inner())?;
        self.wait_ready().await;
        let stream = events::subscriber::open(&self.hub, watch, self.shutdown.clone())?;
        Ok(Response::new(stream))
    }

    async fn get_event_position(
        &self,
        _req: Request<v1::GetEventPositionRequest>,
    ) -> Result<Response<v1::GetEventPositionResponse>, Status> {
        // A position taken before the hosts' callbacks are registered would
        // promise events for changes libvirt announces to nobody.
        self.wait_ready().await;
        Ok(Response::new(self.hub.position().into()))
    }
}
