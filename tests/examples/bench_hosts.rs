//! Benchmark (not a test): many hosts behind one server, and migration.
//!
//! ```sh
//! cargo run --release -p libvirt-grpc-tests --example bench_hosts -- [--boxes 1,3,6] [--seconds 3] [--migrate]
//! ```
//!
//! Starts libvirtd "hosts in a box" (`scripts/libvirtd-box.sh`; root, as the
//! real suites), each serving libvirt's test driver over
//! `test+tcp://127.0.0.1:PORT/default`, and prints for each box count:
//! - calls per second of `GetDomain` spread over every host by 32 callers,
//!   against 32 threads calling the same hosts straight through libvirt
//!   (one connection per host), and the ratio;
//! - p99 per host with one host's daemon killed (the others' calls must
//!   not slow down; the dead host's calls answer UNAVAILABLE at once);
//! - what one more host costs the server: connections, threads and memory
//!   (RSS) once its pool, event connection and probe are up.
//!
//! With `--migrate` (needs the real libvirtd on qemu:///system and the test
//! guest, as the real suites): the time of a live migration of the test
//! guest to a box and back through `MigrateDomain`, against `virsh migrate
//! --live` of the same guest.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{boxes::LibvirtBox, prefix, v1, Cleanup, TestServer, REAL_URI};
use tokio_stream::StreamExt;

const CALLERS: usize = 32;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn status_field(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn test_uri(b: &LibvirtBox) -> String {
    b.uri
        .replace("qemu+tcp://", "test+tcp://")
        .replace("/system", "/default")
}

fn get(host: &str) -> v1::GetDomainRequest {
    v1::GetDomainRequest {
        domain: libvirt_grpc_tests::domain_ref(host, "test"),
        ..Default::default()
    }
}

/// `GetDomain` by `CALLERS` tasks for `secs`, round robin over `hosts`:
/// calls per second, and per host the sorted latencies (ms) and errors.
async fn service_load(
    s: &TestServer,
    hosts: &[String],
    secs: f64,
) -> (f64, Vec<(Vec<f64>, usize)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Several HTTP/2 connections, as a fleet of callers would have.
    let channels: Vec<_> = (0..4)
        .map(|_| {
            tonic::transport::Endpoint::from_shared(s.url())
                .unwrap()
                .connect_lazy()
        })
        .collect();
    for i in 0..CALLERS {
        let mut dom = v1::domain_service_client::DomainServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let hosts = hosts.to_vec();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut per_host: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); hosts.len()];
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                let h = k % hosts.len();
                k += 1;
                let t = Instant::now();
                let r = dom.get_domain(get(&hosts[h])).await;
                per_host[h].0.push(t.elapsed().as_secs_f64() * 1e3);
                if r.is_err() {
                    per_host[h].1 += 1;
                }
            }
            per_host
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut merged: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); hosts.len()];
    for t in tasks {
        for (h, (lat, err)) in t.await.unwrap().into_iter().enumerate() {
            merged[h].0.extend(lat);
            merged[h].1 += err;
        }
    }
    let calls: usize = merged.iter().map(|(l, _)| l.len()).sum();
    for (l, _) in &mut merged {
        l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    (calls as f64 / secs, merged)
}

