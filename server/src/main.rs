//! `libvirt-grpcd`: the server binary. Parses flags, sets up logging, and
//! serves until SIGINT or SIGTERM, then shuts down within the grace period
//! (see [`server::serve`]) and exits without waiting for libvirt calls that
//! still hang.
#![forbid(unsafe_code)]

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use libvirt_grpc_server::{
    config::{Config, HostConfig, Listen, LogFormat, TlsConfig},
    server::{self, Listener},
    transport,
};
use tracing_subscriber::EnvFilter;

/// A gRPC front door for libvirt.
#[derive(Debug, Parser)]
#[command(name = "libvirt-grpcd", disable_version_flag = true)]
struct Args {
    /// Print the version, the git revision it was built from and the
    /// libvirt library version it runs with, then exit.
    #[arg(short = 'V', long)]
    version: bool,
    /// Address to listen on: IP:PORT or unix:/path (default
    /// 127.0.0.1:50051). Plain text only on loopback or a Unix socket.
    #[arg(long, value_parser = Listen::parse)]
    listen: Option<Listen>,
    /// The server's TLS certificate chain (PEM); with --tls-key, serves TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The server's TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A CA (PEM) every client certificate must be signed by (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A host as NAME=URI; repeatable; the first is the default host.
    /// Without any, the config file's hosts or `default=test:///default`.
    #[arg(long = "host", value_parser = HostConfig::parse_flag)]
    hosts: Vec<HostConfig>,
    /// A TOML config file with the same settings and more.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `libvirt_grpc_server=debug`.
    #[arg(long)]
    log_level: Option<String>,
    /// Seconds a shutdown lets calls in flight finish before it closes
    /// every connection (default 10).
    #[arg(long)]
    shutdown_grace_secs: Option<u64>,
    /// Serve Prometheus metrics (plain HTTP, `GET /metrics`) on this
    /// address; off unless set here or in the config.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Log line format: `text` (default) or `json`.
    #[arg(long)]
    log_format: Option<LogFormat>,
}

/// The git revision the binary was built from (see `build.rs`): 12 hex
/// digits, `-dirty` when tracked files differed from that commit, or
/// `unknown` without git.
const GIT_REVISION: &str = env!("LIBVIRT_GRPC_GIT_REVISION");

/// What `--version` prints.
fn version_text() -> String {
    virt::error::clear_error_callback();
    let libvirt = match libvirt_grpc_server::ops::host::library_version() {
        Ok(v) => v,
        Err(e) => format!("unknown ({e})"),
    };
    format!(
        "libvirt-grpcd {}\ngit revision: {GIT_REVISION}\nlibvirt library: {libvirt}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// How long the process waits, after the server has stopped, for blocking
/// libvirt calls still running. A call stuck on a dead host must not keep
/// the process alive; the kernel ends those threads at exit.
const BLOCKING_CALLS_WAIT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let args = Args::parse();
    if args.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    // Built by hand (not `#[tokio::main]`) for `shutdown_timeout`: dropping
    // a runtime waits for every blocking task, however long it hangs.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("libvirt-grpcd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("libvirt-grpcd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    runtime.shutdown_timeout(BLOCKING_CALLS_WAIT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("libvirt-grpcd: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsConfig {
            cert,
            key,
            client_ca: args.tls_client_ca,
        });
    }
    if !args.hosts.is_empty() {
        config.hosts = args.hosts;
    }
    if let Some(level) = args.log_level {
        config.log_level = level;
    }
    if let Some(grace) = args.shutdown_grace_secs {
        config.shutdown_grace_secs = grace;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics_listen = Some(addr);
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    config.validate()?;
    // Log lines go to stdout; colour only when that is a terminal.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log_level)?)
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Connections cost descriptors; the connection caps are sized to what
    // the limit leaves room for (see `transport::connection_budget`).
    match transport::raise_fd_limit() {
        Ok(limit) => tracing::info!(open_file_limit = limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    // libvirt prints every error to stderr by default; we report them ourselves.
    virt::error::clear_error_callback();
    let listener = Listener::bind(&config.listen).await?;
    for h in &config.hosts {
        tracing::info!(host = %h.name, uri = %h.uri, "configured host");
    }
    // The first SIGINT/SIGTERM starts the graceful shutdown; a second one
    // stops at once, without waiting for the rest of the grace period.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let signals = async move {
        let mut signals = Signals::new();
        signals.next().await;
        tracing::info!("shutting down (a second SIGINT/SIGTERM stops at once)");
        let _ = first_tx.send(());
        signals.next().await;
    };
    let first = async move {
        let _ = first_rx.await;
    };
    tokio::select! {
        r = server::serve(&config, listener, first) => r?,
        () = signals => tracing::warn!("second signal: stopping now"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, as often as they come.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        Signals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.term) => {},
            () = recv(&mut self.int) => {},
        }
    }
}
