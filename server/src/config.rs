//! Server configuration: command-line flags, optionally on top of a TOML file.
//!
//! Flags win over the file. With neither, the server listens on
//! `127.0.0.1:50051` and fronts one host, `default=test:///default`, the
//! in-process test driver, so a bare `libvirt-grpcd` works on any machine.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::auth::Role;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// One libvirt host the server fronts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The name requests use in their `host` field.
    pub name: String,
    /// The libvirt connection URI.
    pub uri: String,
    /// Connections kept open to this host (each serves a few calls at once).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Quick calls in flight at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Slow calls (guest agent, save/restore, transfers) in flight at once;
    /// they use their own connection so they never starve quick reads.
    #[serde(default = "default_max_slow_in_flight")]
    pub max_slow_in_flight: usize,
    /// Open read-only connections (`virConnectOpenReadOnly`): every call
    /// that changes something is refused with `PERMISSION_DENIED`.
    #[serde(default)]
    pub read_only: bool,
    /// Where QEMU's migration stream of a guest migrating *to* this host
    /// connects: an IP address or host name of this host, used as the
    /// migration URI `tcp://ADDRESS` (libvirt then picks the port). Empty
    /// (the default) lets libvirt use the host's own name.
    #[serde(default)]
    pub migration_address: String,
}

fn default_connections() -> usize {
    3
}
fn default_max_in_flight() -> usize {
    32
}
fn default_max_slow_in_flight() -> usize {
    4
}

impl HostConfig {
    /// A host with default limits.
    pub fn new(name: impl Into<String>, uri: impl Into<String>) -> Self {
        HostConfig {
            name: name.into(),
            uri: uri.into(),
            connections: default_connections(),
            max_in_flight: default_max_in_flight(),
            max_slow_in_flight: default_max_slow_in_flight(),
            read_only: false,
            migration_address: String::new(),
        }
    }

    /// The migration URI for guests migrating to this host, if one is
    /// configured (`tcp://ADDRESS`, IPv6 in brackets).
    pub fn migration_uri(&self) -> Option<String> {
        let a = self.migration_address.as_str();
        match a.parse::<std::net::IpAddr>() {
            _ if a.is_empty() => None,
            Ok(std::net::IpAddr::V6(v6)) => Some(format!("tcp://[{v6}]")),
            _ => Some(format!("tcp://{a}")),
        }
    }

    /// Parses `NAME=URI` as given to `--host`.
    pub fn parse_flag(s: &str) -> Result<Self, String> {
        let (name, uri) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=URI, got '{s}'"))?;
        if name.is_empty() || uri.is_empty() {
            return Err(format!("expected NAME=URI, got '{s}'"));
        }
        Ok(HostConfig::new(name, uri))
    }
}

