//! Prometheus metrics: the registry ([`Metrics`]), the tower layer that
//! counts and times every gRPC call ([`layer`]), and the plain-HTTP endpoint
//! that serves them in the OpenMetrics text format ([`endpoint`]).
//!
//! Off unless `metrics_listen` is set: then [`crate::server::serve`] binds
//! that address, builds one [`Metrics`] and puts [`layer::MetricsLayer`]
//! outermost on the gRPC server, so the codes it sees are the ones the
//! client gets. The registry and exposition are the Prometheus project's
//! own `prometheus-client` crate.
//!
//! Two kinds of metrics:
//! - per call (kept by the layer as calls happen): `libvirt_grpc_requests`,
//!   `libvirt_grpc_request_duration_seconds`, `libvirt_grpc_requests_in_flight`;
//! - read at scrape time from the pools and the event hub, so nothing on
//!   their paths changes for the metrics ([`ServerCollector`]): pool use,
//!   host health, subscribers, events published and lost.
//!
//! Every metric name, its labels and meaning are listed in the README
//! ("Metrics and logs").

use std::{collections::HashMap, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, MetricType},
    registry::Registry,
};

use crate::{
    events::Hub,
    pool::{Health, Hosts, Lane},
};

pub mod endpoint;
pub mod layer;

pub use endpoint::{bind, BindError};
pub use layer::MetricsLayer;

/// The `method` label of calls to a path that is no RPC of this server
/// (unknown paths must not grow the label set).
pub const OTHER_METHOD: &str = "other";

/// Upper bounds (seconds) of the latency histogram's buckets: 1 ms to 5 min.
/// Event streams that stay open longer land in `+Inf`.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Labels of a finished call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    /// `package.Service/Method`, or [`OTHER_METHOD`].
    pub method: &'static str,
    /// The gRPC status code's name, e.g. `NOT_FOUND`.
    pub code: &'static str,
}

/// Labels by method alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabels {
    /// `package.Service/Method`, or [`OTHER_METHOD`].
    pub method: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry and the per-call metrics.
pub struct Metrics {
    registry: Registry,
    /// Every RPC's path (`/package.Service/Method`) -> its label (without
    /// the leading `/`).
    methods: HashMap<&'static str, &'static str>,
    pub(crate) requests: Family<CallLabels, Counter>,
    pub(crate) duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    pub(crate) in_flight: Family<MethodLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the per-call metrics and, when given, the pools'
    /// and the hub's (read at each scrape).
    pub fn new(server: Option<ServerCollector>) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<CallLabels, Counter>::default();
        let duration = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram,
        );
        let in_flight = Family::<MethodLabels, Gauge>::default();
        registry.register(
            "libvirt_grpc_requests",
            "gRPC calls finished, by method and status code",
            requests.clone(),
        );
        registry.register(
            "libvirt_grpc_request_duration_seconds",
            "Time from a call's request headers to the end of its response (the last message and status of a stream), by method",
            duration.clone(),
        );
        registry.register(
            "libvirt_grpc_requests_in_flight",
            "gRPC calls started and not yet finished, by method",
            in_flight.clone(),
        );
        registry.register(
            "libvirt_grpc_build",
            "The server's version and the git revision it was built from",
            prometheus_client::metrics::info::Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", env!("LIBVIRT_GRPC_GIT_REVISION")),
            ]),
        );
        if let Some(c) = server {
            registry.register_collector(Box::new(c));
        }
        let methods = crate::auth::roles::TABLE
            .iter()
            .map(|(path, _)| (*path, path.trim_start_matches('/')))
            .collect();
        Arc::new(Metrics {
            registry,
            methods,
            requests,
            duration,
            in_flight,
        })
    }

    /// The `method` label of a request path: the RPC's full name, or
    /// [`OTHER_METHOD`] for a path that is no RPC of this server.
    pub fn method_label(&self, path: &str) -> &'static str {
        self.methods.get(path).copied().unwrap_or(OTHER_METHOD)
    }

    /// Everything, in the OpenMetrics text format (ending in `# EOF`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The metrics read at scrape time: the pools of every host and the event
/// hub.
#[derive(Debug)]
pub struct ServerCollector {
    hosts: Hosts,
    hub: Arc<Hub>,
}

impl ServerCollector {
    /// Reads `hosts` and `hub` at each scrape.
    pub fn new(hosts: Hosts, hub: Arc<Hub>) -> Self {
        ServerCollector { hosts, hub }
    }
}

fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::Quick => "quick",
        Lane::Slow => "slow",
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Serving => "serving",
        Health::NotServing => "not_serving",
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_event_subscribers",
            "WatchEvents streams attached to the event hub now",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&(self.hub.subscribers() as u64))?;

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_events_published",
            "Events published to the hub since start (all hosts)",
            None,
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, _, u64>(&self.hub.published(), None)?;

        let lost = self.hub.lost();
        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_events_lost",
            "Events subscribers were told they lost (EventsLost), by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("subscriber_too_slow", &lost.too_slow),
            ("left_ring", &lost.left_ring),
            ("epoch_changed", &lost.epoch_changed),
        ] {
            m.encode_family(&[("reason", reason)])?
                .encode_counter::<NoLabelSet, _, u64>(&n.load(Relaxed), None)?;
        }

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_host_up",
            "1 while the host's last open, call or probe succeeded, else 0",
            None,
            MetricType::Gauge,
        )?;
        for p in self.hosts.iter() {
            let up = u64::from(p.health().health == Health::Serving);
            m.encode_family(&[("host", p.name())])?.encode_gauge(&up)?;
        }

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_host_health",
            "The host's health state: 1 for the current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for p in self.hosts.iter() {
            let now = p.health().health;
            for state in [Health::Serving, Health::NotServing, Health::Unknown] {
                m.encode_family(&[("host", p.name()), ("state", health_name(state))])?
                    .encode_gauge(&u64::from(now == state))?;
            }
        }

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_pool_calls_in_flight",
            "libvirt calls holding a permit of the host's lane now (running on the blocking pool)",
            None,
            MetricType::Gauge,
        )?;
        for p in self.hosts.iter() {
            for lane in [Lane::Quick, Lane::Slow] {
                m.encode_family(&[("host", p.name()), ("lane", lane_name(lane))])?
                    .encode_gauge(&(p.lane_in_flight(lane) as u64))?;
            }
        }

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_pool_call_limit",
            "The configured limit of calls in flight per host and lane (max_in_flight, max_slow_in_flight)",
            None,
            MetricType::Gauge,
        )?;
        for p in self.hosts.iter() {
            for lane in [Lane::Quick, Lane::Slow] {
                m.encode_family(&[("host", p.name()), ("lane", lane_name(lane))])?
                    .encode_gauge(&(p.lane_limit(lane) as u64))?;
            }
        }

        let mut m = encoder.encode_descriptor(
            "libvirt_grpc_pool_connections_open",
            "Pool slots holding an open libvirt connection to the host (the event connection not counted)",
            None,
            MetricType::Gauge,
        )?;
        for p in self.hosts.iter() {
            m.encode_family(&[("host", p.name())])?
                .encode_gauge(&(p.open_connections() as u64))?;
        }
        Ok(())
    }
}
