//! The `libvirt-grpc` tool as a process against a server (in this test's
//! process, on libvirt's test driver): JSON output parsed, flags in any
//! position, the environment, exit codes, files written.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output, Stdio};

use libvirt_grpc_server::config::{Config, HostConfig};
use serde_json::Value;

/// A server on an ephemeral loopback port; stops when dropped.
struct Server {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn server() -> Server {
    // libvirt would print every error it reports on stderr.
    virt::error::clear_error_callback();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        hosts: vec![HostConfig::new("default", "test:///default")],
        ..Config::default()
    };
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

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_libvirt-grpc"));
    c.env_remove("LIBVIRT_GRPC_SERVER")
        .env_remove("LIBVIRT_GRPC_HOST");
    c
}

/// Runs the tool (off the async runtime: it blocks).
async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[tokio::test]
async fn json_listing_flags_anywhere_and_the_environment() {
    let s = server().await;
    // Global flags after the subcommand.
    let mut c = cli();
    c.args(["list", "--json", "--server", &s.url]);
    let list = json_of(&run(c).await);
    let test = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "test")
        .expect("the test driver's domain");
    assert_eq!(test["state"], "RUNNING");
    assert_eq!(test["host"], "default");
    // The server from the environment, flags before the subcommand.
    let mut c = cli();
    c.env("LIBVIRT_GRPC_SERVER", &s.url)
        .args(["--json", "info", "test"]);
    let info = json_of(&run(c).await);
    assert_eq!(info["name"], "test");
    assert!(info["memory_bytes"].as_u64().unwrap() > 0, "{info}");
    // A table with headers otherwise.
    let mut c = cli();
    c.args(["--server", &s.url, "hosts"]);
    let o = run(c).await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("NAME") && text.contains("HEALTH"), "{text}");
    assert!(text.contains("test:///default"), "{text}");
}

#[tokio::test]
async fn exit_codes_tell_failures_apart_and_keep_their_cause() {
    let s = server().await;
    let mut c = cli();
    c.args(["--server", &s.url, "info", "no-such-domain-cli"]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(3), "NOT_FOUND");
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("not found"), "{err}");

    // Nothing listens on port 1: unreachable, with the transport's cause.
    let mut c = cli();
    c.args(["--server", "http://127.0.0.1:1", "list"]);
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(4), "UNAVAILABLE");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Cannot connect to http://127.0.0.1:1"),
        "{err}"
    );
    assert!(err.matches(": ").count() >= 2, "the cause is kept: {err}");

    // Bad input: clap's own code for a missing argument.
    let mut c = cli();
    c.args(["--server", &s.url, "info"]);
    assert_eq!(run(c).await.status.code(), Some(2));
}

#[tokio::test]
async fn a_domain_defined_run_and_removed() {
    let s = server().await;
    let name = format!("cli-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let xml = dir.join("dom.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        ),
    )
    .unwrap();
    let step = |args: Vec<String>| {
        let mut c = cli();
        c.args(["--json", "--server", &s.url]).args(args);
        run(c)
    };
    let d = json_of(
        &step(vec![
            "define".into(),
            "--xml".into(),
            xml.display().to_string(),
        ])
        .await,
    );
    assert_eq!(
        (d["name"].as_str(), d["state"].as_str()),
        (Some(name.as_str()), Some("SHUTOFF"))
    );
    let d = json_of(&step(vec!["start".into(), name.clone()]).await);
    assert_eq!(d["state"], "RUNNING");
    let d = json_of(&step(vec!["suspend".into(), name.clone()]).await);
    assert_eq!(d["state"], "PAUSED");
    let d = json_of(&step(vec!["resume".into(), name.clone()]).await);
    assert_eq!(d["state"], "RUNNING");
    // A screenshot to a file that is a PNG.
    let png = dir.join("screen.png");
    let o = step(vec![
        "screenshot".into(),
        name.clone(),
        "-o".into(),
        png.display().to_string(),
    ])
    .await;
    let shot = json_of(&o);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(shot["bytes"].as_u64(), Some(bytes.len() as u64));
    let d = json_of(&step(vec!["destroy".into(), name.clone()]).await);
    assert_eq!(d["state"], "SHUTOFF");
    let u = json_of(&step(vec!["undefine".into(), name.clone()]).await);
    assert_eq!(u["undefined"], true);
    let o = step(vec!["info".into(), name.clone()]).await;
    assert_eq!(o.status.code(), Some(3), "gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn events_print_one_line_per_event_as_they_come() {
    let s = server().await;
    let mut c = cli();
    c.args([
        "events", "--json", "--count", "2", "--name", "test", "--server", &s.url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // Give the watcher time to subscribe, then cause two events.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for verb in ["suspend", "resume"] {
        let mut c = cli();
        c.args(["--server", &s.url, verb, "test"]);
        assert!(run(c).await.status.success());
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let details: Vec<&str> = lines
        .iter()
        .map(|l| l["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details, ["SUSPENDED", "RESUMED"], "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["kind"] == "LIFECYCLE" && l["name"] == "test"));
}

#[tokio::test]
async fn completions_are_generated_from_the_definitions() {
    let mut c = cli();
    c.args(["completions", "bash"]);
    let o = run(c).await;
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(
        script.contains("libvirt-grpc") && script.contains("screenshot"),
        "{script}"
    );
}
