//! The `libvirt-grpc` tool against the real libvirtd (only with
//! LIBVIRT_GRPC_REAL=1; otherwise each test prints "skipped"): volume
//! transfers byte for byte with a progress bar on a pseudo-terminal only,
//! the test guest's agent and console, and `migrate` to a libvirtd "host
//! in a box" (scripts/libvirtd-box.sh) and back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::*;
use libvirt_grpc_server::config::{Config, HostConfig};
use serde_json::Value;

/// Runs `command` (a shell line) under a pseudo-terminal with util-linux's
/// `script`; answers what the terminal showed and the exit status.
async fn on_a_terminal(command: String) -> (String, Option<i32>) {
    let mut c = Command::new("script");
    c.args(["-qefc", &command, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("LIBVIRT_GRPC_SERVER")
        .env_remove("LIBVIRT_GRPC_HOST");
    let o = run(c).await;
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code(),
    )
}

#[tokio::test]
async fn volume_upload_and_download_byte_identical_with_a_bar_only_on_a_terminal() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    let pool_dir = dir.join("pool");
    let _c = Cleanup {
        uri: REAL_URI.into(),
        prefix: p.clone(),
        files: vec![dir.clone()],
    };
    std::fs::create_dir_all(&dir).unwrap();
    let s = server_with(Config {
        hosts: vec![
            HostConfig::new("default", TEST_URI),
            HostConfig::new("real", REAL_URI),
        ],
        host_path_roots: vec![dir.clone()],
        ..Config::default()
    })
    .await;
    let pool = format!("{p}pool");
    let spec = dir.join("pool.json");
    std::fs::write(
        &spec,
        format!(
            r#"{{"name":"{pool}","type":"dir","target_path":"{}"}}"#,
            pool_dir.display()
        ),
    )
    .unwrap();
    let made = json_of(
        &tool(
            &s,
            &[
                "--host",
                "real",
                "--json",
                "pool",
                "define",
                "--spec",
                spec.to_str().unwrap(),
                "--build",
                "--start",
            ],
        )
        .await,
    );
    assert_eq!(made["state"], "RUNNING");

    // 12 MiB of data that no compression shortens.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..12 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let vol = format!("{p}disk.img");

    // Piped: no bar, no terminal codes, one JSON document.
    let o = tool(
        &s,
        &[
            "--host",
            "real",
            "--json",
            "vol",
            "upload",
            &pool,
            &vol,
            src.to_str().unwrap(),
            "--create",
        ],
    )
    .await;
    let up = json_of(&o);
    assert_eq!(up["bytes"], data.len() as u64);
    assert_eq!(up["created"], true);
    assert!(
        o.stderr.is_empty(),
        "no bar when piped: {:?}",
        stderr_of(&o)
    );
    let back = dir.join("back.bin");
    let o = tool(
        &s,
        &[
            "--host",
            "real",
            "--json",
            "vol",
            "download",
            &pool,
            &vol,
            back.to_str().unwrap(),
        ],
    )
    .await;
    let down = json_of(&o);
    assert!(
        o.stderr.is_empty(),
        "no bar when piped: {:?}",
        stderr_of(&o)
    );
    assert_eq!(down["sha256"], up["sha256"]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "downloaded bytes differ"
    );

    // On a terminal: the bar is drawn (on stderr, which is the terminal).
    let bin = env!("CARGO_BIN_EXE_libvirt-grpc");
    let again = dir.join("again.bin");
    let (screen, code) = on_a_terminal(format!(
        "{bin} --server {} --host real vol download {pool} {vol} {}",
        s.url,
        again.display()
    ))
    .await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains(&format!("downloading {vol}")),
        "no bar: {screen:?}"
    );
    assert!(screen.contains("MiB"), "no byte counts: {screen:?}");
    assert!(
        std::fs::read(&again).unwrap() == data,
        "downloaded bytes differ"
    );
    let (screen, code) = on_a_terminal(format!(
        "{bin} --server {} --host real vol upload {pool} {vol} {} --create",
        s.url,
        src.display()
    ))
    .await;
    // The volume exists now: refused, and said so on the terminal.
    assert_eq!(code, Some(7), "{screen}");
    let _ = screen;
    let o = tool(&s, &["--host", "real", "vol", "delete", &pool, &vol]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
    let (screen, code) = on_a_terminal(format!(
        "{bin} --server {} --host real vol upload {pool} {vol} {} --create",
        s.url,
        src.display()
    ))
    .await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains(&format!("uploading {vol}")),
        "no bar: {screen:?}"
    );
}

