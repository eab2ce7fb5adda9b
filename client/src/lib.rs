//! A typed Rust client for libvirt-grpc.
//!
//! ```no_run
//! # async fn demo() -> Result<(), libvirt_grpc_client::ClientError> {
//! use std::time::Duration;
//! let client = libvirt_grpc_client::Client::connect("http://127.0.0.1:50051")
//!     .await?
//!     .with_timeout(Duration::from_secs(10));
//! for d in client.list_domains().await? {
//!     println!("{} {:?}", d.name, d.state());
//! }
//! # Ok(()) }
//! ```
//!
//! [`Client`] holds one HTTP/2 channel (cheap to clone) plus a default host
//! and a per-call deadline that every request carries as `grpc-timeout`;
//! [`Client::builder`] sets timeouts, keepalive, TLS and a bearer token.
//! Handles shaped like libvirt's bindings make one call per method:
//! [`Client::domain`] ([`DomainHandle`]), [`Client::snapshot`],
//! [`Client::pool`] and [`PoolHandle::volume`], [`Client::network`],
//! [`Client::agent`], [`Client::host`]. The file helpers
//! ([`Client::upload_volume`], [`Client::download_volume`],
//! [`Client::read_guest_file`], [`Client::write_guest_file`],
//! [`Client::screenshot_to_file`]) report [`Progress`] and check SHA-256;
//! [`Client::exec`] streams a guest command's output. Failures are typed
//! ([`ClientError`]). The generated stubs of every service are reachable
//! too ([`Client::domains`], [`Client::storage`], [`Client::agents`], ...),
//! each with 64 MiB message limits and the token.
#![forbid(unsafe_code)]

mod agent;
mod connect;
mod error;
mod exec;
mod files;
mod handle;
mod host;
mod network;
mod snapshot;
mod storage;
pub use agent::AgentHandle;
pub use connect::{BearerToken, ClientBuilder};
pub use error::{ClientError, ErrorDetails, FieldViolation};
pub use exec::{ExecExit, ExecOutput, ExecResult, ExecStream};
pub use files::{DownloadOptions, Progress, Transfer, UploadOptions, VolumeUpload};
pub use handle::DomainHandle;
pub use host::HostHandle;
pub use network::NetworkHandle;
pub use snapshot::SnapshotHandle;
pub use storage::{PoolHandle, VolumeHandle};

use std::time::Duration;

pub use libvirt_grpc::v1;
use libvirt_grpc::v1::{
    domain_ref::Key, domain_service_client::DomainServiceClient,
    event_service_client::EventServiceClient, host_service_client::HostServiceClient, DomainRef,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel, Request, Status};

/// The most bytes one message may have in either direction on every stub
/// (the server's own limit is the same by default).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The service every stub calls through: the channel, with the client's
/// bearer token put on each request.
pub type Transport = InterceptedService<Channel, BearerToken>;

/// A connection to one libvirt-grpc server.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    token: BearerToken,
    default_host: String,
    timeout: Option<Duration>,
    read_retries: u32,
}