/// The whole configuration, as read from TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to serve gRPC: `IP:PORT`, or `unix:/path` for a Unix socket
    /// (created mode 0600, as libvirtd's own). Plain text only on loopback
    /// or a Unix socket; any other address needs `[tls]` and `[auth]`.
    pub listen: Listen,
    /// The hosts; the first is the default host.
    pub hosts: Vec<HostConfig>,
    /// TLS for the gRPC listener (off when absent).
    pub tls: Option<TlsConfig>,
    /// Caller identities and roles. Without it every caller is `admin`,
    /// which is allowed only on loopback or a Unix socket.
    pub auth: Option<AuthConfig>,
    /// Seconds between health probes of each host.
    pub health_interval_secs: u64,
    /// How long a call may wait when the request carries no deadline.
    pub default_call_timeout_secs: u64,
    /// How long a client-streaming call (volume upload, guest file write)
    /// waits for the client's next message before it fails with `ABORTED`
    /// and releases what it holds.
    pub stream_idle_timeout_secs: u64,
    /// Events kept for resuming subscribers.
    pub event_ring_size: usize,
    /// Where `log-level` comes from when no flag sets it.
    pub log_level: String,
    /// Seconds a SIGTERM/SIGINT shutdown waits for calls in flight before
    /// it closes every remaining connection and the process exits.
    pub shutdown_grace_secs: u64,
    /// Largest gRPC message, in bytes, any service accepts or sends.
    pub max_message_bytes: usize,
    /// Connections served at once; more are accepted and closed at once.
    /// Lowered at start to what the open-file limit leaves room for.
    pub max_connections: usize,
    /// Connections served at once from one peer IP address.
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams (calls) one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Seconds a new connection has to send the HTTP/2 preface before it
    /// is closed.
    pub handshake_timeout_secs: u64,
    /// Seconds of silence on a connection before the server sends an
    /// HTTP/2 PING (0: no pings).
    pub http2_keepalive_interval_secs: u64,
    /// Seconds the server waits for a PING's answer before it closes the
    /// connection.
    pub http2_keepalive_timeout_secs: u64,
    /// Seconds after which a connection is asked to go away (HTTP/2
    /// GOAWAY): calls already open finish, new ones go to a new connection.
    /// Bounds how long an idle connection holds its place (0: never).
    pub max_connection_age_secs: u64,
    /// Seconds of idle before the kernel probes a TCP connection
    /// (`SO_KEEPALIVE`; 0: off).
    pub tcp_keepalive_secs: u64,
    /// Where the Prometheus metrics are served (plain HTTP, `GET /metrics`,
    /// OpenMetrics text); off when absent (the default). The endpoint has
    /// no authentication and no TLS: it carries no secrets, but keep it on
    /// loopback or behind the network's own controls.
    pub metrics_listen: Option<SocketAddr>,
    /// The log line format: `text` (the default; colour only when the
    /// output is a terminal) or `json` (one JSON object a line, for log
    /// shippers).
    pub log_format: LogFormat,
    /// Directories every host path a caller names must lie under (default
    /// `["/var/lib/libvirt-grpc"]`, a directory of the server's own):
    /// save and restore images, pool target paths (for every caller), and
    /// the disk sources, kernels, serial logs and other host files of raw
    /// XML and specs (for callers below admin). Absolute, at least one;
    /// `..` and symlinks out of a root are refused (see `crate::confine`).
    pub host_path_roots: Vec<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`), and the span.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("expected text or json, got '{s}'")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen::Tcp(
                DEFAULT_LISTEN
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 50051))),
            ),
            hosts: vec![HostConfig::new("default", "test:///default")],
            tls: None,
            auth: None,
            health_interval_secs: 5,
            default_call_timeout_secs: 120,
            stream_idle_timeout_secs: crate::services::DEFAULT_STREAM_IDLE.as_secs(),
            event_ring_size: 4096,
            log_level: "info".to_owned(),
            shutdown_grace_secs: 10,
            max_message_bytes: 64 << 20,
            max_connections: 2048,
            max_connections_per_ip: 256,
            max_concurrent_streams: 1024,
            handshake_timeout_secs: 10,
            http2_keepalive_interval_secs: 30,
            http2_keepalive_timeout_secs: 20,
            max_connection_age_secs: 3600,
            tcp_keepalive_secs: 60,
            metrics_listen: None,
            log_format: LogFormat::Text,
            host_path_roots: vec![PathBuf::from(crate::confine::DEFAULT_ROOT)],
        }
    }
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("Cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("Invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// The settings contradict each other.
    #[error("Invalid configuration: {0}")]
    Invalid(String),
}

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket at this path.
    Unix(PathBuf),
}

impl Listen {
    /// Parses `IP:PORT` or `unix:/absolute/path`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("a Unix socket path must be absolute, got '{s}'"));
            }
            return Ok(Listen::Unix(path));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|_| format!("expected IP:PORT or unix:/path, got '{s}'"))
    }

    /// Whether only this machine can reach it (loopback or a Unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Tcp(a) => a.ip().is_loopback(),
            Listen::Unix(_) => true,
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Listen::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[tls]`: the server's certificate, and optionally the CA its clients'
/// certificates must be signed by. All files are PEM and re-read on SIGHUP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// With it set, every client must present a certificate signed by one
    /// of these CAs (mutual TLS); the handshake fails otherwise.
    pub client_ca: Option<PathBuf>,
}

