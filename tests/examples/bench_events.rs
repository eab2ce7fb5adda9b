//! Benchmark (not a test) of the event pipeline against libvirt itself.
//!
//! Run: `cargo run --release -p libvirt-grpc-tests --example bench_events`
//! Options: `--uri URI` (a real daemon, e.g. `qemu:///system`; default
//! `test:///default`, in process, no daemon; a test driver served by the
//! daemon does not do: its connections do not see each other's domains,
//! so the shared burst below never reaches the server),
//! `--events N` (events per latency round, default 200), `--burst N`
//! (default 10000), `--conns N` (client HTTP/2 connections the subscribers
//! share, default 16), `--interval-us N` (pause between the round's
//! operations, default 20000: one event per 20 ms, so that 1000 subscribers
//! measure one event's fan-out, not a queue of them), `--server-bin PATH`
//! (run this server binary instead of building one).
//!
//! The server is the real `libvirt-grpcd` binary (built here with `cargo
//! build --release` if needed) in a process of its own, so its RSS is its
//! own; every client lives in this process. Figures:
//! * callback -> client: from the time the server's libvirt callback
//!   stamped on the event (`event_time`) to the moment a subscriber's task
//!   reads it, for 1, 100 and 1000 subscribers (p50, p99, lost).
//! * operation -> seen, service vs direct: from the start of the operation
//!   that raises the event to its receipt, by a gRPC subscriber and by a
//!   direct libvirt event client (callbacks registered on a connection of
//!   this process). With the default in-process test driver the events of
//!   the server's libvirt exist only in the server's process, so the
//!   service's operations go through the service (DefineDomain /
//!   UndefineDomain, one gRPC call more than the direct client's
//!   `virDomainDefineXML`); with `--uri` both are made through the service
//!   likewise and the direct client watches its own operations on the same
//!   daemon (each client timing from its own operation's start).
//! * a burst of `--burst` events (8 producers defining and undefining
//!   their own domains as fast as they can): time until the last of 10
//!   subscribers has them all, events/s, and the lag after the last
//!   operation returned, against a direct libvirt event client. With
//!   `--uri` it is ONE burst made straight through libvirt (as virsh
//!   would) that both receive; with the in-process default the service's
//!   burst is made through the service and the direct client's straight
//!   through libvirt.
//! * server RSS with 1000 streams open.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use libvirt_grpc_server::libvirt_sys::{self, RawEvent, RawKind, Sink};
use libvirt_grpc_tests::{prefix, rss_kib, small_spec, v1, Client};
use tokio_stream::StreamExt;
use virt::connect::Connect;

const TARGET_P99_MS: f64 = 2.0;
const TARGET_RSS_MIB: f64 = 64.0;
const BURST_PRODUCERS: usize = 8;
const BURST_SUBSCRIBERS: usize = 10;

struct Args {
    uri: Option<String>,
    events: usize,
    burst: usize,
    conns: usize,
    interval: Duration,
    server_bin: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        uri: None,
        events: 200,
        burst: 10_000,
        conns: 16,
        interval: Duration::from_micros(20_000),
        server_bin: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--uri" => a.uri = Some(value()),
            "--events" => a.events = value().parse().expect("--events N"),
            "--burst" => a.burst = value().parse().expect("--burst N"),
            "--conns" => a.conns = value().parse::<usize>().expect("--conns N").max(1),
            "--interval-us" => {
                a.interval = Duration::from_micros(value().parse().expect("--interval-us N"))
            }
            "--server-bin" => a.server_bin = Some(value().into()),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn now_micros() -> i64 {
    micros_of(SystemTime::now())
}

fn micros_of(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// An event's time in microseconds since the Unix epoch.
fn event_micros(e: &v1::Event) -> i64 {
    e.event_time
        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos / 1_000))
}

fn pct(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "NOT MET"
    }
}

/// The `libvirt-grpcd` process; killed (by its pid) on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds (if needed) and starts `libvirt-grpcd` fronting `uri` (or the
/// binary `bin`, as it is).
async fn start_server(uri: &str, bin: Option<std::path::PathBuf>) -> Server {
    start_bin(uri, bin.unwrap_or_else(build_server)).await
}

/// `cargo build --release` of `libvirt-grpcd`; its path.
fn build_server() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "build",
            "--release",
            "-p",
            "libvirt-grpc-server",
            "--bin",
            "libvirt-grpcd",
        ])
        .status()
        .expect("cargo build of libvirt-grpcd");
    assert!(built.success(), "building libvirt-grpcd failed");
    // target/release/examples/bench_events -> target/release/libvirt-grpcd
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("libvirt-grpcd")
}