/// The same calls straight through libvirt: `CALLERS` threads, one shared
/// connection per host, lookup + info.
fn direct_load(uris: &[String], secs: f64) -> f64 {
    let conns: Vec<_> = uris
        .iter()
        .map(|u| Arc::new(virt::connect::Connect::open(Some(u)).unwrap()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CALLERS)
        .map(|i| {
            let conns = conns.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let c = &conns[(i + n) % conns.len()];
                    let d = c.lookup_domain_by_name("test").unwrap();
                    d.info().unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let calls: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    calls as f64 / secs
}

async fn hosts_round(p: &str, n: usize, secs: f64) {
    let boxes: Vec<LibvirtBox> = (0..n)
        .map(|i| {
            let name = format!("{p}n{n}b{i}");
            std::thread::spawn(move || LibvirtBox::start(&name))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let uris: Vec<String> = boxes.iter().map(test_uri).collect();
    let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();

    let (rss0, threads0, sockets0) = (
        status_field("VmRSS:"),
        status_field("Threads:"),
        open_sockets(),
    );
    let s = TestServer::start(
        names
            .iter()
            .zip(&uris)
            .map(|(n, u)| HostConfig::new(n, u))
            .collect(),
    )
    .await;
    // Warm every host: its quick slots, its event connection, its probe.
    let _ = service_load(&s, &names, 0.5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, threads, sockets) = (
        status_field("VmRSS:"),
        status_field("Threads:"),
        open_sockets(),
    );

    let (service, per_host) = service_load(&s, &names, secs).await;
    let direct = tokio::task::spawn_blocking({
        let uris = uris.clone();
        move || direct_load(&uris, secs)
    })
    .await
    .unwrap();
    let p99: Vec<String> = per_host
        .iter()
        .map(|(l, _)| format!("{:.2}", pct(l, 0.99)))
        .collect();
    println!(
        "hosts={n:2}  GetDomain x{CALLERS} callers: service {service:7.0}/s  direct {direct:7.0}/s  ratio {:.2}x  p99 per host ms [{}]",
        service / direct,
        p99.join(", ")
    );
    println!(
        "          cost with {n} host(s): +{} KiB RSS, +{} threads, +{} sockets (server and its clients in this process; per host: {:.0} KiB, {:.1} threads, {:.1} sockets)",
        rss.saturating_sub(rss0),
        threads.saturating_sub(threads0),
        sockets.saturating_sub(sockets0),
        rss.saturating_sub(rss0) as f64 / n as f64,
        threads.saturating_sub(threads0) as f64 / n as f64,
        sockets.saturating_sub(sockets0) as f64 / n as f64,
    );
    if n > 1 {
        boxes[0].kill();
        // Let the server notice (event connection closed, probe failed).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (service_down, per_host) = service_load(&s, &names, secs).await;
        let p99: Vec<String> = per_host
            .iter()
            .map(|(l, e)| format!("{:.2} ({e} errors)", pct(l, 0.99)))
            .collect();
        println!(
            "          b0 down: service {service_down:7.0}/s  p99 per host ms [{}] (b0 answers UNAVAILABLE)",
            p99.join(", ")
        );
    }
    s.stop().await;
    drop(boxes);
}

/// Live migration of the test guest qemu:///system -> a box -> back,
/// through the service and through `virsh migrate --live`.
async fn migration_round(p: &str) {
    let b = LibvirtBox::start(&format!("{p}mig"));
    let mk = |name: &str, uri: &str| HostConfig {
        migration_address: "127.0.0.1".into(),
        ..HostConfig::new(name, uri)
    };
    let s = TestServer::start(vec![mk("real", REAL_URI), mk("box", &b.uri)]).await;
    let mut c = Cleanup::new(REAL_URI, p);
    let _cb = Cleanup::new(&b.uri, p);
    let name = format!("{p}guest");
    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    let xml = libvirt_grpc_tests::guest::xml(&name, &console);
    let xml_file = std::env::temp_dir().join(format!("{p}guest.xml"));
    std::fs::write(&xml_file, &xml).unwrap();
    c.file(&xml_file);
    let virsh = |args: &[&str]| {
        let t = Instant::now();
        let out = std::process::Command::new("virsh")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    virsh(&["-c", REAL_URI, "create", xml_file.to_str().unwrap()]);
    // Let the guest boot (its memory in use is what migrates).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut service = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..3 {
        for (from, to) in [("real", "box"), ("box", "real")] {
            let t = Instant::now();
            let mut st = s
                .client
                .domains()
                .migrate_domain(v1::MigrateDomainRequest {
                    domain: libvirt_grpc_tests::domain_ref(from, &name),
                    destination_host: to.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            while let Some(m) = st.next().await {
                if let Some(v1::migrate_domain_response::Item::Domain(_)) = m.unwrap().item {
                    break;
                }
            }
            service.push(t.elapsed().as_secs_f64());
        }
        for (from, to) in [
            (REAL_URI.to_owned(), b.uri.clone()),
            (b.uri.clone(), REAL_URI.to_owned()),
        ] {
            direct.push(virsh(&[
                "-c",
                &from,
                "migrate",
                "--live",
                &name,
                &to,
                "tcp://127.0.0.1",
            ]));
        }
    }
    service.sort_by(|a, b| a.partial_cmp(b).unwrap());
    direct.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (sm, dm) = (pct(&service, 0.5), pct(&direct, 0.5));
    println!(
        "migration (test guest, live, one hop, p50 of {}): service {sm:.2} s  virsh migrate {dm:.2} s  ratio {:.2}x (virsh includes its own process start, ~25 ms)",
        service.len(),
        sm / dm
    );
    s.stop().await;
}

#[tokio::main]
async fn main() {
    virt::error::clear_error_callback();
    let p = prefix();
    let secs: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let counts: Vec<usize> = arg("--boxes")
        .unwrap_or_else(|| "1,3".into())
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    for n in counts {
        hosts_round(&p, n, secs).await;
    }
    if flag("--migrate") {
        migration_round(&p).await;
    }
}
