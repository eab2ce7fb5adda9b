//! The real `libvirt-grpcd` binary as a child process, for what only a
//! process shows: signals, exit status, exit time.
//!
//! The binary belongs to another package, so cargo does not build it for
//! this one's tests: [`binary`] asks cargo to (a no-op when it is up to
//! date). The child listens on `127.0.0.1:0`; its log line `serving
//! addr=...` says where, and doubles as the readiness signal. A child
//! still running when its [`Daemon`] is dropped is killed by its pid.

use std::{
    io::BufRead,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

/// Builds `libvirt-grpcd` (same profile as this test) and returns its path.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> directory")
        .to_owned();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-q",
        "-p",
        "libvirt-grpc-server",
        "--bin",
        "libvirt-grpcd",
    ]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    // Without the variables cargo sets for a test run: build scripts that
    // watch them (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild
    // here, and again in the next plain `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if set_for_tests {
            cmd.env_remove(name.as_ref());
        }
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build of libvirt-grpcd failed");
    profile_dir.join("libvirt-grpcd")
}

/// A running `libvirt-grpcd` child.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

/// Drops terminal escape sequences (colours) from a log line.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Daemon {
    /// Starts the binary with `config_toml` as its config file (its
    /// `listen` is overridden with `127.0.0.1:0`) plus `extra_args`, and
    /// waits (at most 60 s) until it serves.
    pub fn start(config_toml: &str, extra_args: &[&str]) -> Daemon {
        let bin = binary();
        let config = std::env::temp_dir().join(format!("{}config.toml", crate::prefix()));
        std::fs::write(&config, config_toml).unwrap();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .args(extra_args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning libvirt-grpcd");
        let stdout = child.stdout.take().expect("child stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let line = plain(&line);
                if line.contains("listening on ") {
                    if let Some(a) = line.split("addr=").nth(1) {
                        let a = a.split_whitespace().next().unwrap_or("");
                        if let Ok(a) = a.parse::<SocketAddr>() {
                            let _ = addr_tx.send(a);
                        }
                    }
                }
                eprintln!("[libvirt-grpcd] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            config,
            log,
        };
        match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => d.addr = addr,
            Err(_) => panic!("libvirt-grpcd did not log 'listening on ... addr=' within 60 s"),
        }
        d
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM to the child (by its pid).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill -TERM {} failed", self.pid());
    }

    /// Waits at most `timeout` for the child to exit; returns its status
    /// and when it was seen gone.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<(ExitStatus, Instant)> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the child") {
                return Some((status, Instant::now()));
            }
            if Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether any log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Our own child, by its pid.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}
