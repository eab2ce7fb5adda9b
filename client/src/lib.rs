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
//! and a per-call deadline that every request carries as `grpc-timeout`. The
//! generated stubs of every service are reachable through it
//! ([`Client::domains`], [`Client::hosts`]) for calls without a convenience
//! method.
#![forbid(unsafe_code)]

mod agent;
mod connect;
mod files;
mod handle;
mod host;
mod network;
mod snapshot;
mod storage;
pub use agent::AgentHandle;
pub use connect::{BearerToken, ClientBuilder};
pub use files::{
    DownloadOptions, ExecExit, ExecOutput, ExecResult, ExecStream, Progress, Transfer,
    UploadOptions, VolumeUpload,
};
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

/// One bad request field, as the server's `google.rpc.BadRequest` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path (`domain.uuid`, `parameters[2].field`).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// The `google.rpc` details every failed call carries (the README's
/// "Errors" section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// The gRPC status message.
    pub message: String,
    /// `ErrorInfo.reason`: libvirt's error code name (`NO_DOMAIN`) or the
    /// server's own (`UNKNOWN_HOST`, `OPERATION_INVALID`); empty when the
    /// status carried no `ErrorInfo` (a failure before the server answered).
    pub reason: String,
    /// `ErrorInfo.domain`: `libvirt.org` or `libvirt-grpc`.
    pub domain: String,
    /// `ErrorInfo.metadata` (`host`, `libvirt_code`, `required_role`, ...).
    pub metadata: std::collections::HashMap<String, String>,
    /// Every bad request field (`INVALID_ARGUMENT`).
    pub violations: Vec<FieldViolation>,
    /// How long the server asks a caller to wait before retrying
    /// (`RetryInfo`, on `UNAVAILABLE`).
    pub retry_after: Option<Duration>,
}

impl ErrorDetails {
    /// Decodes the details of `status`.
    pub fn of(status: &Status) -> Self {
        use tonic_types::StatusExt;
        let d = status.get_error_details();
        let mut out = ErrorDetails {
            message: status.message().to_owned(),
            ..Default::default()
        };
        if let Some(info) = d.error_info() {
            out.reason = info.reason.clone();
            out.domain = info.domain.clone();
            out.metadata = info.metadata.clone();
        }
        if let Some(bad) = d.bad_request() {
            out.violations = bad
                .field_violations
                .iter()
                .map(|v| FieldViolation {
                    field: v.field.clone(),
                    description: v.description.clone(),
                })
                .collect();
        }
        out.retry_after = d.retry_info().and_then(|r| r.retry_delay);
        out
    }
}

/// What can go wrong talking to the server: one variant per failure a
/// caller handles differently, each with the decoded details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not valid or the server cannot be reached.
    #[error("Cannot connect to {url}")]
    Connect {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server did not complete the connection within the connect
    /// timeout.
    #[error("Cannot connect to {url} within {after:?}")]
    ConnectTimeout {
        /// The URL given.
        url: String,
        /// The connect timeout.
        after: Duration,
    },
    /// `NOT_FOUND`: no such domain, host, pool, ...
    #[error("not found: {}", .0.message)]
    NotFound(Box<ErrorDetails>),
    /// `ALREADY_EXISTS`.
    #[error("already exists: {}", .0.message)]
    AlreadyExists(Box<ErrorDetails>),
    /// `INVALID_ARGUMENT` (and `OUT_OF_RANGE`): `violations` names every
    /// bad field.
    #[error("invalid argument: {}", .0.message)]
    InvalidArgument(Box<ErrorDetails>),
    /// `FAILED_PRECONDITION`: the object's state forbids the call (reason
    /// `OPERATION_INVALID` for libvirt's "domain is already running").
    #[error("failed precondition: {}", .0.message)]
    FailedPrecondition(Box<ErrorDetails>),
    /// `PERMISSION_DENIED` (metadata `required_role`) or
    /// `UNAUTHENTICATED`.
    #[error("permission denied: {}", .0.message)]
    PermissionDenied(Box<ErrorDetails>),
    /// `UNAVAILABLE`: the server or the host is away; `retry_after` says
    /// when to try again.
    #[error("unavailable: {}", .0.message)]
    Unavailable(Box<ErrorDetails>),
    /// `DEADLINE_EXCEEDED`.
    #[error("deadline exceeded: {}", .0.message)]
    DeadlineExceeded(Box<ErrorDetails>),
    /// `UNIMPLEMENTED`: the host's driver cannot do this.
    #[error("unimplemented: {}", .0.message)]
    Unimplemented(Box<ErrorDetails>),
    /// Any other status (`INTERNAL`, `ABORTED`, `CANCELLED`, ...).
    #[error("{}: {}", .0.code(), .0.message())]
    Status(Status),
    /// A local file of a transfer could not be opened, read or written.
    #[error("Cannot {action} {}", .path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`, `create`, ...).
        action: &'static str,
        /// The local file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SHA-256 of the bytes moved is not the one the server reports.
    #[error("Checksum mismatch: {local} here, {server} on the server")]
    ChecksumMismatch {
        /// Computed here, 64 lowercase hex digits.
        local: String,
        /// Reported by the server.
        server: String,
    },
    /// A client setting cannot be used (a TLS setting on an `http://`
    /// URL, a token that is not visible ASCII).
    #[error("Bad client setting: {0}")]
    Config(String),
    /// The server's answer broke the shape its proto describes (a stream
    /// that ends early, a gap between chunks, a short byte count).
    #[error("Unexpected answer from the server: {0}")]
    Protocol(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        use tonic::Code as C;
        let d = || Box::new(ErrorDetails::of(&s));
        match s.code() {
            C::NotFound => ClientError::NotFound(d()),
            C::AlreadyExists => ClientError::AlreadyExists(d()),
            C::InvalidArgument | C::OutOfRange => ClientError::InvalidArgument(d()),
            C::FailedPrecondition => ClientError::FailedPrecondition(d()),
            C::PermissionDenied | C::Unauthenticated => ClientError::PermissionDenied(d()),
            C::Unavailable => ClientError::Unavailable(d()),
            C::DeadlineExceeded => ClientError::DeadlineExceeded(d()),
            C::Unimplemented => ClientError::Unimplemented(d()),
            _ => ClientError::Status(s),
        }
    }
}

