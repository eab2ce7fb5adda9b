//! The `libvirt-grpcd` binary itself: `--version`, the log formats (JSON
//! lines; no colour codes when stdout is not a terminal), the start line
//! naming the address, and bind failures naming the address they could
//! not bind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_libvirt-grpcd");

/// The binary with `args`, stdout and stderr piped, no NO_COLOR (so only
/// the terminal check can turn colour off).
fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning libvirt-grpcd")
}

/// Reads the child's stdout lines until one contains `until` (at most
/// 30 s), then kills the child by its pid; returns the lines read.
fn lines_until(mut child: Child, until: &str) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    let found = loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "no line with {until:?} within 30 s: {lines:#?}");
    lines
}

/// Waits (at most 30 s) for the child to exit; its status and stderr.
fn exit_of(mut child: Child) -> (std::process::ExitStatus, String) {
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("libvirt-grpcd did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn version_names_the_git_revision_and_libvirt() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("libvirt-grpcd {}", env!("CARGO_PKG_VERSION"))
    );
    let rev = lines[1]
        .strip_prefix("git revision: ")
        .unwrap_or_else(|| panic!("no git revision line: {text}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned());
    match head {
        Some(head) => assert!(
            rev == head || rev == format!("{head}-dirty"),
            "revision {rev}, HEAD is {head}"
        ),
        None => assert_eq!(rev, "unknown"),
    }
    let libvirt = lines[2]
        .strip_prefix("libvirt library: ")
        .unwrap_or_else(|| panic!("no libvirt line: {text}"));
    assert_eq!(
        libvirt,
        libvirt_grpc_server::ops::host::library_version().unwrap()
    );
    let parts: Vec<&str> = libvirt.split('.').collect();
    assert_eq!(parts.len(), 3, "{libvirt}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{libvirt}");
    // -V is the same.
    let short = Command::new(BIN).arg("-V").output().unwrap();
    assert_eq!(String::from_utf8(short.stdout).unwrap(), text);
}

#[test]
fn json_logs_are_json_lines() {
    let child = spawn(&[
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "info",
    ]);
    let lines = lines_until(child, "listening on");
    let mut start = None;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        if let Some(addr) = message.strip_prefix("listening on ") {
            start = Some((addr.to_owned(), v["fields"]["addr"].clone()));
        }
    }
    let (addr, field) = start.expect("the start line");
    let addr: std::net::SocketAddr = addr.parse().expect("the start line names an address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(field.as_str(), Some(addr.to_string().as_str()));
}

#[test]
fn text_logs_have_no_colour_off_a_terminal() {
    let child = spawn(&["--listen", "127.0.0.1:0", "--log-level", "info"]);
    let lines = lines_until(child, "listening on");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
    }
    let start = lines.iter().find(|l| l.contains("listening on")).unwrap();
    let addr = start
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().expect("an address");
    assert_ne!(addr.port(), 0);
}

#[test]
fn busy_grpc_address_is_named() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (status, err) = exit_of(spawn(&["--listen", &addr]));
    assert!(!status.success());
    assert!(
        err.contains(&format!("cannot listen on {addr}")),
        "stderr: {err}"
    );
}

#[test]
fn busy_metrics_address_is_named() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (status, err) = exit_of(spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        &addr,
    ]));
    assert!(!status.success());
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}")),
        "stderr: {err}"
    );
}
