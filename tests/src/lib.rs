//! Shared harness of the end-to-end suites: a real server on `127.0.0.1:0`
//! in this process, the real client crate, per-run name prefixes and cleanup
//! that runs even when a test fails.
//!
//! Real-libvirtd suites run only when `LIBVIRT_GRPC_REAL=1` (set by
//! `scripts/test.sh`, which also starts the daemon); with the variable set
//! they fail, rather than skip, when the daemon does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![forbid(unsafe_code)]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

pub use libvirt_grpc_client::{v1, Client, ClientError};
use libvirt_grpc_server::config::{Config, HostConfig};
use tokio::{sync::oneshot, task::JoinHandle};

pub mod boxes;
pub mod daemon;
pub mod guest;
pub mod peers;
pub mod pki;
pub mod raw_h2;
pub mod reads;
pub mod scenario;
pub mod sshd;

/// The URI of the real daemon the real suites use.
pub const REAL_URI: &str = "qemu:///system";

/// A server running in this process on an ephemeral loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server fronting libvirt's in-process test driver.
    pub async fn test_driver() -> Self {
        Self::start(vec![HostConfig::new("default", "test:///default")]).await
    }

    /// A server fronting the real daemon as host `real` (and the test
    /// driver as the default host `default`, so both are reachable).
    pub async fn real() -> Self {
        Self::start(vec![
            HostConfig::new("real", REAL_URI),
            HostConfig::new("default", "test:///default"),
        ])
        .await
    }

    /// A server with these hosts (the first is the default).
    pub async fn start(hosts: Vec<HostConfig>) -> Self {
        Self::start_with(Config {
            hosts,
            health_interval_secs: 1,
            ..Config::default()
        })
        .await
    }

    /// A server with a full configuration (its listen address is ignored).
    pub async fn start_with(config: Config) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// A server on a chosen loopback address (to restart one in place).
    pub async fn start_at(addr: SocketAddr, config: Config) -> Self {
        let (addr, shutdown, handle) = Self::spawn(addr, config, None).await;
        // The listener is bound before the server task starts, so the
        // connect below cannot race the bind: no sleep needed.
        let client = Client::connect(format!("http://{addr}"))
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(60));
        TestServer {
            addr,
            client,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// A server whose configuration has `[tls]`: its `client` is a plain
    /// one that connects only when used (and then fails); talk to it over
    /// [`pki::channel`].
    pub async fn start_tls(config: Config) -> Self {
        let (addr, shutdown, handle) =
            Self::spawn("127.0.0.1:0".parse().unwrap(), config, None).await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        TestServer {
            addr,
            client: Client::from_channel(channel),
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// Runs a server on `addr` (and the metrics endpoint on `metrics`).
    async fn spawn(
        addr: SocketAddr,
        config: Config,
        metrics: Option<tokio::net::TcpListener>,
    ) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
        let config = with_harness_roots(config);
        init_tracing();
        virt::error::clear_error_callback();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            libvirt_grpc_server::server::serve_with_metrics(&config, listener, metrics, shutdown)
                .await
                .expect("server failed");
        });
        (addr, tx, handle)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A server with `config` (its listen addresses are ignored) that also
    /// serves the metrics endpoint on an ephemeral loopback port; returns
    /// that port's address beside the server.
    pub async fn with_metrics(config: Config) -> (Self, SocketAddr) {
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (addr, shutdown, handle) =
            Self::spawn("127.0.0.1:0".parse().unwrap(), config, Some(metrics)).await;
        let client = Client::connect(format!("http://{addr}"))
            .await
            .unwrap()
            .with_timeout(Duration::from_secs(60));
        let server = TestServer {
            addr,
            client,
            shutdown: Some(shutdown),
            handle: Some(handle),
        };
        (server, metrics_addr)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("server did not stop within 10 s")
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The host path roots of the suites: the temporary directory their files
/// live in, the test driver's built-in pool (`/default-pool`, which the
/// suites redefine), the guest kernel's directory of the real suites, and
/// the server's default root.
pub fn harness_roots() -> Vec<std::path::PathBuf> {
    let mut roots = vec![
        std::env::temp_dir(),
        "/default-pool".into(),
        libvirt_grpc_server::confine::DEFAULT_ROOT.into(),
    ];
    for var in ["LIBVIRT_GRPC_GUEST_KERNEL", "LIBVIRT_GRPC_GUEST_INITRD"] {
        if let Some(dir) = std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .and_then(|p| p.parent().map(ToOwned::to_owned))
        {
            if !roots.contains(&dir) {
                roots.push(dir);
            }
        }
    }
    roots
}

/// `config` with [`harness_roots`] when it keeps the default roots; a test
/// that sets its own roots gets exactly those.
fn with_harness_roots(mut config: Config) -> Config {
    if config.host_path_roots == Config::default().host_path_roots {
        config.host_path_roots = harness_roots();
    }
    config
}

fn init_tracing() {
    let _ = tracing_subscriber_init();
}

fn tracing_subscriber_init() -> Result<(), ()> {
    // Logs only when RUST_LOG asks for them, to keep test output readable.
    if std::env::var_os("RUST_LOG").is_none() {
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init()
        .map_err(|_| ())
}

/// A loopback TCP port nothing listens on right now (for a host that is
/// down, or a daemon to start on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A name prefix unique to this test run and call: `lvgt<pid>x<n>-`.
pub fn prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lvgt{}x{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether the real-libvirtd suites should run; see the crate doc.
pub fn real_enabled() -> bool {
    match std::env::var("LIBVIRT_GRPC_REAL").as_deref() {
        Ok("1") => true,
        _ => {
            eprintln!("skipped: set LIBVIRT_GRPC_REAL=1 (scripts/test.sh does) to run against a real libvirtd");
            false
        }
    }
}

/// Removes, when dropped (also when the test panics), every domain, network,
/// storage pool (with its volumes) and file whose name starts with `prefix`
/// on `uri`.
pub struct Cleanup {
    pub uri: String,
    pub prefix: String,
    pub files: Vec<std::path::PathBuf>,
}

impl Cleanup {
    pub fn new(uri: &str, prefix: &str) -> Self {
        Cleanup {
            uri: uri.to_owned(),
            prefix: prefix.to_owned(),
            files: Vec::new(),
        }
    }

    /// Also remove this file or directory.
    pub fn file(&mut self, p: impl Into<std::path::PathBuf>) {
        self.files.push(p.into());
    }

    /// Removes everything now (also done on drop).
    pub fn run(&self) {
        // The daemon may be restarting (a suite restarts it on purpose):
        // keep trying for a while rather than leave objects behind.
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = virt::connect::Connect::open(Some(&self.uri)) {
                conn = Some(c);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let Some(conn) = conn else {
            eprintln!(
                "cleanup: cannot open {}; objects named {}* may remain",
                self.uri, self.prefix
            );
            return;
        };
        if let Ok(doms) = conn.list_all_domains(0) {
            for d in doms {
                if d.name()
                    .map(|n| n.starts_with(&self.prefix))
                    .unwrap_or(false)
                {
                    let _ = d.destroy();
                    let _ = d.undefine_flags(
                        virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                            | virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                            | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM,
                    );
                }
            }
        }
        if let Ok(nets) = conn.list_all_networks(0) {
            for n in nets {
                if n.name()
                    .map(|x| x.starts_with(&self.prefix))
                    .unwrap_or(false)
                {
                    let _ = n.destroy();
                    let _ = n.undefine();
                }
            }
        }
        if let Ok(pools) = conn.list_all_storage_pools(0) {
            for p in pools {
                let mine = p
                    .name()
                    .map(|x| x.starts_with(&self.prefix))
                    .unwrap_or(false);
                if let Ok(vols) = p.list_all_volumes(0) {
                    for v in vols {
                        if mine
                            || v.name()
                                .map(|x| x.starts_with(&self.prefix))
                                .unwrap_or(false)
                        {
                            let _ = v.delete(0);
                        }
                    }
                }
                if mine {
                    let _ = p.destroy();
                    let _ = p.undefine();
                }
            }
        }
        for f in &self.files {
            let _ = std::fs::remove_dir_all(f).or_else(|_| std::fs::remove_file(f));
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after
/// `timeout` with `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal diskless domain spec.
pub fn small_spec(name: &str) -> v1::DomainSpec {
    v1::DomainSpec {
        name: name.to_owned(),
        memory_bytes: 128 << 20,
        vcpus: 1,
        ..Default::default()
    }
}

/// The gRPC code of a client error (panics on success).
pub fn code_of<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> tonic::Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// A reference to domain `name` on `host` (empty: the default host).
pub fn domain_ref(host: &str, name: &str) -> Option<v1::DomainRef> {
    Some(v1::DomainRef {
        host: host.to_owned(),
        key: Some(v1::domain_ref::Key::Name(name.to_owned())),
    })
}

/// A reference to storage pool `name` on `host` (empty: the default host).
pub fn pool_ref(host: &str, name: &str) -> Option<v1::StoragePoolRef> {
    Some(v1::StoragePoolRef {
        host: host.to_owned(),
        key: Some(v1::storage_pool_ref::Key::Name(name.to_owned())),
    })
}

/// A reference to volume `name` in pool `pool` on `host`.
pub fn volume_ref(host: &str, pool: &str, name: &str) -> Option<v1::StorageVolumeRef> {
    Some(v1::StorageVolumeRef {
        pool: pool_ref(host, pool),
        name: name.to_owned(),
    })
}

/// A reference to network `name` on `host` (empty: the default host).
pub fn network_ref(host: &str, name: &str) -> Option<v1::NetworkRef> {
    Some(v1::NetworkRef {
        host: host.to_owned(),
        key: Some(v1::network_ref::Key::Name(name.to_owned())),
    })
}

/// A reference to snapshot `name` of domain `domain` on `host`.
pub fn snapshot_ref(host: &str, domain: &str, name: &str) -> Option<v1::SnapshotRef> {
    Some(v1::SnapshotRef {
        domain: domain_ref(host, domain),
        name: name.to_owned(),
    })
}

/// Runs `virsh -c uri args...`, asserting success; its standard output.
pub fn virsh_on(uri: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `virsh` against the real daemon ([`REAL_URI`]).
pub fn virsh(args: &[&str]) -> String {
    virsh_on(REAL_URI, args)
}

/// The field names of a status's `BadRequest` (empty without one).
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The resident set size of process `pid`, in KiB (from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `GET path` over plain HTTP/1.1 on `addr` (the metrics endpoint):
/// the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}
