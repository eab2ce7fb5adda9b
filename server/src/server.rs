//! Assembles the gRPC server: services, reflection (v1 and v1alpha), health
//! per host, and graceful shutdown.

use std::{future::Future, time::Duration};

use libvirt_grpc::v1::{
    domain_service_server::DomainServiceServer, event_service_server::EventServiceServer,
    guest_agent_service_server::GuestAgentServiceServer, host_service_server::HostServiceServer,
    network_service_server::NetworkServiceServer, snapshot_service_server::SnapshotServiceServer,
    storage_service_server::StorageServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::{server::HealthReporter, ServingStatus};

use crate::{
    config::Config,
    pool::{Health, HostPool, Hosts},
    services::{
        agent::GuestAgentApi, domain::DomainApi, events::EventApi, host::HostApi,
        network::NetworkApi, snapshot::SnapshotApi, storage::StorageApi,
    },
};

/// Largest message accepted or sent (screenshots and XML can be large).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The health service name of a host: `libvirt_grpc.host.<name>`.
pub fn host_health_service(name: &str) -> String {
    format!("libvirt_grpc.host.{name}")
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reflection could not load the descriptor set.
    #[error("Cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("The gRPC transport failed")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves on `listener` until `shutdown` resolves, then lets open calls end.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let default_timeout = Duration::from_secs(config.default_call_timeout_secs.max(1));
    let hosts = Hosts::new(&config.hosts, default_timeout);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for pool in hosts.iter() {
        tokio::spawn(mirror_health(pool.clone(), reporter.clone()));
        tokio::spawn(probe_loop(pool.clone(), config.health_interval()));
    }
    reporter
        .set_serving::<DomainServiceServer<DomainApi>>()
        .await;
    reporter.set_serving::<HostServiceServer<HostApi>>().await;
    reporter.set_serving::<EventServiceServer<EventApi>>().await;
    reporter
        .set_serving::<StorageServiceServer<StorageApi>>()
        .await;
    reporter
        .set_serving::<GuestAgentServiceServer<GuestAgentApi>>()
        .await;
    reporter
        .set_serving::<NetworkServiceServer<NetworkApi>>()
        .await;
    reporter
        .set_serving::<SnapshotServiceServer<SnapshotApi>>()
        .await;
    let (hub, events_ready) = crate::events::start(&hosts, config.event_ring_size);

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(libvirt_grpc::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ServeError::Reflection)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(libvirt_grpc::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(ServeError::Reflection)?;

    let domain = DomainServiceServer::new(DomainApi::new(hosts.clone()).with_events(hub.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let host = HostServiceServer::new(HostApi::new(hosts.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let storage = StorageServiceServer::new(
        StorageApi::new(hosts.clone())
            .with_allowed_roots(config.allowed_storage_roots.clone())
            .with_stream_idle_timeout(config.stream_idle_timeout()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let network = NetworkServiceServer::new(NetworkApi::new(hosts.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let snapshot = SnapshotServiceServer::new(SnapshotApi::new(hosts.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: ending event streams");
        let _ = stop_tx.send(true);
    };
    let events = EventServiceServer::new(EventApi::new(hosts.clone(), hub, events_ready, stop_rx))
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let agent = GuestAgentServiceServer::new(
        GuestAgentApi::new(hosts.clone()).with_stream_idle_timeout(config.stream_idle_timeout()),
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);

    tracing::info!(addr = ?listener.local_addr().ok(), "serving");
    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(domain)
        .add_service(host)
        .add_service(events)
        .add_service(storage)
        .add_service(agent)
        .add_service(network)
        .add_service(snapshot)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}

/// Accepted connections with Nagle's algorithm off: small streamed
/// messages (events) would otherwise wait up to 40 ms for delayed ACKs.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok(s)
    })
}

/// Keeps the gRPC health status of a host equal to its pool's health.
async fn mirror_health(pool: std::sync::Arc<HostPool>, reporter: HealthReporter) {
    let service = host_health_service(pool.name());
    let mut rx = pool.watch_health();
    loop {
        let status = match rx.borrow_and_update().health {
            Health::Serving => ServingStatus::Serving,
            Health::NotServing => ServingStatus::NotServing,
            Health::Unknown => ServingStatus::Unknown,
        };
        reporter.set_service_status(&service, status).await;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Probes a host now and then, so health (and reconnection) does not wait
/// for a client's call.
async fn probe_loop(pool: std::sync::Arc<HostPool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = pool.probe(every).await {
            tracing::debug!(host = pool.name(), error = %e, "health probe failed");
        }
    }
}
