//! Assembles the gRPC server: services, reflection (v1 and v1alpha), health
//! per host, the transport limits of [`crate::transport`], and graceful
//! shutdown with a deadline.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use libvirt_grpc::v1::{
    block_job_service_server::BlockJobServiceServer, domain_service_server::DomainServiceServer,
    event_service_server::EventServiceServer, guest_agent_service_server::GuestAgentServiceServer,
    host_service_server::HostServiceServer, network_service_server::NetworkServiceServer,
    snapshot_service_server::SnapshotServiceServer, storage_service_server::StorageServiceServer,
};
use tokio::{
    net::{TcpListener, UnixListener},
    sync::watch,
};
use tonic::transport::Server;
use tonic_health::{server::HealthReporter, ServingStatus};

use crate::{
    auth::layer::{AuthLayer, Policy},
    config::{Config, Listen},
    metrics::{Metrics, MetricsLayer, ServerCollector},
    pool::{Health, HostPool, Hosts},
    services::{
        agent::GuestAgentApi, blockjob::BlockJobApi, domain::DomainApi, events::EventApi,
        host::HostApi, network::NetworkApi, snapshot::SnapshotApi, storage::StorageApi,
    },
    transport::{
        self,
        accept::{self, AcceptSettings, ConnLimits},
        status_codes::StatusCodeLayer,
        tls::{Tls, TlsError},
    },
};

/// Applies the message size limits every service shares, so that no
/// service keeps tonic's default (4 MiB in, unlimited out) by accident.
macro_rules! limited {
    ($service:expr, $max:expr) => {
        $service
            .max_decoding_message_size($max)
            .max_encoding_message_size($max)
    };
}

/// How long a forced close may take before `serve` returns anyway.
const FORCED_CLOSE_WAIT: Duration = Duration::from_secs(2);

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
    /// The TLS files could not be used.
    #[error("Cannot set up TLS")]
    Tls(#[source] TlsError),
    /// `[tls]` is set for a Unix socket.
    #[error("TLS is for TCP listeners; a Unix socket is protected by its file mode (0600)")]
    TlsOnUnix,
    /// `host_path_roots` is not a list of absolute directories.
    #[error("Invalid configuration: {0}")]
    Roots(String),
    /// `metrics_listen` could not be bound (the message names it).
    #[error(transparent)]
    Metrics(#[from] crate::metrics::BindError),
}

/// A bound gRPC listener.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix socket (see [`accept::bind_unix`]).
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl Listener {
    /// Binds `at`; the error names the address it could not bind.
    pub async fn bind(at: &Listen) -> Result<Self, std::io::Error> {
        let named = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot listen on {at}: {e}"))
        };
        match at {
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .await
                .map(Listener::Tcp)
                .map_err(named),
            Listen::Unix(path) => accept::bind_unix(path).map(Listener::Unix).map_err(named),
        }
    }

    /// The address it listens on, for the start line.
    pub fn address(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| format!("(unknown: {e})"), |a| a.to_string()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix:(unnamed)".to_owned()),
        }
    }
}