/// `[auth]`: who may call, as what.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bearer tokens (`authorization: Bearer <token>`), stored hashed.
    pub tokens: Vec<TokenConfig>,
    /// Client-certificate identities (needs `[tls] client_ca`).
    pub clients: Vec<ClientCertConfig>,
    /// Serve the health service to callers without identity (default
    /// true: load balancers and orchestrators probe without credentials).
    #[serde(default = "yes")]
    pub open_health: bool,
    /// Serve reflection to callers without identity (default false: the
    /// schema is public anyway, but a closed server tells nothing).
    pub open_reflection: bool,
}

fn yes() -> bool {
    true
}

/// One bearer token.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The caller's name, in audit lines and metrics.
    pub name: String,
    /// The caller's role.
    pub role: Role,
    /// The hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`); the
    /// token itself is never stored.
    pub sha256: String,
}

/// One client-certificate identity: a certificate matches by its subject
/// or by one of its subject alternative names (DNS, URI, email or IP).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    /// The caller's name (default: the subject or SAN that matched).
    pub name: Option<String>,
    /// The subject distinguished name, e.g. `CN=ops` or `CN=ops,O=Example`
    /// (attributes in the certificate's order, case-sensitive values).
    pub subject: Option<String>,
    /// A subject alternative name, e.g. `ops.example.com` or
    /// `spiffe://example.com/ops`.
    pub san: Option<String>,
    /// The caller's role.
    pub role: Role,
}