/// Applies the message limits to a generated stub.
macro_rules! stub {
    ($client:ident, $self:ident) => {
        $client::with_interceptor($self.channel.clone(), $self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

impl Client {
    /// Connects to `url`, e.g. `http://127.0.0.1:50051`, with the
    /// [`ClientBuilder`]'s defaults.
    pub async fn connect(url: impl Into<String>) -> Result<Self, ClientError> {
        Client::builder(url).connect().await
    }

    /// Settings for a connection to `url` (timeouts, keepalive, TLS, a
    /// bearer token); see [`ClientBuilder`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// Wraps an existing channel (no token, no deadline).
    pub fn from_channel(channel: Channel) -> Self {
        Client {
            channel,
            token: BearerToken::none(),
            default_host: String::new(),
            timeout: None,
            read_retries: 0,
        }
    }

    /// The same client, sending this bearer token on every call.
    pub fn with_bearer_token(mut self, token: &str) -> Result<Self, ClientError> {
        self.token = BearerToken::new(token)?;
        Ok(self)
    }

    /// Retries reads up to `n` times when they answer `UNAVAILABLE` (the
    /// server or the host is away), and nothing else: not `INTERNAL` (a
    /// server bug a retry would only repeat), not `DEADLINE_EXCEEDED`.
    /// Reads are the `list_*` / `get_domain` methods and every handle's
    /// `info`, `xml`, listings and `stats`. Before retry `k` (0-based) the
    /// client waits [`retry_delay`]`(k, RetryInfo)`: exponential from
    /// 100 ms up to 5 s, never less than the server's `RetryInfo` delay,
    /// plus up to a quarter more of random jitter. Changes are never
    /// retried: one that timed out may have happened.
    pub fn with_read_retries(mut self, n: u32) -> Self {
        self.read_retries = n;
        self
    }

    /// Runs the read `call`, retrying it as [`with_read_retries`] says.
    ///
    /// [`with_read_retries`]: Self::with_read_retries
    async fn read<T, F, Fut>(&self, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(ClientError::Unavailable(d)) if attempt < self.read_retries => {
                    tokio::time::sleep(retry_delay(attempt, d.retry_after)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends requests to `host` unless a request names another one. Empty
    /// (the default) means the server's default host.
    pub fn with_default_host(mut self, host: impl Into<String>) -> Self {
        self.default_host = host.into();
        self
    }

    /// Gives every call this deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The default host requests are sent to.
    pub fn default_host(&self) -> &str {
        &self.default_host
    }

    /// The underlying channel, for services this crate has no stub for
    /// (it does not add the bearer token: use [`transport`](Self::transport)
    /// for that).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The channel with the client's bearer token on every request, for
    /// services this crate has no stub for.
    pub fn transport(&self) -> Transport {
        InterceptedService::new(self.channel.clone(), self.token.clone())
    }

    /// Wraps a message into a request carrying the client's deadline.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Some(t) = self.timeout {
            req.set_timeout(t);
        }
        req
    }

    /// The generated `DomainService` stub.
    pub fn domains(&self) -> DomainServiceClient<Transport> {
        stub!(DomainServiceClient, self)
    }

    /// The generated `HostService` stub.
    pub fn hosts(&self) -> HostServiceClient<Transport> {
        stub!(HostServiceClient, self)
    }

    /// The generated `EventService` stub.
    pub fn events(&self) -> EventServiceClient<Transport> {
        stub!(EventServiceClient, self)
    }

    /// Watches events with `filter` and resumes by itself after a dropped
    /// stream (`UNAVAILABLE`, `CANCELLED`, `DEADLINE_EXCEEDED`, or a clean
    /// end): it reopens (after [`retry_delay`], growing until an event
    /// arrives again, at least the server's `RetryInfo`) from the last sequence it
    /// delivered, so the caller sees every event once, or an explicit
    /// `events_lost` when the server could not replay. Every (re)opened
    /// stream starts with a `started` message. The stream ends only when
    /// the server rejects the request (e.g. INVALID_ARGUMENT), which is
    /// delivered as the last item, or when the receiver is dropped.
    pub fn watch(
        &self,
        filter: v1::WatchEventsRequest,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<v1::WatchEventsResponse, ClientError>> {
        use tokio_stream::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move {
            let mut resume: Option<(String, u64)> =
                filter.resume_after.map(|s| (filter.epoch.clone(), s));
            // Consecutive failed (re)opens; only a delivered event resets
            // it, so a server that accepts and then fails at once is not
            // reopened in a tight loop.
            let mut attempt = 0u32;
            loop {
                let mut req = filter.clone();
                if let Some((epoch, seq)) = &resume {
                    req.epoch = epoch.clone();
                    req.resume_after = Some(*seq);
                }
                let mut stream = match client.events().watch_events(req).await {
                    Ok(s) => s.into_inner(),
                    Err(st) if is_retryable(&st) => {
                        let after = ErrorDetails::of(&st).retry_after;
                        tokio::time::sleep(retry_delay(attempt, after)).await;
                        attempt = attempt.saturating_add(1);
                        continue;
                    }
                    Err(st) => {
                        let _ = tx.send(Err(st.into())).await;
                        return;
                    }
                };
                while let Some(item) = stream.next().await {
                    let msg = match item {
                        Ok(m) => m,
                        Err(st) if is_retryable(&st) => break,
                        // A server bug or a refusal: retrying would only
                        // repeat it; the caller hears it and the stream ends.
                        Err(st) => {
                            let _ = tx.send(Err(st.into())).await;
                            return;
                        }
                    };
                    match &msg.item {
                        Some(v1::watch_events_response::Item::Started(s)) if resume.is_none() => {
                            resume = Some((s.epoch.clone(), s.sequence));
                        }
                        Some(v1::watch_events_response::Item::Event(e)) => {
                            resume = Some((e.epoch.clone(), e.sequence));
                            attempt = 0;
                        }
                        Some(v1::watch_events_response::Item::EventsLost(l)) => {
                            let last = match &resume {
                                Some((epoch, seq)) if *epoch == l.epoch => {
                                    (*seq).max(l.to_sequence)
                                }
                                _ => l.to_sequence,
                            };
                            resume = Some((l.epoch.clone(), last));
                        }
                        _ => {}
                    }
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(retry_delay(attempt, None)).await;
                attempt = attempt.saturating_add(1);
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// The generated `StorageService` stub.
    pub fn storage(&self) -> v1::storage_service_client::StorageServiceClient<Transport> {
        use v1::storage_service_client::StorageServiceClient;
        stub!(StorageServiceClient, self)
    }

    /// The generated `GuestAgentService` stub.
    pub fn agents(&self) -> v1::guest_agent_service_client::GuestAgentServiceClient<Transport> {
        use v1::guest_agent_service_client::GuestAgentServiceClient;
        stub!(GuestAgentServiceClient, self)
    }

    /// The generated `NetworkService` stub.
    pub fn networks(&self) -> v1::network_service_client::NetworkServiceClient<Transport> {
        use v1::network_service_client::NetworkServiceClient;
        stub!(NetworkServiceClient, self)
    }

    /// The generated `SnapshotService` stub.
    pub fn snapshots(&self) -> v1::snapshot_service_client::SnapshotServiceClient<Transport> {
        use v1::snapshot_service_client::SnapshotServiceClient;
        stub!(SnapshotServiceClient, self)
    }

    /// The generated `BlockJobService` stub.
    pub fn block_jobs(&self) -> v1::block_job_service_client::BlockJobServiceClient<Transport> {
        use v1::block_job_service_client::BlockJobServiceClient;
        stub!(BlockJobServiceClient, self)
    }

    /// A handle on the domain `name` of the default host, with libvirt's
    /// verbs as methods (`client.domain("web1").start().await?`).
    pub fn domain(&self, name: impl Into<String>) -> DomainHandle {
        DomainHandle::new(self.clone(), Key::Name(name.into()))
    }

    /// A handle on the domain with this UUID (canonical textual form).
    pub fn domain_by_uuid(&self, uuid: impl Into<String>) -> DomainHandle {
        DomainHandle::new(self.clone(), Key::Uuid(uuid.into()))
    }

    /// A handle on the running domain with this numeric id.
    pub fn domain_by_id(&self, id: u32) -> DomainHandle {
        DomainHandle::new(self.clone(), Key::Id(id))
    }

    /// A handle on the snapshot `name` of the domain `domain`.
    pub fn snapshot(&self, domain: impl Into<String>, name: impl Into<String>) -> SnapshotHandle {
        self.domain(domain).snapshot(name)
    }

    /// A handle on the guest agent of the domain `domain`.
    pub fn agent(&self, domain: impl Into<String>) -> AgentHandle {
        self.domain(domain).agent()
    }

    /// A handle on the storage pool `name` of the default host.
    pub fn pool(&self, name: impl Into<String>) -> PoolHandle {
        PoolHandle::new(self.clone(), name.into())
    }

    /// A handle on the network `name` of the default host.
    pub fn network(&self, name: impl Into<String>) -> NetworkHandle {
        NetworkHandle::new(self.clone(), name.into())
    }

    /// A handle on the configured host `name` (empty: the server's
    /// default host); its domain, pool and network handles address it.
    pub fn host(&self, name: impl Into<String>) -> HostHandle {
        HostHandle::new(self.clone(), name.into())
    }

    /// The hosts the server is configured with, and their health.
    pub async fn list_hosts(&self) -> Result<Vec<v1::Host>, ClientError> {
        self.read(|| async {
            Ok(self
                .hosts()
                .list_hosts(self.request(v1::ListHostsRequest {}))
                .await?
                .into_inner()
                .hosts)
        })
        .await
    }

    /// Every storage pool of the default host, following pages.
    pub async fn list_pools(&self) -> Result<Vec<v1::StoragePool>, ClientError> {
        self.read(|| async {
            let mut out = Vec::new();
            let mut page_token = String::new();
            loop {
                let resp = self
                    .storage()
                    .list_storage_pools(self.request(v1::ListStoragePoolsRequest {
                        host: self.default_host.clone(),
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                out.extend(resp.pools);
                if resp.next_page_token.is_empty() {
                    return Ok(out);
                }
                page_token = resp.next_page_token;
            }
        })
        .await
    }

    /// Every network of the default host, following pages.
    pub async fn list_networks(&self) -> Result<Vec<v1::Network>, ClientError> {
        self.read(|| async {
            let mut out = Vec::new();
            let mut page_token = String::new();
            loop {
                let resp = self
                    .networks()
                    .list_networks(self.request(v1::ListNetworksRequest {
                        host: self.default_host.clone(),
                        page_token,
                        ..Default::default()
                    }))
                    .await?
                    .into_inner();
                out.extend(resp.networks);
                if resp.next_page_token.is_empty() {
                    return Ok(out);
                }
                page_token = resp.next_page_token;
            }
        })
        .await
    }

    /// Defines (or redefines) a persistent domain from libvirt XML on the
    /// default host, without starting it.
    pub async fn define_domain_xml(
        &self,
        xml: impl Into<String>,
    ) -> Result<v1::Domain, ClientError> {
        let resp = self
            .domains()
            .define_domain(self.request(v1::DefineDomainRequest {
                host: self.default_host.clone(),
                source: Some(v1::define_domain_request::Source::Xml(xml.into())),
                validate: false,
            }))
            .await?
            .into_inner();
        required(resp.domain, "domain")
    }

    /// Creates and starts a transient domain from a spec on the default
    /// host (it vanishes when it stops); a name already defined is
    /// `AlreadyExists`.
    pub async fn create_domain(&self, spec: v1::DomainSpec) -> Result<v1::Domain, ClientError> {
        self.create_domain_from(v1::create_domain_request::Source::Spec(spec))
            .await
    }

    /// Creates and starts a transient domain from libvirt XML.
    pub async fn create_domain_xml(
        &self,
        xml: impl Into<String>,
    ) -> Result<v1::Domain, ClientError> {
        self.create_domain_from(v1::create_domain_request::Source::Xml(xml.into()))
            .await
    }

    async fn create_domain_from(
        &self,
        source: v1::create_domain_request::Source,
    ) -> Result<v1::Domain, ClientError> {
        let resp = self
            .domains()
            .create_domain(self.request(v1::CreateDomainRequest {
                host: self.default_host.clone(),
                source: Some(source),
                start_paused: false,
                autodestroy: false,
            }))
            .await?
            .into_inner();
        required(resp.domain, "domain")
    }

    /// A reference to the domain `name` on the default host.
    pub fn domain_ref(&self, name: &str) -> DomainRef {
        DomainRef {
            host: self.default_host.clone(),
            key: Some(Key::Name(name.to_owned())),
        }
    }

    /// Every domain of the default host, following pages.
    pub async fn list_domains(&self) -> Result<Vec<v1::Domain>, ClientError> {
        self.read(|| self.list_domains_once()).await
    }

    async fn list_domains_once(&self) -> Result<Vec<v1::Domain>, ClientError> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let resp = self
                .domains()
                .list_domains(self.request(v1::ListDomainsRequest {
                    host: self.default_host.clone(),
                    page_token,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            out.extend(resp.domains);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = resp.next_page_token;
        }
    }

    /// One domain by name.
    pub async fn get_domain(&self, name: &str) -> Result<v1::Domain, ClientError> {
        self.read(|| self.get_domain_once(name)).await
    }

    async fn get_domain_once(&self, name: &str) -> Result<v1::Domain, ClientError> {
        let resp = self
            .domains()
            .get_domain(self.request(v1::GetDomainRequest {
                domain: Some(self.domain_ref(name)),
                ..Default::default()
            }))
            .await?
            .into_inner();
        resp.domain
            .ok_or_else(|| Status::internal("server sent no domain").into())
    }

    /// Defines a domain from a spec on the default host.
    pub async fn define_domain(&self, spec: v1::DomainSpec) -> Result<v1::Domain, ClientError> {
        let resp = self
            .domains()
            .define_domain(self.request(v1::DefineDomainRequest {
                host: self.default_host.clone(),
                source: Some(v1::define_domain_request::Source::Spec(spec)),
                validate: false,
            }))
            .await?
            .into_inner();
        resp.domain
            .ok_or_else(|| Status::internal("server sent no domain").into())
    }

    /// Starts a defined domain.
    pub async fn start_domain(&self, name: &str) -> Result<v1::Domain, ClientError> {
        let resp = self
            .domains()
            .start_domain(self.request(v1::StartDomainRequest {
                domain: Some(self.domain_ref(name)),
                ..Default::default()
            }))
            .await?
            .into_inner();
        resp.domain
            .ok_or_else(|| Status::internal("server sent no domain").into())
    }

    /// Stops a domain at once (libvirt's destroy); the domain afterwards,
    /// `None` when it was transient and so is gone.
    pub async fn stop_domain(&self, name: &str) -> Result<Option<v1::Domain>, ClientError> {
        let resp = self
            .domains()
            .stop_domain(self.request(v1::StopDomainRequest {
                domain: Some(self.domain_ref(name)),
                graceful: false,
            }))
            .await?
            .into_inner();
        Ok(resp.domain)
    }

    /// A PNG screenshot of a domain's screen `screen`, gathered from its
    /// stream (the `info` message, then chunks of at most 1 MiB).
    pub async fn screenshot_domain(
        &self,
        name: &str,
        screen: u32,
    ) -> Result<(v1::ScreenshotInfo, Vec<u8>), ClientError> {
        self.screenshot(self.domain_ref(name), screen).await
    }

    /// A PNG screenshot of screen `screen` of `domain` (see
    /// [`screenshot_domain`](Self::screenshot_domain)).
    pub async fn screenshot(
        &self,
        domain: DomainRef,
        screen: u32,
    ) -> Result<(v1::ScreenshotInfo, Vec<u8>), ClientError> {
        use v1::screenshot_domain_response::Item;
        let mut stream = self
            .domains()
            .screenshot_domain(self.request(v1::ScreenshotDomainRequest {
                domain: Some(domain),
                screen,
            }))
            .await?
            .into_inner();
        let mut info = None;
        let mut png = Vec::new();
        while let Some(msg) = stream.message().await? {
            match msg.item {
                Some(Item::Info(i)) => info = Some(i),
                Some(Item::Chunk(c)) => png.extend_from_slice(&c),
                None => {}
            }
        }
        let info = info.ok_or_else(|| Status::internal("server sent no screenshot info"))?;
        Ok((info, png))
    }

    /// Removes a domain's definition, with its managed save and snapshot
    /// metadata.
    pub async fn undefine_domain(&self, name: &str) -> Result<(), ClientError> {
        self.domains()
            .undefine_domain(self.request(v1::UndefineDomainRequest {
                domain: Some(self.domain_ref(name)),
                remove_managed_save: true,
                remove_snapshots_metadata: true,
                ..Default::default()
            }))
            .await?;
        Ok(())
    }
}

/// `v`, or a [`ClientError::Protocol`] saying the server sent no `what`.
pub(crate) fn required<T>(v: Option<T>, what: &str) -> Result<T, ClientError> {
    v.ok_or_else(|| ClientError::Protocol(format!("the server sent no {what}")))
}

/// The first retry's backoff before jitter.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// The longest backoff before jitter (a longer `RetryInfo` still wins).
const RETRY_CAP: Duration = Duration::from_secs(5);

/// How long to wait before retry `attempt` (0 for the first) of a read the
/// server answered `UNAVAILABLE`, optionally with a `RetryInfo` delay:
/// `min(100 ms * 2^attempt, 5 s)`, raised to `retry_after` when that is
/// longer, plus a random 0-25 % so that many clients do not come back in
/// the same instant.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = RETRY_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(RETRY_CAP);
    let floor = exp.max(retry_after.unwrap_or_default());
    floor + jitter(floor / 4)
}

/// A random span in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    match nanos.checked_add(1) {
        Some(n) => Duration::from_nanos(files::nonce() % n),
        None => max,
    }
}

/// Whether a failed watch should be retried (the server is away).
fn is_retryable(st: &Status) -> bool {
    matches!(
        st.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_retries_only_what_a_retry_can_cure() {
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::Cancelled,
            tonic::Code::DeadlineExceeded,
        ] {
            assert!(is_retryable(&Status::new(code, "x")), "{code:?}");
        }
        for code in [
            tonic::Code::Internal,
            tonic::Code::Unknown,
            tonic::Code::InvalidArgument,
            tonic::Code::PermissionDenied,
        ] {
            assert!(!is_retryable(&Status::new(code, "x")), "{code:?}");
        }
    }

    #[test]
    fn retry_delays_grow_honour_retry_info_and_are_jittered() {
        for attempt in 0..8 {
            let d = retry_delay(attempt, None);
            let floor = (RETRY_BASE * 2u32.pow(attempt)).min(RETRY_CAP);
            assert!(d >= floor && d <= floor + floor / 4, "{attempt}: {d:?}");
        }
        // The server's delay is a floor, also above the cap.
        let d = retry_delay(0, Some(Duration::from_secs(1)));
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1250));
        let d = retry_delay(9, Some(Duration::from_secs(8)));
        assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(10));
        // Huge attempt counts saturate instead of overflowing.
        assert!(retry_delay(u32::MAX, None) <= RETRY_CAP + RETRY_CAP / 4);
        // Jitter varies.
        let many: std::collections::HashSet<Duration> =
            (0..20).map(|_| retry_delay(3, None)).collect();
        assert!(many.len() > 1);
    }

    #[test]
    fn statuses_become_typed_errors() {
        let e = ClientError::from(Status::not_found("no domain"));
        assert!(matches!(&e, ClientError::NotFound(d) if d.message == "no domain"));
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = ClientError::from(Status::internal("bug"));
        assert!(matches!(e, ClientError::Status(_)));
        assert!(e.details().is_none());
    }
}
