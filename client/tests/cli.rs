//! The `libvirt-grpc` tool as a process against a server in this test's
//! process on libvirt's test driver: JSON output parsed, flags in any
//! position, the environment, exit codes, files written, spec files,
//! snapshots, events as they happen, tokens, man pages. Every object a
//! test makes is named with a per-run prefix and removed by a `Cleanup`
//! guard, also when the test fails. `cli_real.rs` has the suites that need
//! the real libvirtd.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{io::BufRead, process::Stdio, time::Duration};

use common::*;
use libvirt_grpc_client::v1;
use libvirt_grpc_server::config::{Config, HostConfig};
use serde_json::Value;

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
    // The tool resumes after the position read now, so it sees both events
    // however long it takes to subscribe (no sleep).
    let pos = libvirt_grpc_client::Client::connect(s.url.clone())
        .await
        .unwrap()
        .events()
        .get_event_position(v1::GetEventPositionRequest {})
        .await
        .unwrap()
        .into_inner();
    let after = pos.sequence.to_string();
    let mut c = cli();
    c.args([
        "events", "--json", "--count", "2", "--name", "test", "--server", &s.url, "--after",
        &after, "--epoch", &pos.epoch,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
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

#[tokio::test]
async fn a_domain_from_a_spec_file_with_snapshots_and_a_screenshot() {
    let s = server().await;
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    let _c = Cleanup {
        uri: TEST_URI.into(),
        prefix: p.clone(),
        files: vec![dir.clone()],
    };
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{p}web");
    // TOML with short enum names; every DomainSpec field is accepted.
    let spec = dir.join("web.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "{name}"
memory_bytes = 134217728
vcpus = 2
title = "from a spec file"
[[disks]]
source_path = "/var/lib/libvirt/images/{name}.img"
target_dev = "vda"
format = "raw"
bus = "sata"
[on_lifecycle]
on_crash = "preserve"
"#
        ),
    )
    .unwrap();
    let d = json_of(&tool(&s, &["--json", "define", "--spec", spec.to_str().unwrap()]).await);
    assert_eq!(d["name"], name.as_str());
    assert_eq!(d["state"], "SHUTOFF");
    assert_eq!(d["memory_bytes"], 128u64 << 20);
    assert_eq!(d["vcpus"], 2);
    let xml = tool(&s, &["dumpxml", &name]).await;
    let xml = String::from_utf8_lossy(&xml.stdout);
    assert!(xml.contains("<title>from a spec file</title>"), "{xml}");
    assert!(xml.contains("bus='sata'"), "{xml}");

    // A JSON spec updates it (same name): camelCase field names work too.
    let spec_json = dir.join("web.json");
    std::fs::write(
        &spec_json,
        format!(r#"{{"name":"{name}","memoryBytes":"268435456","vcpus":1}}"#),
    )
    .unwrap();
    let d = json_of(
        &tool(
            &s,
            &["define", "--spec", spec_json.to_str().unwrap(), "--json"],
        )
        .await,
    );
    assert_eq!(d["memory_bytes"], 256u64 << 20);
    // A spec with a misspelt field is bad input, nothing sent.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("name = \"{p}bad\"\nmemroy_bytes = 1\n")).unwrap();
    let o = tool(&s, &["define", "--spec", bad.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("memroy_bytes"), "{}", stderr_of(&o));

    let d = json_of(&tool(&s, &["--json", "start", &name]).await);
    assert_eq!(d["state"], "RUNNING");
    // The listing as JSON, parsed.
    let list = json_of(&tool(&s, &["list", "--json"]).await);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name.as_str())
        .expect("the new domain is listed");
    assert_eq!(mine["state"], "RUNNING");
    assert_eq!(mine["host"], "default");
    let d = json_of(&tool(&s, &["--json", "setmem", &name, "128M"]).await);
    assert_eq!(d["memory_bytes"], 128u64 << 20);
    let d = json_of(&tool(&s, &["--json", "autostart", &name, "on"]).await);
    assert_eq!(d["autostart"], true);
    let stats = json_of(&tool(&s, &["--json", "stats", &name]).await);
    assert_eq!(stats[0]["name"], name.as_str());
    assert_eq!(stats[0]["state"], "RUNNING");

    // A screenshot to a file that is a valid PNG.
    let png = dir.join("screen.png");
    let shot = json_of(
        &tool(
            &s,
            &["--json", "screenshot", &name, "-o", png.to_str().unwrap()],
        )
        .await,
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(shot["bytes"].as_u64(), Some(bytes.len() as u64));
    // IHDR first, and a sane size in it.
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    assert!(width > 0);

    // Snapshots: create, list, current, delete.
    let snap = format!("{p}s1");
    let made = json_of(
        &tool(
            &s,
            &[
                "--json",
                "snapshot",
                "create",
                &name,
                "--name",
                &snap,
                "--description",
                "cli",
            ],
        )
        .await,
    );
    assert_eq!(made["name"], snap.as_str());
    assert_eq!(made["domain"], name.as_str());
    assert_eq!(made["state"], "RUNNING");
    let listed = json_of(&tool(&s, &["--json", "snapshot", "list", &name]).await);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [snap.as_str()]);
    let cur = json_of(&tool(&s, &["--json", "snap", "current", &name]).await);
    assert_eq!(cur["name"], snap.as_str());
    assert_eq!(cur["current"], true);
    let table = tool(&s, &["snapshot", "list", &name]).await;
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("CREATED") && table.contains(&snap),
        "{table}"
    );
    let del = json_of(&tool(&s, &["--json", "snapshot", "delete", &name, &snap]).await);
    assert_eq!(del["deleted"], true);
    let listed = json_of(&tool(&s, &["--json", "snapshot", "list", &name]).await);
    assert_eq!(listed, Value::Array(vec![]));
    let o = tool(&s, &["snapshot", "info", &name, &snap]).await;
    assert_eq!(o.status.code(), Some(3), "a deleted snapshot is not found");

    let d = json_of(&tool(&s, &["--json", "destroy", &name]).await);
    assert_eq!(d["state"], "SHUTOFF");
    let u = json_of(&tool(&s, &["--json", "undefine", &name]).await);
    assert_eq!(u["undefined"], true);
}

/// The next line the child printed, as JSON (within 20 s).
async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
        .await
        .expect("an event line in time")
        .expect("the tool still runs");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn events_follow_prints_lifecycle_lines_as_they_happen() {
    let s = server().await;
    let p = prefix();
    let _c = Cleanup {
        uri: TEST_URI.into(),
        prefix: p.clone(),
        files: Vec::new(),
    };
    let name = format!("{p}ev");
    let client = libvirt_grpc_client::Client::connect(s.url.clone())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    // Where the event stream is now: the tool resumes after it, so no
    // event is missed however long the process takes to subscribe.
    let pos = client
        .events()
        .get_event_position(v1::GetEventPositionRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut c = cli();
    c.args([
        "--server",
        &s.url,
        "events",
        "--follow",
        "--json",
        "--name",
        &name,
        "--kind",
        "lifecycle",
        "--after",
        &pos.sequence.to_string(),
        "--epoch",
        &pos.epoch,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    client
        .define_domain(v1::DomainSpec {
            name: name.clone(),
            memory_bytes: 64 << 20,
            vcpus: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let defined = next_line(&mut lines).await;
    assert_eq!(defined["detail"], "DEFINED", "{defined}");
    assert_eq!(defined["name"], name.as_str());
    client.start_domain(&name).await.unwrap();
    // The line comes while the tool runs on (not at its exit).
    let started = next_line(&mut lines).await;
    assert_eq!(started["detail"], "STARTED", "{started}");
    assert_eq!(started["kind"], "LIFECYCLE");
    assert_eq!(started["name"], name.as_str());
    assert!(child.try_wait().unwrap().is_none(), "events --follow ended");

    client.stop_domain(&name).await.unwrap();
    let stopped = next_line(&mut lines).await;
    assert_eq!(stopped["detail"], "STOPPED", "{stopped}");
    assert!(stopped["sequence"].as_u64() > started["sequence"].as_u64());
    assert!(child.try_wait().unwrap().is_none(), "events --follow ended");

    // Stop only the process this test started.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn what_the_test_driver_cannot_do_exits_8() {
    let s = server().await;
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    let _c = Cleanup {
        uri: TEST_URI.into(),
        prefix: p.clone(),
        files: vec![dir.clone()],
    };
    std::fs::create_dir_all(&dir).unwrap();
    // The test driver's networks are listed, but it has no DHCP leases.
    let nets = json_of(&tool(&s, &["--json", "net", "list"]).await);
    assert!(
        nets.as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "default"),
        "{nets}"
    );
    let o = tool(&s, &["net", "dhcp-leases", "default"]).await;
    assert_eq!(o.status.code(), Some(8), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("virNetworkGetDHCPLeases"),
        "{}",
        stderr_of(&o)
    );
    // No volume transfers either: the volume the upload created is gone.
    let file = dir.join("up.bin");
    std::fs::write(&file, vec![7u8; 4096]).unwrap();
    let vol = format!("{p}up.img");
    let o = tool(
        &s,
        &[
            "vol",
            "upload",
            "default-pool",
            &vol,
            file.to_str().unwrap(),
            "--create",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(8), "{}", stderr_of(&o));
    let o = tool(&s, &["vol", "info", "default-pool", &vol]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    // No consoles.
    let mut c = cli();
    c.args(["--server", &s.url, "console", "test"])
        .stdin(Stdio::null());
    let o = run(c).await;
    assert_eq!(o.status.code(), Some(8), "{}", stderr_of(&o));
}

#[tokio::test]
async fn the_man_page_comes_from_the_definitions() {
    let mut c = cli();
    c.arg("man");
    let o = run(c).await;
    assert!(o.status.success());
    let roff = String::from_utf8_lossy(&o.stdout);
    assert!(roff.starts_with(".ie") || roff.contains(".TH"), "{roff}");
    assert!(
        roff.contains("libvirt\\-grpc") && roff.contains("snapshot"),
        "{roff}"
    );
    // The exit codes are in it (after_long_help).
    assert!(roff.contains("Exit status: 0 success"), "{roff}");
    let dir = std::env::temp_dir().join(format!("{}man", prefix()));
    let mut c = cli();
    c.args(["man", "--dir", dir.to_str().unwrap()]);
    assert!(run(c).await.status.success());
    for page in [
        "libvirt-grpc.1",
        "libvirt-grpc-vol-upload.1",
        "libvirt-grpc-snapshot-create.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} in {dir:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_bearer_token_from_the_environment_or_the_flag() {
    use libvirt_grpc_server::{
        auth::Role,
        config::{AuthConfig, TokenConfig},
    };
    use sha2::Digest;
    let token = format!("cli-token-{}", prefix());
    let sha: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let s = server_with(Config {
        hosts: vec![HostConfig::new("default", TEST_URI)],
        auth: Some(AuthConfig {
            tokens: vec![TokenConfig {
                name: "cli".into(),
                role: Role::Reader,
                sha256: sha,
            }],
            ..AuthConfig::default()
        }),
        ..Config::default()
    })
    .await;
    // Without a token: not allowed.
    let o = tool(&s, &["list"]).await;
    assert_eq!(o.status.code(), Some(6), "{}", stderr_of(&o));
    // From the environment.
    let mut c = cli();
    c.env("LIBVIRT_GRPC_TOKEN", &token)
        .args(["--server", &s.url, "--json", "list"]);
    let list = json_of(&run(c).await);
    assert!(list.as_array().unwrap().iter().any(|d| d["name"] == "test"));
    // From the flag; a reader may not change anything.
    let o = tool(&s, &["--token", &token, "suspend", "test"]).await;
    assert_eq!(o.status.code(), Some(6), "{}", stderr_of(&o));
    // The token is never shown in --help.
    let mut c = cli();
    c.env("LIBVIRT_GRPC_TOKEN", &token).arg("--help");
    let help = run(c).await;
    assert!(!String::from_utf8_lossy(&help.stdout).contains(&token));
}