impl AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let mut names = std::collections::HashSet::new();
        for t in &self.tokens {
            if t.name.is_empty() {
                return bad("[[auth.tokens]]: name must not be empty".into());
            }
            if crate::auth::identity::parse_sha256(&t.sha256).is_none() {
                return bad(format!(
                    "[[auth.tokens]] '{}': sha256 must be 64 hex digits (the SHA-256 of the token, never the token)",
                    t.name
                ));
            }
            if !names.insert(t.sha256.to_ascii_lowercase()) {
                return bad(format!(
                    "[[auth.tokens]] '{}': the same token twice",
                    t.name
                ));
            }
        }
        for c in &self.clients {
            if c.subject.is_none() == c.san.is_none() {
                return bad(format!(
                    "[[auth.clients]] {}: set exactly one of subject or san",
                    c.name.as_deref().unwrap_or("(unnamed)")
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks the settings that cannot be expressed in types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hosts.is_empty() {
            return Err(ConfigError::Invalid("at least one host is needed".into()));
        }
        let mut names = std::collections::HashSet::new();
        for h in &self.hosts {
            if !names.insert(h.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "host '{}' named twice",
                    h.name
                )));
            }
            let a = &h.migration_address;
            if a.parse::<std::net::IpAddr>().is_err()
                && !a
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(ConfigError::Invalid(format!(
                    "host '{}': migration_address '{a}' is neither an IP address nor a host name",
                    h.name
                )));
            }
            if h.connections == 0 || h.max_in_flight == 0 || h.max_slow_in_flight == 0 {
                return Err(ConfigError::Invalid(format!(
                    "host '{}': connections and in-flight limits must be at least 1",
                    h.name
                )));
            }
        }
        if !self.listen.is_local() {
            let missing = match (&self.tls, &self.auth) {
                (None, None) => Some("[tls] (cert, key) and [auth]"),
                (None, Some(_)) => Some("[tls] (cert, key)"),
                (Some(_), None) => Some("[auth] (tokens or client certificates)"),
                (Some(_), Some(_)) => None,
            };
            if let Some(missing) = missing {
                return Err(ConfigError::Invalid(format!(
                    "refusing to serve {} without {missing}: plain text and callers without identity are served only on loopback (127.0.0.1, ::1) or a Unix socket (listen = \"unix:/run/libvirt-grpc/sock\"); set up TLS and auth as the README's \"Running in production\" shows, or listen on loopback",
                    self.listen
                )));
            }
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
            let mutual = self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
            if !auth.clients.is_empty() && !mutual {
                return Err(ConfigError::Invalid(
                    "[[auth.clients]] identifies callers by client certificate: set [tls] client_ca (the CA that signs them)".into(),
                ));
            }
            if auth.tokens.is_empty() && auth.clients.is_empty() {
                return Err(ConfigError::Invalid(
                    "[auth] without [[auth.tokens]] or [[auth.clients]] lets nobody in".into(),
                ));
            }
        }
        if self.stream_idle_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "stream_idle_timeout_secs must be at least 1".into(),
            ));
        }
        if self.event_ring_size == 0 {
            return Err(ConfigError::Invalid(
                "event_ring_size must be at least 1".into(),
            ));
        }
        let at_least_one = [
            ("max_message_bytes", self.max_message_bytes as u64),
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            (
                "http2_keepalive_timeout_secs",
                self.http2_keepalive_timeout_secs,
            ),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        // u32: HTTP/2 frames and tonic's limits are 32-bit; 4 GiB is far
        // past anything a libvirt call returns.
        if self.max_message_bytes > u32::MAX as usize {
            return Err(ConfigError::Invalid(
                "max_message_bytes must be below 4 GiB".into(),
            ));
        }
        if let Some(m) = self.metrics_listen {
            if Listen::Tcp(m) == self.listen && m.port() != 0 {
                return Err(ConfigError::Invalid(format!(
                    "metrics_listen {m} is the gRPC listen address: give the metrics their own port"
                )));
            }
        }
        crate::confine::Confinement::new(&self.host_path_roots).map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The longest wait for a client stream's next message.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.stream_idle_timeout_secs.max(1))
    }

    /// The health probe interval.
    pub fn health_interval(&self) -> Duration {
        Duration::from_secs(self.health_interval_secs.max(1))
    }

    /// How long a shutdown waits for calls in flight.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// How long a new connection may take to send the HTTP/2 preface.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    /// The HTTP/2 PING interval, if pings are on.
    pub fn http2_keepalive_interval(&self) -> Option<Duration> {
        (self.http2_keepalive_interval_secs > 0)
            .then(|| Duration::from_secs(self.http2_keepalive_interval_secs))
    }

    /// The age after which a connection gets GOAWAY, if any.
    pub fn max_connection_age(&self) -> Option<Duration> {
        (self.max_connection_age_secs > 0)
            .then(|| Duration::from_secs(self.max_connection_age_secs))
    }

    /// How long a PING may go unanswered.
    pub fn http2_keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.http2_keepalive_timeout_secs.max(1))
    }

    /// The TCP keepalive idle time, if TCP keepalive is on.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        (self.tcp_keepalive_secs > 0).then(|| Duration::from_secs(self.tcp_keepalive_secs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn default_is_test_driver_on_loopback() {
        let c = Config::default();
        assert_eq!(c.hosts, vec![HostConfig::new("default", "test:///default")]);
        assert!(c.listen.is_local());
        c.validate().unwrap();
    }

    #[test]
    fn toml_and_flags() {
        let c: Config = toml::from_str(
            "listen = \"127.0.0.1:6000\"\n[[hosts]]\nname = \"a\"\nuri = \"qemu:///system\"\nconnections = 5\n",
        )
        .unwrap();
        assert_eq!(c.hosts[0].connections, 5);
        assert_eq!(c.hosts[0].max_in_flight, 32);
        assert!(HostConfig::parse_flag("novalue").is_err());
        assert_eq!(
            HostConfig::parse_flag("x=test:///default").unwrap().name,
            "x"
        );
    }

    #[test]
    fn rejects_plaintext_on_public_address() {
        let c = Config {
            listen: Listen::parse("0.0.0.0:1").unwrap(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let dup = Config {
            hosts: vec![HostConfig::new("a", "x"), HostConfig::new("a", "y")],
            ..Config::default()
        };
        assert!(dup.validate().is_err());
        let no_idle = Config {
            stream_idle_timeout_secs: 0,
            ..Config::default()
        };
        assert!(no_idle.validate().is_err());
    }

    #[test]
    fn stream_idle_timeout_defaults_to_30_s() {
        assert_eq!(
            Config::default().stream_idle_timeout(),
            Duration::from_secs(30)
        );
        let c: Config = toml::from_str("stream_idle_timeout_secs = 5\n").unwrap();
        assert_eq!(c.stream_idle_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn transport_settings() {
        let c: Config = toml::from_str(
            "shutdown_grace_secs = 3\nmax_connections_per_ip = 16\nhttp2_keepalive_interval_secs = 0\n",
        )
        .unwrap();
        assert_eq!(c.shutdown_grace(), Duration::from_secs(3));
        assert_eq!(c.max_connections_per_ip, 16);
        assert_eq!(c.max_concurrent_streams, 1024);
        assert_eq!(c.http2_keepalive_interval(), None);
        c.validate().unwrap();
        for bad in [
            "max_connections = 0",
            "max_concurrent_streams = 0",
            "handshake_timeout_secs = 0",
            "max_message_bytes = 0",
        ] {
            let c: Config = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_and_log_settings() {
        let c = Config::default();
        assert_eq!(c.metrics_listen, None, "metrics off by default");
        assert_eq!(c.log_format, LogFormat::Text);
        let c: Config =
            toml::from_str("metrics_listen = \"127.0.0.1:9464\"\nlog_format = \"json\"\n").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.log_format, LogFormat::Json);
        c.validate().unwrap();
        assert!(toml::from_str::<Config>("log_format = \"xml\"\n").is_err());
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("JSON".parse::<LogFormat>().is_err());
        let same = Config {
            metrics_listen: Some(DEFAULT_LISTEN.parse().unwrap()),
            ..Config::default()
        };
        assert!(same.validate().is_err(), "metrics on the gRPC port");
    }

    #[test]
    fn host_path_roots_default_to_the_servers_own_directory() {
        let c = Config::default();
        assert_eq!(
            c.host_path_roots,
            vec![PathBuf::from("/var/lib/libvirt-grpc")]
        );
        let c: Config =
            toml::from_str("host_path_roots = [\"/srv/vm\", \"/data/images\"]\n").unwrap();
        assert_eq!(c.host_path_roots.len(), 2);
        c.validate().unwrap();
        for bad in [
            "host_path_roots = []",
            "host_path_roots = [\"relative\"]",
            "host_path_roots = [\"/srv/../etc\"]",
        ] {
            let c: Config = toml::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        // The old setting, whose empty list allowed anything, is gone.
        assert!(toml::from_str::<Config>("allowed_storage_roots = []").is_err());
    }

    /// The sample config of the repository: loads, validates, and names
    /// every setting of every section (active or as a commented default).
    #[test]
    fn sample_config_is_complete_and_loads() {
        let text = include_str!("../../deploy/libvirt-grpcd.toml");
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert!(c.tls.as_ref().is_some_and(|t| t.client_ca.is_some()));
        let auth = c.auth.as_ref().unwrap();
        assert_eq!(auth.tokens[0].role, Role::Reader);
        assert_eq!(auth.clients[0].role, Role::Admin);
        // The commented defaults are the real ones.
        let d = Config::default();
        assert_eq!(c.max_message_bytes, d.max_message_bytes);
        assert_eq!(c.host_path_roots, d.host_path_roots);
        for line in text.lines() {
            let Some((key, value)) = line.strip_prefix("# ").and_then(|l| l.split_once(" = "))
            else {
                continue;
            };
            if key.contains(' ') || key == "name" || key == "san" {
                continue;
            }
            let one: Result<Config, _> = toml::from_str(&format!("{key} = {value}"));
            if let Ok(one) = one {
                assert_eq!(
                    format!("{one:?}"),
                    format!("{d:?}"),
                    "the sample's default for {key} is not the real one"
                );
            }
        }
        // Every field of every section is named in the sample.
        let source = include_str!("config.rs");
        for section in [
            "pub struct Config {",
            "pub struct HostConfig {",
            "pub struct TlsConfig {",
            "pub struct AuthConfig {",
            "pub struct TokenConfig {",
            "pub struct ClientCertConfig {",
        ] {
            let start = source.find(section).unwrap();
            let body = &source[start..start + source[start..].find("\n}").unwrap()];
            for field in body
                .lines()
                .filter_map(|l| l.trim().strip_prefix("pub "))
                .filter_map(|l| l.split_once(':').map(|(f, _)| f.trim()))
                .filter(|f| !f.starts_with("struct"))
            {
                let named = text.lines().any(|l| {
                    let l = l.trim_start_matches("# ");
                    l.starts_with(&format!("{field} ="))
                        || l.starts_with(&format!("[{field}]"))
                        || l.starts_with(&format!("[[{field}]]"))
                        || l.starts_with(&format!("[[auth.{field}]]"))
                });
                assert!(
                    named,
                    "{section} field {field} is not in deploy/libvirt-grpcd.toml"
                );
            }
        }
    }
}
