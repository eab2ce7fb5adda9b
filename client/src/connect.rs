//! Connection settings: [`ClientBuilder`] (timeouts, HTTP/2 keepalive, TLS,
//! a bearer token) and the interceptor that puts the token on every call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), libvirt_grpc_client::ClientError> {
//! use std::time::Duration;
//! let client = libvirt_grpc_client::Client::builder("https://virt.example.org:50051")
//!     .tls_ca_file("/etc/libvirt-grpc/ca.pem")
//!     .bearer_token(std::env::var("LIBVIRT_GRPC_TOKEN").unwrap_or_default())
//!     .connect_timeout(Duration::from_secs(5))
//!     .timeout(Duration::from_secs(30))
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```

use std::{path::PathBuf, time::Duration};

use tonic::{
    metadata::{AsciiMetadataValue, MetadataValue},
    service::Interceptor,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
    Request, Status,
};

use crate::{Client, ClientError};

/// Puts `authorization: Bearer <token>` on every call of the client's
/// stubs (the server's `[auth]` tokens), unless the request carries its own
/// `authorization`; without a token it changes nothing.
#[derive(Debug, Clone, Default)]
pub struct BearerToken {
    value: Option<AsciiMetadataValue>,
}

impl BearerToken {
    /// No token.
    pub fn none() -> Self {
        BearerToken { value: None }
    }

    /// The header value for `token`; a token that is not visible ASCII is
    /// [`ClientError::Config`].
    pub fn new(token: &str) -> Result<Self, ClientError> {
        let valid = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
        let value = if valid {
            MetadataValue::try_from(format!("Bearer {token}")).ok()
        } else {
            None
        };
        match value {
            Some(mut v) => {
                v.set_sensitive(true);
                Ok(BearerToken { value: Some(v) })
            }
            None => Err(ClientError::Config(
                "a bearer token must be non-empty visible ASCII".into(),
            )),
        }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.value {
            if !request.metadata().contains_key("authorization") {
                request.metadata_mut().insert("authorization", v.clone());
            }
        }
        Ok(request)
    }
}

/// PEM given as text or as a file read at connect time.
#[derive(Debug, Clone)]
enum Pem {
    Text(Vec<u8>),
    File(PathBuf),
}

impl Pem {
    fn load(&self) -> Result<Vec<u8>, ClientError> {
        match self {
            Pem::Text(t) => Ok(t.clone()),
            Pem::File(p) => std::fs::read(p).map_err(|source| ClientError::Io {
                action: "read",
                path: p.clone(),
                source,
            }),
        }
    }
}

/// How to reach a server: `Client::builder(url)...connect().await`.
///
/// Defaults: a 10 s connect timeout, HTTP/2 keepalive pings every 30 s
/// (also while idle) that fail the connection when unanswered for 20 s, no
/// per-call deadline, plain text for `http://` and TLS for `https://`
/// URLs, no token, the server's default host, no read retries.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    keepalive: Option<(Duration, Duration)>,
    ca: Option<Pem>,
    identity: Option<(Pem, Pem)>,
    domain_name: Option<String>,
    token: Option<String>,
    default_host: String,
    read_retries: u32,
}

impl ClientBuilder {
    pub(crate) fn new(url: String) -> Self {
        ClientBuilder {
            url,
            connect_timeout: Some(Duration::from_secs(10)),
            timeout: None,
            keepalive: Some((Duration::from_secs(30), Duration::from_secs(20))),
            ca: None,
            identity: None,
            domain_name: None,
            token: None,
            default_host: String::new(),
            read_retries: 0,
        }
    }

