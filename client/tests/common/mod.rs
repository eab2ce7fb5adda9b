//! What the CLI suites share: an in-process server, the tool as a
//! process, a per-run name prefix and a cleanup guard.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use libvirt_grpc_server::config::{Config, HostConfig};
use serde_json::Value;

pub const TEST_URI: &str = "test:///default";
pub const REAL_URI: &str = "qemu:///system";

/// A name prefix unique to this run and call.
pub fn prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lvcli{}x{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes, when dropped, every domain, network and pool (with its
/// volumes) named with `prefix` on `uri`, and the listed files.
pub struct Cleanup {
    pub uri: String,
    pub prefix: String,
    pub files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(conn) = virt::connect::Connect::open(Some(&self.uri)) else {
            eprintln!("cleanup: cannot open {}", self.uri);
            return;
        };
        let mine = |n: Result<String, virt::error::Error>| {
            n.map(|n| n.starts_with(&self.prefix)).unwrap_or(false)
        };
        for d in conn.list_all_domains(0).unwrap_or_default() {
            if mine(d.name()) {
                let _ = d.destroy();
                let _ = d.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
            }
        }
        for n in conn.list_all_networks(0).unwrap_or_default() {
            if mine(n.name()) {
                let _ = n.destroy();
                let _ = n.undefine();
            }
        }
        for p in conn.list_all_storage_pools(0).unwrap_or_default() {
            let pool_mine = mine(p.name());
            for v in p.list_all_volumes(0).unwrap_or_default() {
                if pool_mine || mine(v.name()) {
                    let _ = v.delete(0);
                }
            }
            if pool_mine {
                let _ = p.destroy();
                let _ = p.undefine();
            }
        }
        for f in &self.files {
            let _ = std::fs::remove_dir_all(f).or_else(|_| std::fs::remove_file(f));
        }
    }
}

pub fn real_enabled() -> bool {
    if std::env::var("LIBVIRT_GRPC_REAL").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "skipped: set LIBVIRT_GRPC_REAL=1 (scripts/test.sh does) to run against a real libvirtd"
    );
    false
}

/// A server on an ephemeral loopback port; stops when dropped.
pub struct Server {
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn server() -> Server {
    server_with(Config {
        hosts: vec![HostConfig::new("default", TEST_URI)],
        ..Config::default()
    })
    .await
}

pub async fn server_with(config: Config) -> Server {
    // libvirt would print every error it reports on stderr.
    virt::error::clear_error_callback();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        libvirt_grpc_server::server::serve(&config, listener, shutdown)
            .await
            .unwrap();
    });
    Server { url, _stop: stop }
}

pub fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_libvirt-grpc"));
    for v in [
        "LIBVIRT_GRPC_SERVER",
        "LIBVIRT_GRPC_HOST",
        "LIBVIRT_GRPC_TOKEN",
        "LIBVIRT_GRPC_CA",
        "LIBVIRT_GRPC_CERT",
        "LIBVIRT_GRPC_KEY",
    ] {
        c.env_remove(v);
    }
    c
}

/// Runs the tool (off the async runtime: it blocks).
pub async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

pub fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Runs the tool with `--server` and these arguments.
pub async fn tool(s: &Server, args: &[&str]) -> Output {
    let mut c = cli();
    c.args(["--server", &s.url]).args(args);
    run(c).await
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