/// Starts `bin` fronting `uri`.
async fn start_bin(uri: &str, bin: std::path::PathBuf) -> Server {
    let port = libvirt_grpc_tests::free_port();
    let child = Command::new(&bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--host",
            &format!("default={uri}"),
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if let Ok(c) = Client::connect(server.url.clone()).await {
            if c.events()
                .get_event_position(v1::GetEventPositionRequest {})
                .await
                .is_ok()
            {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("libvirt-grpcd did not answer at {}", server.url);
}

/// A direct libvirt event client: a connection of this process with the
/// same callbacks the server registers, delivering into a channel.
struct Direct {
    conn: Connect,
    _reg: libvirt_sys::Registration,
    rx: tokio::sync::mpsc::UnboundedReceiver<RawEvent>,
    domain_type: &'static str,
}

fn direct(uri: &str) -> Direct {
    libvirt_grpc_server::pool::ensure_event_loop();
    let conn = Connect::open(Some(uri)).expect("direct libvirt connection");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reg = libvirt_sys::register(&conn, &Sink { tx, generation: 1 })
        .expect("direct event registration");
    let domain_type = if uri.starts_with("test") {
        "test"
    } else {
        "qemu"
    };
    Direct {
        conn,
        _reg: reg,
        rx,
        domain_type,
    }
}

fn xml(domain_type: &str, name: &str) -> String {
    format!(
        "<domain type='{domain_type}'><name>{name}</name><memory unit='MiB'>128</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )
}

/// Defines (even `i`) or undefines (odd `i`) `name` straight through
/// libvirt.
fn direct_op(conn: &Connect, domain_type: &str, name: &str, i: usize) {
    if i.is_multiple_of(2) {
        conn.define_domain_xml(&xml(domain_type, name))
            .expect("define");
    } else {
        conn.lookup_domain_by_name(name)
            .and_then(|d| d.undefine())
            .expect("undefine");
    }
}

async fn service_op(c: &Client, name: &str, i: usize) {
    if i.is_multiple_of(2) {
        c.define_domain(small_spec(name)).await.expect("define");
    } else {
        c.undefine_domain(name).await.expect("undefine");
    }
}

fn is_lifecycle(raw: &RawEvent, name: &str) -> bool {
    raw.name == name && matches!(raw.kind, RawKind::Lifecycle { .. })
}

/// One subscriber's receipts: `(index in the round, received, event_time)`
/// and events reported lost.
type Receipts = (Vec<(usize, i64, i64)>, u64);

async fn subscribe(
    clients: &[Client],
    n: usize,
    names: Vec<String>,
    expect: usize,
) -> Vec<tokio::task::JoinHandle<Receipts>> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut st = clients[i % clients.len()]
            .events()
            .watch_events(v1::WatchEventsRequest {
                names: names.clone(),
                kinds: vec![v1::EventKind::Lifecycle as i32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(expect);
            let mut lost = 0u64;
            let _ = st.next().await; // started
            ready.send(()).await.unwrap();
            while (got.len() as u64 + lost) < expect as u64 {
                let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(30), st.next()).await
                else {
                    break;
                };
                match m.item {
                    Some(v1::watch_events_response::Item::Event(e)) => {
                        got.push((got.len() + lost as usize, now_micros(), event_micros(&e)))
                    }
                    Some(v1::watch_events_response::Item::EventsLost(l)) => {
                        lost += l.to_sequence - l.from_sequence + 1
                    }
                    _ => {}
                }
            }
            (got, lost)
        }));
    }
    for _ in 0..n {
        ready_rx.recv().await.unwrap();
    }
    tasks
}

/// Direct client: `events` define/undefine operations at `interval`, each
/// one's delay from its start to the callback. Returns sorted delays (us).
async fn direct_round(d: &mut Direct, name: &str, events: usize, interval: Duration) -> Vec<i64> {
    let mut delays = Vec::with_capacity(events);
    for i in 0..events {
        let t0 = now_micros();
        let conn = d.conn.clone();
        let (ty, n) = (d.domain_type, name.to_owned());
        tokio::task::spawn_blocking(move || direct_op(&conn, ty, &n, i))
            .await
            .unwrap();
        loop {
            let raw = tokio::time::timeout(Duration::from_secs(10), d.rx.recv())
                .await
                .expect("direct event")
                .unwrap();
            if is_lifecycle(&raw, name) {
                delays.push(micros_of(raw.at) - t0);
                break;
            }
        }
        tokio::time::sleep(interval).await;
    }
    delays.sort_unstable();
    delays
}

struct RoundFigures {
    cb_p50: f64,
    cb_p99: f64,
    op_p50: f64,
    op_p99: f64,
    lost: u64,
    missing: u64,
}

/// Service: `subscribers` streams, `events` operations through the service
/// at `interval`.
async fn service_round(
    producer: &Client,
    clients: &[Client],
    subscribers: usize,
    events: usize,
    interval: Duration,
    server_pid: u32,
) -> (RoundFigures, u64) {
    let name = format!("{}ev{subscribers}", prefix());
    let tasks = subscribe(clients, subscribers, vec![name.clone()], events).await;
    let rss = rss_kib(server_pid);
    let mut starts = Vec::with_capacity(events);
    for i in 0..events {
        starts.push(now_micros());
        service_op(producer, &name, i).await;
        tokio::time::sleep(interval).await;
    }
    if !events.is_multiple_of(2) {
        let _ = producer.undefine_domain(&name).await;
    }
    let (mut cb, mut op, mut lost, mut got) = (Vec::new(), Vec::new(), 0, 0u64);
    for t in tasks {
        let (g, l) = t.await.unwrap();
        lost += l;
        got += g.len() as u64;
        for (k, recv, at) in g {
            cb.push(recv - at);
            if let Some(s) = starts.get(k) {
                op.push(recv - s);
            }
        }
    }
    cb.sort_unstable();
    op.sort_unstable();
    let expected = (subscribers * events) as u64;
    (
        RoundFigures {
            cb_p50: pct(&cb, 0.5),
            cb_p99: pct(&cb, 0.99),
            op_p50: pct(&op, 0.5),
            op_p99: pct(&op, 0.99),
            lost,
            missing: expected.saturating_sub(got + lost),
        },
        rss,
    )
}

/// The burst through the service: `(total time, lag after the last
/// operation, lost + missing)`.
async fn service_burst(
    producer: &Client,
    clients: &[Client],
    burst: usize,
) -> (Duration, Duration, u64) {
    let p = prefix();
    let names: Vec<String> = (0..BURST_PRODUCERS)
        .map(|k| format!("{p}burst{k}"))
        .collect();
    let tasks = subscribe(clients, BURST_SUBSCRIBERS, names.clone(), burst).await;
    let start = Instant::now();
    let per = burst / BURST_PRODUCERS;
    let producers: Vec<_> = names
        .iter()
        .map(|n| {
            let (c, n) = (producer.clone(), n.clone());
            tokio::spawn(async move {
                for i in 0..per {
                    service_op(&c, &n, i).await;
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let produced = start.elapsed();
    let mut bad = 0u64;
    for t in tasks {
        let (g, l) = t.await.unwrap();
        bad += l + (per * BURST_PRODUCERS).saturating_sub(g.len() + l as usize) as u64;
    }
    let all = start.elapsed();
    (all, all.saturating_sub(produced), bad)
}

/// The same burst straight through libvirt, received by the direct client:
/// `(total time, lag after the last operation)`.
async fn direct_burst(d: &mut Direct, p: &str, burst: usize) -> (Duration, Duration) {
    let per = burst / BURST_PRODUCERS;
    let start = Instant::now();
    let threads: Vec<_> = (0..BURST_PRODUCERS)
        .map(|k| {
            let (conn, ty, n) = (d.conn.clone(), d.domain_type, format!("{p}dburst{k}"));
            std::thread::spawn(move || {
                for i in 0..per {
                    direct_op(&conn, ty, &n, i);
                }
            })
        })
        .collect();
    let done = Arc::new(Mutex::new(None));
    let waiter = {
        let done = Arc::clone(&done);
        tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join().unwrap();
            }
            *done.lock().unwrap() = Some(Instant::now());
        })
    };
    let want = per * BURST_PRODUCERS;
    let mut got = 0;
    while got < want {
        let raw = tokio::time::timeout(Duration::from_secs(30), d.rx.recv())
            .await
            .expect("direct burst event")
            .unwrap();
        if raw.name.starts_with(&format!("{p}dburst"))
            && matches!(raw.kind, RawKind::Lifecycle { .. })
        {
            got += 1;
        }
    }
    let all = start.elapsed();
    waiter.await.unwrap();
    let produced = done.lock().unwrap().map_or(all, |t| t - start);
    (all, all.saturating_sub(produced))
}

/// With a daemon (`--uri`): ONE burst made straight through libvirt (as
/// virsh would), received at once by the direct client and by the gRPC
/// subscribers: `(direct all, direct lag, service all, service lag after
/// the last operation, lost + missing)`.
async fn shared_burst(
    d: &mut Direct,
    clients: &[Client],
    burst: usize,
) -> (Duration, Duration, Duration, Duration, u64) {
    let p = prefix();
    let names: Vec<String> = (0..BURST_PRODUCERS)
        .map(|k| format!("{p}dburst{k}"))
        .collect();
    let per = burst / BURST_PRODUCERS;
    let tasks = subscribe(clients, BURST_SUBSCRIBERS, names, per * BURST_PRODUCERS).await;
    let start = Instant::now();
    let (d_all, d_lag) = direct_burst(d, &p, burst).await;
    let produced = d_all.saturating_sub(d_lag);
    let mut bad = 0u64;
    for t in tasks {
        let (g, l) = t.await.unwrap();
        bad += l + (per * BURST_PRODUCERS).saturating_sub(g.len() + l as usize) as u64;
    }
    let s_all = start.elapsed();
    (d_all, d_lag, s_all, s_all.saturating_sub(produced), bad)
}

#[tokio::main]
async fn main() {
    let a = args();
    let uri = a.uri.clone().unwrap_or_else(|| "test:///default".into());
    virt::error::clear_error_callback();
    let server = start_server(&uri, a.server_bin.clone()).await;
    let server_pid = server.child.id();
    let producer = Client::connect(server.url.clone())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(60));
    let mut clients = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        clients.push(Client::connect(server.url.clone()).await.unwrap());
    }
    let mut d = direct(&uri);
    let rss_idle = rss_kib(server_pid);
    println!(
        "bench_events: uri={uri} server pid {server_pid} (libvirt-grpcd), {} subscriber connection(s), \
         {} events per round at one operation per {} us; 2 cores shared: figures are noisy",
        a.conns,
        a.events,
        a.interval.as_micros()
    );
    let dname = format!("{}direct", prefix());
    let direct_delays = direct_round(&mut d, &dname, a.events, a.interval).await;
    let (d50, d99) = (pct(&direct_delays, 0.5), pct(&direct_delays, 0.99));
    println!("direct libvirt client: operation -> callback p50 {d50:.3} ms  p99 {d99:.3} ms");
    let mut rss_1000 = 0;
    for n in [1usize, 100, 1000] {
        let (f, rss) =
            service_round(&producer, &clients, n, a.events, a.interval, server_pid).await;
        if n == 1000 {
            rss_1000 = rss;
        }
        let ok = f.lost == 0 && f.missing == 0 && (n < 1000 || f.cb_p99 <= TARGET_P99_MS);
        println!(
            "subscribers {n:5}: callback -> client p50 {:.3} ms  p99 {:.3} ms  lost {} missing {} | \
             operation -> seen p50 {:.3} ms (x{:.2} of direct)  p99 {:.3} ms (x{:.2}){}",
            f.cb_p50,
            f.cb_p99,
            f.lost,
            f.missing,
            f.op_p50,
            f.op_p50 / d50,
            f.op_p99,
            f.op_p99 / d99,
            if n == 1000 {
                format!(
                    "  [target p99 <= {TARGET_P99_MS} ms, none lost: {}]",
                    verdict(ok)
                )
            } else {
                String::new()
            }
        );
    }
    let (s_all, s_lag, s_bad, d_all, d_lag) = if a.uri.is_some() {
        let (d_all, d_lag, s_all, s_lag, bad) = shared_burst(&mut d, &clients, a.burst).await;
        println!("burst: one burst made straight through libvirt, seen by both clients");
        (s_all, s_lag, bad, d_all, d_lag)
    } else {
        let (s_all, s_lag, s_bad) = service_burst(&producer, &clients, a.burst).await;
        let (d_all, d_lag) = direct_burst(&mut d, &prefix(), a.burst).await;
        println!(
            "burst: made through the service (its libvirt is in its process), \
             and the same straight through libvirt for the direct client"
        );
        (s_all, s_lag, s_bad, d_all, d_lag)
    };
    let rate = |t: Duration| a.burst as f64 / t.as_secs_f64();
    println!(
        "burst of {} events, {BURST_PRODUCERS} producers, {BURST_SUBSCRIBERS} subscribers: \
         last subscriber has all after {:.1} ms ({:.0} events/s), {:.1} ms after the last operation, \
         lost+missing {s_bad} | direct client {:.1} ms ({:.0} events/s, {:.1} ms after the last operation): \
         x{:.2} of direct  [target: no per-event round trips serialise it, none lost: {}]",
        a.burst,
        s_all.as_secs_f64() * 1e3,
        rate(s_all),
        s_lag.as_secs_f64() * 1e3,
        d_all.as_secs_f64() * 1e3,
        rate(d_all),
        d_lag.as_secs_f64() * 1e3,
        s_all.as_secs_f64() / d_all.as_secs_f64(),
        verdict(s_bad == 0 && s_lag < Duration::from_millis(100)),
    );
    let mib = rss_1000 as f64 / 1024.0;
    println!(
        "server RSS: idle {:.1} MiB, with 1000 streams open {mib:.1} MiB \
         ({:.1} KiB per stream)  [target <= {TARGET_RSS_MIB} MiB: {}]",
        rss_idle as f64 / 1024.0,
        (rss_1000.saturating_sub(rss_idle)) as f64 / 1000.0,
        verdict(mib <= TARGET_RSS_MIB)
    );
    drop(server);
}
