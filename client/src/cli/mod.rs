//! The command line: one module per group of commands, each holding its
//! clap definitions and what they do; `output` prints, `spec` reads spec
//! files, `transfer` moves file bytes.
//!
//! Every command gets a [`Ctx`] (the connected client, the host and the
//! output mode) and answers `Result<(), Failure>`; `main` turns the
//! failure into a message with its causes and an exit code
//! ([`exit_code`]).

pub(crate) mod agent;
pub(crate) mod console;
pub(crate) mod domain;
pub(crate) mod events;
pub(crate) mod host;
pub(crate) mod keys;
pub(crate) mod network;
pub(crate) mod output;
pub(crate) mod snapshot;
pub(crate) mod spec;
pub(crate) mod storage;
pub(crate) mod transfer;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Parser, Subcommand};
use libvirt_grpc_client::{v1, Client, ClientError};

/// What `--help` and the man page say after the options.
const AFTER_HELP: &str = "\
Environment: LIBVIRT_GRPC_SERVER, LIBVIRT_GRPC_HOST, LIBVIRT_GRPC_TOKEN, LIBVIRT_GRPC_CA, LIBVIRT_GRPC_CERT and LIBVIRT_GRPC_KEY stand for --server, --host, --token, --ca, --cert and --key.

Output: a table with headers, or with --json one JSON document (events and agent exec: one object per line) with the proto's field names and enum values without their prefix.

Exit status: 0 success; 1 other failure; 2 bad command line; 3 not found; 4 server or host unreachable or too slow; 5 bad input (also a spec file that does not parse); 6 not allowed; 7 the object's state forbids it (also already exists, aborted); 8 the host cannot do this (unimplemented). agent exec exits with the guest program's status once it ran (128+N for signal N).";