/// [`serve_with_metrics`], with the metrics endpoint on
/// `config.metrics_listen` when that is set (bound here).
pub async fn serve(
    config: &Config,
    listener: impl Into<Listener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let metrics = match config.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    serve_with_metrics(config, listener, metrics, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves, then shuts down within
/// the configured grace period:
///
/// 1. no new connections (the listener closes), HTTP/2 GOAWAY on every
///    open one, and every event stream ends with `UNAVAILABLE` (its client
///    resumes from its last sequence elsewhere or after a restart);
/// 2. calls in flight may finish until `shutdown_grace_secs` have passed;
/// 3. then every connection still open is closed from below (idle ones,
///    ones that never sent a preface, subscribers that stopped reading),
///    and `serve` returns. Blocking libvirt calls may still be running;
///    the binary does not wait for them (see `main.rs`).
///
/// With `metrics` (a bound listener; `config.metrics_listen` is not read
/// here, so a test can bind `127.0.0.1:0` and learn the port), the
/// Prometheus endpoint of [`crate::metrics`] is served on it until this
/// returns, and every call is counted.
pub async fn serve_with_metrics(
    config: &Config,
    listener: impl Into<Listener>,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let listener = listener.into();
    let tls = match &config.tls {
        Some(files) => Some(Tls::load(files).map_err(ServeError::Tls)?),
        None => None,
    };
    if tls.is_some() && matches!(listener, Listener::Unix(_)) {
        return Err(ServeError::TlsOnUnix);
    }
    let policy = Policy::new(config.auth.as_ref());
    if !policy.enabled() {
        tracing::warn!(
            "no [auth] section: every caller that reaches {} is admin, and may do anything libvirtd can as root; on a shared machine, listen on a Unix socket (mode 0600) or configure [auth]",
            listener.address()
        );
    }
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
    reporter
        .set_serving::<BlockJobServiceServer<BlockJobApi>>()
        .await;
    let (hub, events_ready) = crate::events::start(&hosts, config.event_ring_size);
    let (call_metrics, _metrics_endpoint) = match metrics {
        Some(l) => {
            let m = Metrics::new(Some(ServerCollector::new(hosts.clone(), Arc::clone(&hub))));
            (
                Some(Arc::clone(&m)),
                Some(crate::metrics::endpoint::spawn(l, m)),
            )
        }
        None => (None, None),
    };

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

    // Event streams end when this turns true (step 1 above).
    let (streams_stop, streams_stop_rx) = watch::channel(false);
    // Every connection closes when this turns true (step 3 above).
    let (close_all, close_all_rx) = watch::channel(false);
    // tonic's own graceful shutdown (listener, GOAWAY) starts with this.
    let (begin, mut begin_rx) = watch::channel(false);

    let max = config.max_message_bytes;
    let confinement = Arc::new(
        crate::confine::Confinement::new(&config.host_path_roots).map_err(ServeError::Roots)?,
    );
    let storage_api = StorageApi::new(hosts.clone())
        .with_confinement(confinement.clone())
        .with_stream_idle_timeout(config.stream_idle_timeout());
    let agent_api =
        GuestAgentApi::new(hosts.clone()).with_stream_idle_timeout(config.stream_idle_timeout());
    let mut builder = Server::builder();
    if let Some(age) = config.max_connection_age() {
        // No max_connection_age_grace: event streams are meant to outlive
        // any age; GOAWAY only stops new calls on the connection.
        builder = builder.max_connection_age(age);
    }
    let router = builder
        .layer(MetricsLayer::new(call_metrics))
        .layer(StatusCodeLayer)
        .layer(AuthLayer::new(policy))
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_keepalive_interval(config.http2_keepalive_interval())
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout()))
        .add_service(limited!(health_service, max))
        .add_service(limited!(reflection_v1, max))
        .add_service(limited!(reflection_v1alpha, max))
        .add_service(limited!(
            DomainServiceServer::new(
                DomainApi::new(hosts.clone())
                    .with_events(hub.clone())
                    .with_confinement(confinement.clone())
                    .with_stream_stop(streams_stop_rx.clone())
            ),
            max
        ))
        .add_service(limited!(
            HostServiceServer::new(
                HostApi::new(hosts.clone()).with_confinement(confinement.clone())
            ),
            max
        ))
        .add_service(limited!(
            EventServiceServer::new(EventApi::new(
                hosts.clone(),
                hub,
                events_ready,
                streams_stop_rx
            )),
            max
        ))
        .add_service(limited!(StorageServiceServer::new(storage_api), max))
        .add_service(limited!(GuestAgentServiceServer::new(agent_api), max))
        .add_service(limited!(
            NetworkServiceServer::new(
                NetworkApi::new(hosts.clone()).with_confinement(confinement.clone())
            ),
            max
        ))
        .add_service(limited!(
            SnapshotServiceServer::new(
                SnapshotApi::new(hosts.clone()).with_confinement(confinement.clone())
            ),
            max
        ))
        .add_service(limited!(
            BlockJobServiceServer::new(
                BlockJobApi::new(hosts.clone()).with_confinement(confinement)
            ),
            max
        ));

    let limits = ConnLimits::new(
        transport::connection_budget(config.max_connections),
        config.max_connections_per_ip,
    );
    let address = listener.address();
    let settings = AcceptSettings {
        handshake_timeout: config.handshake_timeout(),
        tcp_keepalive: config.tcp_keepalive(),
        close: close_all_rx,
    };
    let stop_accepting = async move {
        let _ = begin_rx.wait_for(|b| *b).await;
    };
    // Always: an unhandled SIGHUP would end the process. The handler is in
    // place before the start line is logged (whoever waits for that line
    // may send a SIGHUP at once).
    let reload = tokio::spawn(reload_on_sighup(sighup(), tls.clone()));
    let serving: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
        match (listener, tls) {
            (Listener::Tcp(l), None) => {
                tracing::info!(addr = %address, transport = "plain text", "listening on {address}");
                let incoming = accept::incoming(l, Arc::clone(&limits), settings);
                Box::pin(router.serve_with_incoming_shutdown(incoming, stop_accepting))
            }
            (Listener::Tcp(l), Some(tls)) => {
                tracing::info!(
                    addr = %address,
                    transport = "tls",
                    mutual = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
                    "listening on {address}"
                );
                let incoming = accept::incoming_tls(l, Arc::clone(&limits), settings, tls);
                Box::pin(router.serve_with_incoming_shutdown(incoming, stop_accepting))
            }
            (Listener::Unix(l), _) => {
                tracing::info!(addr = %address, transport = "unix", "listening on {address}");
                let incoming = accept::incoming_unix(l, Arc::clone(&limits), settings);
                Box::pin(router.serve_with_incoming_shutdown(incoming, stop_accepting))
            }
        };
    let _reload = AbortOnDrop(reload);
    tokio::pin!(serving);
    tokio::select! {
        r = &mut serving => return r.map_err(ServeError::Transport),
        () = shutdown => {}
    }

    let grace = config.shutdown_grace();
    tracing::info!(
        ?grace,
        open_connections = limits.total(),
        "shutting down: no new connections, event streams end, calls in flight may finish"
    );
    let _ = streams_stop.send(true);
    let _ = begin.send(true);
    if let Ok(r) = tokio::time::timeout(grace, &mut serving).await {
        tracing::info!("every connection closed");
        return r.map_err(ServeError::Transport);
    }
    tracing::warn!(
        open_connections = limits.total(),
        "grace period over: closing every remaining connection"
    );
    let _ = close_all.send(true);
    match tokio::time::timeout(FORCED_CLOSE_WAIT, &mut serving).await {
        Ok(r) => r.map_err(ServeError::Transport),
        Err(_) => {
            tracing::warn!(
                open_connections = limits.total(),
                "connections still open after the forced close; stopping anyway"
            );
            Ok(())
        }
    }
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

/// The process's SIGHUP handler, installed now.
fn sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: TLS files will not be reloaded");
            None
        }
    }
}

/// Re-reads the TLS files on every SIGHUP; new handshakes use them, open
/// connections keep theirs. Without TLS a SIGHUP is logged and ignored
/// (rather than ending the process, its default).
async fn reload_on_sighup(hup: Option<tokio::signal::unix::Signal>, tls: Option<Arc<Tls>>) {
    let Some(mut hup) = hup else {
        return;
    };
    while hup.recv().await.is_some() {
        let Some(tls) = &tls else {
            tracing::info!("SIGHUP: no [tls], nothing to reload");
            continue;
        };
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; the previous certificate stays in use")
            }
        }
    }
}

/// Aborts a task when dropped (when `serve` returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