    /// How long to wait for the TCP (and TLS) connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The deadline every call carries (`grpc-timeout`); streams such as
    /// `watch` are not given it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// HTTP/2 keepalive: a ping every `interval` (also while no call is
    /// open), the connection failed when one is unanswered for `timeout`.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some((interval, timeout));
        self
    }

    /// No HTTP/2 keepalive pings.
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = None;
        self
    }

    /// Trusts the CA certificate(s) in `pem` for the server's certificate
    /// (the crate carries no public root store: an `https://` URL needs
    /// this or [`tls_ca_file`](Self::tls_ca_file)).
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(Pem::Text(pem.into()));
        self
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` (read when
    /// connecting).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(Pem::File(path.into()));
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    pub fn tls_identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((Pem::Text(cert.into()), Pem::Text(key.into())));
        self
    }

    /// Presents the client certificate and key in these PEM files.
    pub fn tls_identity_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((Pem::File(cert.into()), Pem::File(key.into())));
        self
    }

    /// The name the server's certificate must carry, when it is not the
    /// URL's host (e.g. connecting by IP address).
    pub fn tls_domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// Sends `authorization: Bearer <token>` on every call.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sends requests to `host` unless a request names another one.
    pub fn default_host(mut self, host: impl Into<String>) -> Self {
        self.default_host = host.into();
        self
    }

    /// Retries reads on `UNAVAILABLE` (see [`Client::with_read_retries`]).
    pub fn read_retries(mut self, n: u32) -> Self {
        self.read_retries = n;
        self
    }

    fn endpoint(&self) -> Result<(Endpoint, BearerToken), ClientError> {
        let bad_url = |source| ClientError::Connect {
            url: self.url.clone(),
            source,
        };
        let mut ep = Endpoint::from_shared(self.url.clone()).map_err(bad_url)?;
        if let Some(t) = self.connect_timeout {
            ep = ep.connect_timeout(t);
        }
        if let Some((interval, timeout)) = self.keepalive {
            ep = ep
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        let https = self.url.starts_with("https://");
        let wants_tls = self.ca.is_some() || self.identity.is_some() || self.domain_name.is_some();
        if wants_tls && !https {
            return Err(ClientError::Config(format!(
                "TLS settings need an https:// URL, not {}",
                self.url
            )));
        }
        if https {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca.load()?));
            }
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert.load()?, key.load()?));
            }
            if let Some(name) = &self.domain_name {
                tls = tls.domain_name(name.clone());
            }
            ep = ep.tls_config(tls).map_err(bad_url)?;
        }
        let token = match &self.token {
            Some(t) => BearerToken::new(t)?,
            None => BearerToken::none(),
        };
        Ok((ep, token))
    }

    fn client(&self, channel: Channel, token: BearerToken) -> Client {
        let mut c = Client::from_channel(channel)
            .with_default_host(self.default_host.clone())
            .with_read_retries(self.read_retries);
        c.token = token;
        c.timeout = self.timeout;
        c
    }

    /// Connects now; an unreachable server is [`ClientError::Connect`],
    /// one that does not finish the TCP, TLS and HTTP/2 handshakes within
    /// the connect timeout [`ClientError::ConnectTimeout`].
    pub async fn connect(self) -> Result<Client, ClientError> {
        let (ep, token) = self.endpoint()?;
        let connecting = ep.connect();
        let connected = match self.connect_timeout {
            // tonic's own timeout covers the TCP connect only; this one
            // also bounds a TLS handshake the peer never answers.
            Some(after) => tokio::time::timeout(after, connecting).await.map_err(|_| {
                ClientError::ConnectTimeout {
                    url: self.url.clone(),
                    after,
                }
            })?,
            None => connecting.await,
        };
        let channel = connected.map_err(|source| ClientError::Connect {
            url: self.url.clone(),
            source,
        })?;
        Ok(self.client(channel, token))
    }

    /// A client that connects on its first call (and reconnects as
    /// needed); only bad settings fail here.
    pub fn connect_lazy(self) -> Result<Client, ClientError> {
        let (ep, token) = self.endpoint()?;
        let channel = ep.connect_lazy();
        Ok(self.client(channel, token))
    }
}