/// Talk to a libvirt-grpc server.
#[derive(Debug, Parser)]
#[command(
    name = "libvirt-grpc",
    version,
    propagate_version = true,
    after_long_help = AFTER_HELP
)]
pub(crate) struct Args {
    /// The server URL.
    #[arg(
        long,
        global = true,
        env = "LIBVIRT_GRPC_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) server: String,
    /// The host to address (see `hosts`); empty means the server's default.
    #[arg(long, global = true, env = "LIBVIRT_GRPC_HOST", default_value = "")]
    pub(crate) host: String,
    /// Per-call deadline in seconds (default 30). Transfers, migrations,
    /// `agent exec`, `console` and `events` run without one unless given.
    #[arg(long, global = true)]
    pub(crate) timeout: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// A bearer token for a server with `[auth]` tokens.
    #[arg(
        long,
        global = true,
        env = "LIBVIRT_GRPC_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// The CA (PEM) that signed an `https://` server's certificate;
    /// default: the system's roots.
    #[arg(long, global = true, env = "LIBVIRT_GRPC_CA")]
    pub(crate) ca: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS, with --key.
    #[arg(long, global = true, env = "LIBVIRT_GRPC_CERT", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "LIBVIRT_GRPC_KEY", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from
    /// the URL's host.
    #[arg(long, global = true)]
    pub(crate) tls_domain: Option<String>,
    /// Seconds to wait for the connection (TCP, TLS, HTTP/2).
    #[arg(long, global = true, default_value_t = 10)]
    pub(crate) connect_timeout: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the configured hosts and their health.
    Hosts,
    /// Show a host: versions, CPUs, memory.
    HostInfo,
    #[command(flatten)]
    Domain(domain::DomainCommand),
    /// Domain snapshots.
    #[command(subcommand, visible_alias = "snap")]
    Snapshot(snapshot::SnapshotCommand),
    /// Storage pools.
    #[command(subcommand)]
    Pool(storage::PoolCommand),
    /// Storage volumes, with upload and download.
    #[command(subcommand, visible_alias = "volume")]
    Vol(storage::VolCommand),
    /// Virtual networks.
    #[command(subcommand, visible_alias = "network")]
    Net(network::NetCommand),
    /// The QEMU guest agent in a running domain.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Print events, one line each as they arrive.
    Events(events::EventsArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from these definitions, or
    /// write one page per command into a directory.
    Man {
        /// Write libvirt-grpc.1 and one libvirt-grpc-COMMAND.1 per
        /// command into this directory instead.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

/// What a failed command exits with: scripts can tell these apart.
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | success |
/// | 1 | any other failure (INTERNAL, UNKNOWN, DATA_LOSS, a local file) |
/// | 2 | bad command line (clap's own) |
/// | 3 | not found (NOT_FOUND) |
/// | 4 | server or host unreachable, or too slow (UNAVAILABLE, DEADLINE_EXCEEDED, a failed connect) |
/// | 5 | bad input (INVALID_ARGUMENT, OUT_OF_RANGE, a spec file that does not parse) |
/// | 6 | not allowed (PERMISSION_DENIED, UNAUTHENTICATED) |
/// | 7 | the object's state forbids it (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED) |
/// | 8 | the host cannot do this (UNIMPLEMENTED) |
///
/// `agent exec` exits with the guest program's own status instead once
/// it ran (see [`agent`]).
pub(crate) fn exit_code(code: tonic::Code) -> u8 {
    use tonic::Code as C;
    match code {
        C::Ok => 0,
        C::NotFound => 3,
        C::Unavailable | C::DeadlineExceeded => 4,
        C::InvalidArgument | C::OutOfRange => 5,
        C::PermissionDenied | C::Unauthenticated => 6,
        C::FailedPrecondition | C::AlreadyExists | C::Aborted => 7,
        C::Unimplemented => 8,
        _ => 1,
    }
}

/// A failure of the tool: the server's, or a local one.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The call failed.
    Client(Box<ClientError>),
    /// A local file could not be read or written, or the server's answer
    /// lacked something (exit 1).
    Local(String),
    /// The user's input is bad before anything was sent (exit 5).
    Input(String),
    /// Exit with this code, nothing more to print (`agent exec`'s guest
    /// status).
    Exit(u8),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(Box::new(e))
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure::Client(Box::new(ClientError::from(s)))
    }
}

impl Failure {
    /// A file that could not be read or written.
    pub(crate) fn file(what: &str, path: &Path, e: std::io::Error) -> Self {
        Failure::Local(format!("Cannot {what} {}: {e}", path.display()))
    }