impl ClientError {
    /// The gRPC code (`Unavailable` for connect failures; `InvalidArgument`
    /// also stands for OUT_OF_RANGE, `PermissionDenied` for UNAUTHENTICATED).
    pub fn code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Unavailable(_) => C::Unavailable,
            ClientError::NotFound(_) => C::NotFound,
            ClientError::AlreadyExists(_) => C::AlreadyExists,
            ClientError::InvalidArgument(_) => C::InvalidArgument,
            ClientError::FailedPrecondition(_) => C::FailedPrecondition,
            ClientError::PermissionDenied(_) => C::PermissionDenied,
            ClientError::DeadlineExceeded(_) => C::DeadlineExceeded,
            ClientError::Unimplemented(_) => C::Unimplemented,
            ClientError::Status(s) => s.code(),
            ClientError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => C::NotFound,
                std::io::ErrorKind::AlreadyExists => C::AlreadyExists,
                std::io::ErrorKind::PermissionDenied => C::PermissionDenied,
                _ => C::Unknown,
            },
            ClientError::ChecksumMismatch { .. } => C::DataLoss,
            ClientError::Protocol(_) => C::Internal,
            ClientError::Config(_) => C::InvalidArgument,
        }
    }

    /// The decoded details (none for connect failures, other codes and
    /// local failures).
    pub fn details(&self) -> Option<&ErrorDetails> {
        match self {
            ClientError::NotFound(d)
            | ClientError::AlreadyExists(d)
            | ClientError::InvalidArgument(d)
            | ClientError::FailedPrecondition(d)
            | ClientError::PermissionDenied(d)
            | ClientError::Unavailable(d)
            | ClientError::DeadlineExceeded(d)
            | ClientError::Unimplemented(d) => Some(d),
            ClientError::Connect { .. }
            | ClientError::ConnectTimeout { .. }
            | ClientError::Status(_)
            | ClientError::Io { .. }
            | ClientError::ChecksumMismatch { .. }
            | ClientError::Protocol(_)
            | ClientError::Config(_) => None,
        }
    }
}

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

    /// Retries the convenience reads ([`list_domains`](Self::list_domains),
    /// [`get_domain`](Self::get_domain)) up to `n` times when they answer
    /// `UNAVAILABLE`, after the server's `RetryInfo` delay (else 1 s).
    /// Changes are never retried: one that timed out may have happened.
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
        let mut left = self.read_retries;
        loop {
            match call().await {
                Err(ClientError::Unavailable(d)) if left > 0 => {
                    left -= 1;
                    tokio::time::sleep(d.retry_after.unwrap_or(Duration::from_secs(1))).await;
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
    /// stream: it reopens (with backoff, up to 5 s) from the last sequence it
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
            let mut delay = Duration::from_millis(50);
            loop {
                let mut req = filter.clone();
                if let Some((epoch, seq)) = &resume {
                    req.epoch = epoch.clone();
                    req.resume_after = Some(*seq);
                }
                let mut stream = match client.events().watch_events(req).await {
                    Ok(s) => s.into_inner(),
                    Err(st) if is_retryable(&st) => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
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
                    delay = Duration::from_millis(50);
                    match &msg.item {
                        Some(v1::watch_events_response::Item::Started(s)) if resume.is_none() => {
                            resume = Some((s.epoch.clone(), s.sequence));
                        }
                        Some(v1::watch_events_response::Item::Event(e)) => {
                            resume = Some((e.epoch.clone(), e.sequence));
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
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
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
    fn statuses_become_typed_errors() {
        let e = ClientError::from(Status::not_found("no domain"));
        assert!(matches!(&e, ClientError::NotFound(d) if d.message == "no domain"));
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = ClientError::from(Status::internal("bug"));
        assert!(matches!(e, ClientError::Status(_)));
        assert!(e.details().is_none());
    }
}