/// The test guest of scripts/build-test-guest.sh (kernel, initramfs with
/// busybox and qemu-guest-agent) as domain XML with an interactive pty
/// console logged to `log`.
fn guest_xml(name: &str, log: &str) -> String {
    let xml = guest_xml_logged(name, log);
    let start = xml.find("<serial type='file'>").unwrap();
    let end = xml.find("</console>").unwrap() + "</console>".len();
    let pty = format!(
        "<serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console>"
    );
    format!("{}{pty}{}", &xml[..start], &xml[end..])
}

/// The test guest as the template has it: its serial console written to
/// the file `log` (no disk, no pty: nothing a migration must carry).
fn guest_xml_logged(name: &str, log: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (kernel, initrd) = match (
        std::env::var("LIBVIRT_GRPC_GUEST_KERNEL"),
        std::env::var("LIBVIRT_GRPC_GUEST_INITRD"),
    ) {
        (Ok(k), Ok(i)) => (k, i),
        _ => {
            let out = Command::new(root.join("scripts/build-test-guest.sh"))
                .output()
                .unwrap();
            assert!(out.status.success(), "build-test-guest.sh failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let mut l = text.lines();
            (l.next().unwrap().to_owned(), l.next().unwrap().to_owned())
        }
    };
    std::fs::read_to_string(root.join("scripts/test-guest-domain.xml.in"))
        .unwrap()
        .replace("@NAME@", name)
        .replace("@KERNEL@", &kernel)
        .replace("@INITRD@", &initrd)
        .replace("@CONSOLE_LOG@", log)
}

/// Polls `check` every 500 ms until it is true, or panics after `limit`.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_real_guest_agent_exec_files_and_console() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    let log = format!("/tmp/{p}guest-console.log");
    let _c = Cleanup {
        uri: REAL_URI.into(),
        prefix: p.clone(),
        files: vec![dir.clone(), PathBuf::from(&log)],
    };
    std::fs::create_dir_all(&dir).unwrap();
    let s = server_with(Config {
        hosts: vec![
            HostConfig::new("real", REAL_URI),
            HostConfig::new("default", TEST_URI),
        ],
        ..Config::default()
    })
    .await;
    let name = format!("{p}guest");
    let xml = dir.join("guest.xml");
    std::fs::write(&xml, guest_xml(&name, &log)).unwrap();
    let d = json_of(&tool(&s, &["--json", "define", "--xml", xml.to_str().unwrap()]).await);
    assert_eq!(d["host"], "real");
    let d = json_of(&tool(&s, &["--json", "start", &name]).await);
    assert_eq!(d["state"], "RUNNING");
    wait_for(Duration::from_secs(120), "the guest agent", || async {
        tool(&s, &["agent", "ping", &name]).await.status.success()
    })
    .await;

    // Live output, and the guest program's status as the tool's.
    let o = tool(
        &s,
        &[
            "agent",
            "exec",
            &name,
            "/bin/sh",
            "-c",
            "echo out-$((6*7)); echo err-$((2+3)) >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr_of(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out-42\n");
    assert!(stderr_of(&o).contains("err-5"), "{}", stderr_of(&o));
    let o = tool(&s, &["--json", "agent", "exec", &name, "/bin/echo", "hi"]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines[0]["started"]["pid"].as_i64().unwrap() > 0,
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["exited"]["exit_code"], 0, "{lines:?}");
    assert!(lines.iter().any(|l| l["stdout"] == "hi\n"), "{lines:?}");

    // A file into the guest and back, byte for byte.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
    let local = dir.join("put.bin");
    std::fs::write(&local, &data).unwrap();
    let guest_path = format!("/tmp/{p}file");
    let put = json_of(
        &tool(
            &s,
            &[
                "--json",
                "agent",
                "file-put",
                &name,
                local.to_str().unwrap(),
                &guest_path,
            ],
        )
        .await,
    );
    assert_eq!(put["bytes"], data.len() as u64);
    let back = dir.join("get.bin");
    let got = json_of(
        &tool(
            &s,
            &[
                "--json",
                "agent",
                "file-get",
                &name,
                &guest_path,
                back.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert_eq!(got["sha256"], put["sha256"]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the guest file differs"
    );

    // The console under a pseudo-terminal: a typed line runs in the
    // guest's shell, Ctrl-] ends the session with exit 0.
    let bin = env!("CARGO_BIN_EXE_libvirt-grpc");
    let mut c = Command::new("script");
    c.args([
        "-qefc",
        &format!("{bin} --server {} console {name}", s.url),
        "/dev/null",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                return;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let shows = |needle: &str| seen.lock().unwrap().contains(needle);
    wait_for(
        Duration::from_secs(30),
        "the console to connect",
        || async { shows("Escape character is ^]") },
    )
    .await;
    // Typed again until the shell answered (it may still be starting).
    let mut tries = 0;
    wait_for(Duration::from_secs(60), "the guest shell's answer", || {
        tries += 1;
        if tries % 6 == 1 {
            std::io::Write::write_all(&mut stdin, b"echo con-$((7*8))\r").unwrap();
        }
        let done = shows("con-56");
        async move { done }
    })
    .await;
    std::io::Write::write_all(&mut stdin, b"\x1d").unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if std::time::Instant::now() > end {
                // Stop only the process this test started.
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    drop(stdin);
    let status = status.expect("Ctrl-] did not end the console");
    assert_eq!(status.code(), Some(0), "{}", seen.lock().unwrap());

    // Devices, keys and statistics that the test driver cannot do.
    let cdrom = dir.join("cdrom.xml");
    std::fs::write(
        &cdrom,
        "<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/><readonly/></disk>",
    )
    .unwrap();
    let cd = cdrom.to_str().unwrap();
    let o = tool(&s, &["attach-device", &name, cd, "--config"]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
    let inactive = |o: Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let xml = inactive(tool(&s, &["dumpxml", &name, "--inactive"]).await);
    assert!(xml.contains("dev='sdb'"), "{xml}");
    let o = tool(&s, &["detach-device", &name, cd, "--config"]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
    let xml = inactive(tool(&s, &["dumpxml", &name, "--inactive"]).await);
    assert!(!xml.contains("dev='sdb'"), "{xml}");
    let o = tool(&s, &["send-key", &name, "KEY_LEFTSHIFT", "KEY_A"]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
    let stats = json_of(&tool(&s, &["--json", "stats", &name]).await);
    assert!(
        stats[0]["cpu"]["cpu_time"].as_f64().unwrap() > 0.0,
        "{stats}"
    );

    let d = json_of(&tool(&s, &["--json", "destroy", &name]).await);
    assert_eq!(d["state"], "SHUTOFF");
}

/// A libvirtd "host in a box" (scripts/libvirtd-box.sh): its own state
/// and host UUID, reached at `qemu+tcp://127.0.0.1:PORT/system`. Dropping
/// it purges it (its guests destroyed, its daemon stopped by the pid the
/// script checked, its state deleted), also when the test panics.
struct LibvirtBox {
    name: String,
    uri: String,
}

fn box_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/libvirtd-box.sh")
}

impl LibvirtBox {
    /// Starts box `name` and waits until it answers.
    async fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let b = LibvirtBox {
            name: name.to_owned(),
            uri: format!("qemu+tcp://127.0.0.1:{port}/system"),
        };
        let mut c = Command::new(box_script());
        c.args(["start", name, &port.to_string()]);
        let o = run(c).await;
        assert!(
            o.status.success(),
            "libvirtd-box.sh start {name} failed: {}",
            stderr_of(&o)
        );
        b
    }
}

impl Drop for LibvirtBox {
    fn drop(&mut self) {
        match Command::new(box_script())
            .args(["purge", &self.name])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "libvirtd-box.sh purge {} failed: {}",
                self.name,
                stderr_of(&o)
            ),
            Err(e) => eprintln!("cannot run libvirtd-box.sh purge {}: {e}", self.name),
        }
    }
}

/// A configured host that migrations reach over loopback.
fn migration_host(name: &str, uri: &str) -> HostConfig {
    HostConfig {
        migration_address: "127.0.0.1".into(),
        ..HostConfig::new(name, uri)
    }
}

/// `--json` lines: every `{"progress": ...}` before the last, and the last.
fn progress_and_domain(o: &Output) -> (Vec<Value>, Value) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr_of(o)
    );
    let mut lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.pop().expect("no output");
    for l in &lines {
        assert_eq!(
            l["progress"]["operation"], "MIGRATION_OUT",
            "not a progress line: {l}"
        );
    }
    (lines, last)
}

#[tokio::test]
async fn migrate_to_a_box_and_back_with_json_a_bar_and_exit_codes() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    let log = format!("/tmp/{p}mig-console.log");
    // Dropped last to first: the box's guests, the box, then the real
    // host's domains and the files.
    let _c = Cleanup {
        uri: REAL_URI.into(),
        prefix: p.clone(),
        files: vec![dir.clone(), PathBuf::from(&log)],
    };
    let bx = LibvirtBox::start(&format!("{p}b0")).await;
    let _cb = Cleanup {
        uri: bx.uri.clone(),
        prefix: p.clone(),
        files: vec![],
    };
    std::fs::create_dir_all(&dir).unwrap();
    // Nothing listens there: configured, but down.
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let down = format!("qemu+tcp://127.0.0.1:{down_port}/system");
    let s = server_with(Config {
        hosts: vec![
            migration_host("real", REAL_URI),
            migration_host("box", &bx.uri),
            migration_host("down", &down),
        ],
        ..Config::default()
    })
    .await;
    let name = format!("{p}mig");
    let xml = dir.join("guest.xml");
    std::fs::write(&xml, guest_xml_logged(&name, &log)).unwrap();
    let d = json_of(
        &tool(
            &s,
            &[
                "--host",
                "real",
                "--json",
                "define",
                "--xml",
                xml.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert_eq!(d["host"], "real");
    let d = json_of(&tool(&s, &["--host", "real", "--json", "start", &name]).await);
    assert_eq!(d["state"], "RUNNING");

    // Piped with --json: no bar, progress lines, then the domain on the
    // box as the last line.
    let t = std::time::Instant::now();
    let o = tool(&s, &["--host", "real", "--json", "migrate", &name, "box"]).await;
    let took = t.elapsed();
    let (progress, d) = progress_and_domain(&o);
    assert!(o.stderr.is_empty(), "no bar when piped: {}", stderr_of(&o));
    assert_eq!(
        (&d["host"], &d["name"], &d["state"]),
        (&"box".into(), &name.as_str().into(), &"RUNNING".into()),
        "{d}"
    );
    eprintln!("real -> box: {took:?}, {} progress lines", progress.len());
    // The box runs it (a transient domain there); the real host keeps its
    // definition, shut off by the migration.
    let on_box = json_of(&tool(&s, &["--host", "box", "--json", "info", &name]).await);
    assert_eq!(
        (&on_box["state"], &on_box["persistent"]),
        (&"RUNNING".into(), &false.into())
    );
    assert_eq!(on_box["uuid"], d["uuid"]);
    let all = json_of(&tool(&s, &["--json", "list", "--all-hosts"]).await);
    let mine: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == name.as_str())
        .map(|x| {
            (
                x["host"].as_str().unwrap().to_owned(),
                x["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        mine.contains(&("box".into(), "RUNNING".into())),
        "{mine:?} in {all}"
    );
    assert!(
        !mine.contains(&("real".into(), "RUNNING".into())),
        "{mine:?}"
    );

    // Refusals, each with its exit code, the guest staying on the box.
    let code = |o: &Output| o.status.code();
    let o = tool(&s, &["--host", "box", "migrate", &name, "nowhere"]).await;
    assert_eq!(code(&o), Some(3), "unknown host: {}", stderr_of(&o));
    assert!(stderr_of(&o).contains("nowhere"), "{}", stderr_of(&o));
    let missing = format!("{p}missing");
    let o = tool(&s, &["--host", "box", "migrate", &missing, "real"]).await;
    assert_eq!(code(&o), Some(3), "missing domain: {}", stderr_of(&o));
    assert!(stderr_of(&o).contains(&missing), "{}", stderr_of(&o));
    let o = tool(&s, &["--host", "box", "migrate", &name, "box"]).await;
    assert_eq!(code(&o), Some(5), "to itself: {}", stderr_of(&o));
    let o = tool(&s, &["--host", "box", "migrate", &name, "down"]).await;
    assert_eq!(code(&o), Some(4), "host down: {}", stderr_of(&o));
    let on_box = json_of(&tool(&s, &["--host", "box", "--json", "info", &name]).await);
    assert_eq!(on_box["state"], "RUNNING");

    // Back on a pseudo-terminal, slowed so that progress arrives: the bar
    // with its byte counts, then the domain's table.
    let bin = env!("CARGO_BIN_EXE_libvirt-grpc");
    let t = std::time::Instant::now();
    let (screen, status) = on_a_terminal(format!(
        "{bin} --server {} --host box migrate {name} real --bandwidth 64",
        s.url
    ))
    .await;
    eprintln!("box -> real on a terminal: {:?}", t.elapsed());
    assert_eq!(status, Some(0), "{screen}");
    assert!(
        screen.contains(&format!("migrating {name}")),
        "no bar: {screen:?}"
    );
    assert!(screen.contains("MiB/"), "no byte counts: {screen:?}");
    // Before the first progress no total is known: no full bar.
    assert!(
        !screen.contains("=] 0 B/0 B"),
        "a full bar before any progress: {screen:?}"
    );
    // The table at full width, though `script`'s terminal has no size.
    assert!(
        screen.contains(&format!("real ┆ {name} ┆ RUNNING")),
        "no domain table: {screen:?}"
    );

    let back = json_of(&tool(&s, &["--host", "real", "--json", "info", &name]).await);
    assert_eq!(
        (&back["state"], &back["uuid"]),
        (&"RUNNING".into(), &d["uuid"])
    );
    let o = tool(&s, &["--host", "box", "info", &name]).await;
    assert_eq!(code(&o), Some(3), "still on the box: {}", stderr_of(&o));

    let d = json_of(&tool(&s, &["--host", "real", "--json", "destroy", &name]).await);
    assert_eq!(d["state"], "SHUTOFF");
    let o = tool(&s, &["--host", "real", "undefine", &name]).await;
    assert!(o.status.success(), "{}", stderr_of(&o));
}