    /// An answer without the object it should carry.
    pub(crate) fn missing(what: &str) -> Self {
        Failure::Local(format!("The server answered without the {what}"))
    }
}

/// The error and every cause below it, `: `-separated.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// What every command needs: the client, the host and the output mode.
pub(crate) struct Ctx {
    pub(crate) client: Client,
    /// The same connection for long-running calls (transfers, exec): only
    /// the deadline the user gave, if any.
    pub(crate) long: Client,
    pub(crate) host: String,
    pub(crate) json: bool,
    /// The deadline the user gave, if any (long-running calls use only
    /// this one).
    pub(crate) explicit_timeout: Option<Duration>,
}

impl Ctx {
    /// Connects as the global flags say.
    pub(crate) async fn connect(args: &Args) -> Result<Self, Failure> {
        let explicit_timeout = args.timeout.map(Duration::from_secs);
        let mut b = Client::builder(args.server.clone())
            .default_host(args.host.clone())
            .connect_timeout(Duration::from_secs(args.connect_timeout));
        if let Some(t) = &args.token {
            b = b.bearer_token(t.clone());
        }
        if let Some(ca) = &args.ca {
            b = b.tls_ca_file(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            b = b.tls_identity_files(cert.clone(), key.clone());
        }
        if let Some(d) = &args.tls_domain {
            b = b.tls_domain_name(d.clone());
        }
        let long = b.connect().await?;
        let client = long
            .clone()
            .with_timeout(explicit_timeout.unwrap_or(Duration::from_secs(30)));
        let long = match explicit_timeout {
            Some(t) => long.with_timeout(t),
            None => long,
        };
        Ok(Ctx {
            client,
            long,
            host: args.host.clone(),
            json: args.json,
            explicit_timeout,
        })
    }

    /// A request with the per-call deadline.
    pub(crate) fn req<T>(&self, m: T) -> tonic::Request<T> {
        self.client.request(m)
    }

    /// A request for a long-running call: only the user's own deadline.
    pub(crate) fn long_req<T>(&self, m: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        if let Some(t) = self.explicit_timeout {
            r.set_timeout(t);
        }
        r
    }

    pub(crate) fn dref(&self, name: &str) -> Option<v1::DomainRef> {
        Some(self.client.domain_ref(name))
    }

    pub(crate) fn pool_ref(&self, name: &str) -> Option<v1::StoragePoolRef> {
        Some(v1::StoragePoolRef {
            host: self.host.clone(),
            key: Some(v1::storage_pool_ref::Key::Name(name.to_owned())),
        })
    }

    pub(crate) fn vol_ref(&self, pool: &str, name: &str) -> Option<v1::StorageVolumeRef> {
        Some(v1::StorageVolumeRef {
            pool: self.pool_ref(pool),
            name: name.to_owned(),
        })
    }

    pub(crate) fn net_ref(&self, name: &str) -> Option<v1::NetworkRef> {
        Some(v1::NetworkRef {
            host: self.host.clone(),
            key: Some(v1::network_ref::Key::Name(name.to_owned())),
        })
    }

    pub(crate) fn snap_ref(&self, domain: &str, name: &str) -> Option<v1::SnapshotRef> {
        Some(v1::SnapshotRef {
            domain: self.dref(domain),
            name: name.to_owned(),
        })
    }
}

/// `on` or `off`, for the autostart commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub(crate) fn on(self) -> bool {
        self == OnOff::On
    }
}

/// Which definition a change applies to (`--live`, `--config`; neither:
/// the current one).
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct Scope {
    /// Change the running domain.
    #[arg(long)]
    pub(crate) live: bool,
    /// Change the persistent definition.
    #[arg(long)]
    pub(crate) config: bool,
}

impl Scope {
    pub(crate) fn scope(self) -> Option<v1::ModifyScope> {
        (self.live || self.config).then_some(v1::ModifyScope {
            live: self.live,
            config: self.config,
        })
    }
}

/// A size in bytes: a number, or one with a binary suffix (`512M`,
/// `512MiB`, `2G`, `4096K`, `1T`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number, or with K, M, G, T)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        other => return Err(format!("unknown size unit {other:?} (K, M, G, T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Runs a parsed command line (completions and man pages need no server).
pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let ctx = Ctx::connect(&args).await?;
    match args.command {
        Command::Hosts => host::list(&ctx).await,
        Command::HostInfo => host::info(&ctx).await,
        Command::Domain(c) => domain::run(&ctx, c).await,
        Command::Snapshot(c) => snapshot::run(&ctx, c).await,
        Command::Pool(c) => storage::run_pool(&ctx, c).await,
        Command::Vol(c) => storage::run_vol(&ctx, c).await,
        Command::Net(c) => network::run(&ctx, c).await,
        Command::Agent(c) => agent::run(&ctx, c).await,
        Command::Events(a) => events::run(&ctx, a).await,
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
    }
}

/// Reads a whole text file.
pub(crate) fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::file("read", path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1 k"), Ok(1024));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn exit_codes_follow_the_table() {
        use tonic::Code as C;
        assert_eq!(exit_code(C::NotFound), 3);
        assert_eq!(exit_code(C::Unavailable), 4);
        assert_eq!(exit_code(C::InvalidArgument), 5);
        assert_eq!(exit_code(C::PermissionDenied), 6);
        assert_eq!(exit_code(C::AlreadyExists), 7);
        assert_eq!(exit_code(C::Unimplemented), 8);
        assert_eq!(exit_code(C::Internal), 1);
    }
}
