//! Benchmark (not a test): domain reads through a running `libvirt-grpcd`
//! against the same knowledge read straight from libvirt, on the same
//! libvirtd, in the same run. `scripts/bench.sh` builds the test-driver node
//! files, starts libvirtd and the server, and runs this; by hand:
//!
//! ```sh
//! cargo run --release -p libvirt-grpc-tests --example bench_domain -- \
//!     --addr http://127.0.0.1:50051 \
//!     --host n1000=test+unix:///tmp/x/n1000.xml [--host n100=... --host n3000=...] \
//!     [--budget-ms 400] [--callers 64] [--conns 8] [--secs 5] \
//!     [--qemu-host qemu=qemu:///system --qemu-n 1000 --prefix lvgb1-]
//! ```
//!
//! The first `--host` is the one measured at length (its server-side name
//! and the URI the direct client opens); every `--host` takes part in the
//! growth-with-N table. The server must serve each under the same name.
//!
//! What is compared (ratio = service / direct, p50 and p99 of per-call
//! latency; throughput for the concurrent case):
//! 1. `GetDomain` at concurrency 1 (BASIC and FULL) against
//!    `lookup_domain_by_name + info()`, and FULL against the seven calls a
//!    direct client needs for the same fields.
//! 2. `ListDomains` of every domain (pages of 1000), BASIC and FULL, against
//!    one `virConnectGetAllDomainStats(state|balloon|vcpu)` and against the
//!    naive loop (list, then `info()` per domain).
//! 3. The listing's cost at each N, beside the bulk call's.
//! 4. `callers` concurrent `GetDomain` callers over `conns` HTTP/2
//!    connections (round-robin, one tokio task per caller) against as many
//!    threads sharing one direct connection (`lookup + info`).
//! 5. With `--qemu-host`: 1 and 2 again on a QEMU host, over `--qemu-n`
//!    inactive domains this run defines (named `{prefix}qNNNNN`) and
//!    undefines at the end: the test driver's bulk statistics carry only
//!    the state group, QEMU's carry balloon and vCPU too.
//!
//! Every variant runs in several interleaved rounds so that noise from
//! other processes falls on all of them alike. Each read cycles over every
//! domain of the host (a different domain each call).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use libvirt_grpc_server::libvirt_sys;
use libvirt_grpc_tests::{domain_ref, v1, Client};
use v1::DomainView;
use virt::{connect::Connect, sys};

struct Args {
    addr: String,
    hosts: Vec<(String, String)>,
    budget: Duration,
    callers: usize,
    conns: usize,
    secs: f64,
    qemu: Option<(String, String)>,
    qemu_n: usize,
    prefix: String,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        addr: String::new(),
        hosts: Vec::new(),
        budget: Duration::from_millis(400),
        callers: 64,
        conns: 8,
        secs: 5.0,
        qemu: None,
        qemu_n: 1000,
        prefix: format!("lvgb{}-", std::process::id()),
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value(),
            "--host" => {
                let v = value();
                let (name, uri) = v.split_once('=').expect("--host NAME=URI");
                a.hosts.push((name.to_owned(), uri.to_owned()));
            }
            "--budget-ms" => a.budget = Duration::from_millis(value().parse().unwrap()),
            "--callers" => a.callers = value().parse().unwrap(),
            "--conns" => a.conns = value().parse().unwrap(),
            "--secs" => a.secs = value().parse().unwrap(),
            "--qemu-host" => {
                let v = value();
                let (name, uri) = v.split_once('=').expect("--qemu-host NAME=URI");
                a.qemu = Some((name.to_owned(), uri.to_owned()));
            }
            "--qemu-n" => a.qemu_n = value().parse().unwrap(),
            "--prefix" => a.prefix = value(),
            other => panic!("unknown argument {other} (see the doc at the top of bench_domain.rs)"),
        }
    }
    assert!(
        !a.addr.is_empty() && !a.hosts.is_empty(),
        "usage: bench_domain --addr URL --host NAME=URI [--host ...]"
    );
    a
}

/// Per-call latencies in microseconds.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// Calls `f` until `budget` has passed (and at least `min` times).
fn batch(budget: Duration, min: usize, out: &mut Samples, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut n = 0;
    while n < min || start.elapsed() < budget {
        let t = Instant::now();
        f();
        out.0.push(t.elapsed().as_secs_f64() * 1e6);
        n += 1;
    }
}

async fn batch_async(budget: Duration, min: usize, out: &mut Samples, mut f: impl AsyncFnMut()) {
    let start = Instant::now();
    let mut n = 0;
    while n < min || start.elapsed() < budget {
        let t = Instant::now();
        f().await;
        out.0.push(t.elapsed().as_secs_f64() * 1e6);
        n += 1;
    }
}

fn header(title: &str) {
    println!("\n{title}");
    println!(
        "  {:<44} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}  {:>5}",
        "service vs direct", "dir p50", "dir p99", "svc p50", "svc p99", "x p50", "x p99", "n"
    );
}

fn row(what: &str, direct: &Samples, service: &Samples, target: &str) {
    let (d50, d99, s50, s99) = (
        direct.pct(50.0),
        direct.pct(99.0),
        service.pct(50.0),
        service.pct(99.0),
    );
    println!(
        "  {:<44} {} {} {} {} {:>6.2}x {:>6.2}x  {:>5}  {target}",
        what,
        us(d50),
        us(d99),
        us(s50),
        us(s99),
        s50 / d50,
        s99 / d99,
        service.0.len().min(direct.0.len()),
    );
}

/// A latency for the table: microseconds below 10 ms, else milliseconds.
fn us(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:>7.0}us")
    } else {
        format!("{:>7.1}ms", v / 1000.0)
    }
}

fn open(uri: &str) -> Connect {
    Connect::open(Some(uri)).unwrap_or_else(|e| panic!("cannot open {uri}: {e}"))
}

fn names_of(conn: &Connect) -> Vec<String> {
    let mut names: Vec<String> = conn
        .list_all_domains(0)
        .unwrap()
        .iter()
        .map(|d| d.name().unwrap())
        .collect();
    names.sort();
    names
}

fn get_req(host: &str, name: &str, view: DomainView) -> v1::GetDomainRequest {
    v1::GetDomainRequest {
        domain: domain_ref(host, name),
        view: view as i32,
    }
}

/// Every domain of `host` named `prefix*`, in pages of 1000: the number
/// listed.
async fn list_all(client: &Client, host: &str, prefix: &str, view: DomainView) -> usize {
    let mut dom = client.domains();
    let mut token = String::new();
    let mut n = 0;
    loop {
        let page = dom
            .list_domains(v1::ListDomainsRequest {
                host: host.to_owned(),
                name_prefix: prefix.to_owned(),
                page_size: 1000,
                page_token: token,
                view: view as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        n += page.domains.len();
        if page.next_page_token.is_empty() {
            return n;
        }
        token = page.next_page_token;
    }
}

fn bulk_stats(conn: &Connect) -> usize {
    libvirt_sys::domain_stats(
        conn,
        &[],
        sys::VIR_DOMAIN_STATS_STATE | sys::VIR_DOMAIN_STATS_BALLOON | sys::VIR_DOMAIN_STATS_VCPU,
        0,
    )
    .unwrap()
    .records()
    .len()
}

fn naive_loop(conn: &Connect) -> usize {
    let doms = conn.list_all_domains(0).unwrap();
    for d in &doms {
        std::hint::black_box(d.info().unwrap());
    }
    doms.len()
}

/// Waits (bounded) until the server answers a listing of every host.
async fn wait_ready(client: &Client, hosts: &[(String, String)]) {
    let end = Instant::now() + Duration::from_secs(60);
    for (host, _) in hosts {
        loop {
            let r = client
                .domains()
                .list_domains(v1::ListDomainsRequest {
                    host: host.clone(),
                    page_size: 1,
                    view: DomainView::Basic as i32,
                    ..Default::default()
                })
                .await;
            match r {
                Ok(_) => break,
                Err(e) if Instant::now() > end => panic!("server never served host {host}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn main() {
    let args = parse_args();
    virt::error::clear_error_callback();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async {
        let client = Client::connect(args.addr.clone()).await.unwrap();
        wait_ready(&client, &args.hosts).await;
        client
    });
    let (host, uri) = args.hosts[0].clone();
    let conn = open(&uri);
    let names = names_of(&conn);
    assert!(!names.is_empty(), "{uri} has no domain");
    let served = rt.block_on(list_all(&client, &host, "", DomainView::Basic));
    assert_eq!(
        served,
        names.len(),
        "the server's host {host} and {uri} hold different domains"
    );
    println!(
        "host {host} = {uri}: {} domains; server {}; {} caller(s) over {} HTTP/2 connection(s)",
        names.len(),
        args.addr,
        args.callers,
        args.conns
    );

    get_at_concurrency_1(
        &rt,
        &client,
        &conn,
        &host,
        &names,
        args.budget,
        "1. GetDomain, concurrency 1 (a different domain each call)",
    );
    list_all_domains(
        &rt,
        &client,
        &conn,
        &host,
        "",
        names.len(),
        args.budget,
        &format!(
            "2. ListDomains of all {} (page_size 1000), concurrency 1",
            names.len()
        ),
    );
    growth_with_n(&rt, &client, &args.hosts, args.budget);
    concurrent(&rt, &args, &conn, &host, &names);
    if let Some((qhost, quri)) = &args.qemu {
        qemu_section(&rt, &client, qhost, quri, &args, args.budget);
    }
}

/// Undefines its domains when dropped (also when the benchmark panics).
struct Undefine {
    uri: String,
    names: Vec<String>,
}

impl Drop for Undefine {
    fn drop(&mut self) {
        for_each_chunk(&self.uri, &self.names, |conn, n| {
            if let Ok(d) = conn.lookup_domain_by_name(n) {
                let _ = d.undefine();
            }
        });
    }
}

/// Runs `f` on every name, on four connections at once.
fn for_each_chunk(uri: &str, names: &[String], f: impl Fn(&Connect, &str) + Sync) {
    std::thread::scope(|s| {
        for chunk in names.chunks(names.len().div_ceil(4).max(1)) {
            let f = &f;
            s.spawn(move || {
                let conn = open(uri);
                for n in chunk {
                    f(&conn, n);
                }
            });
        }
    });
}

/// Sections 1 and 2 again on a QEMU host, whose bulk statistics carry the
/// balloon and vCPU groups the test driver lacks: `qemu_n` inactive,
/// diskless `type='qemu'` domains named `{prefix}qNNNNN`, defined here and
/// undefined at the end. The bulk call and the naive loop cover every
/// domain of the host (as the service's bulk call does).
fn qemu_section(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    host: &str,
    uri: &str,
    args: &Args,
    budget: Duration,
) {
    let names: Vec<String> = (0..args.qemu_n)
        .map(|i| format!("{}q{i:05}", args.prefix))
        .collect();
    let _guard = Undefine {
        uri: uri.to_owned(),
        names: names.clone(),
    };
    for_each_chunk(uri, &names, |conn, n| {
        let xml = format!(
            "<domain type='qemu'><name>{n}</name><memory unit='KiB'>131072</memory>\
             <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
        );
        conn.define_domain_xml(&xml)
            .unwrap_or_else(|e| panic!("define {n} on {uri}: {e}"));
    });
    let conn = open(uri);
    let listed = rt.block_on(list_all(client, host, &args.prefix, DomainView::Basic));
    assert_eq!(
        listed,
        names.len(),
        "the server's host {host} lists {listed}"
    );
    let total = names_of(&conn).len();
    println!(
        "\n5. host {host} = {uri}: {} inactive QEMU domains defined for this run ({total} on the host)",
        names.len()
    );
    get_at_concurrency_1(
        rt,
        client,
        &conn,
        host,
        &names,
        budget,
        "5a. GetDomain on QEMU, concurrency 1",
    );
    list_all_domains(
        rt,
        client,
        &conn,
        host,
        &args.prefix,
        names.len(),
        budget,
        &format!(
            "5b. ListDomains of the {} on QEMU (name_prefix, page_size 1000) vs libvirt's calls over all {total}",
            names.len()
        ),
    );
}

fn get_at_concurrency_1(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    conn: &Connect,
    host: &str,
    names: &[String],
    budget: Duration,
    title: &str,
) {
    let (mut li, mut full_direct, mut basic, mut full, mut floor) = Default::default();
    let mut i = 0usize;
    let mut next = || {
        i += 1;
        names[i % names.len()].clone()
    };
    let mut dom = client.domains();
    let mut hosts = client.hosts();
    for _round in 0..5 {
        batch(budget, 20, &mut li, || {
            let d = conn.lookup_domain_by_name(&next()).unwrap();
            std::hint::black_box(d.info().unwrap());
        });
        batch(budget, 20, &mut full_direct, || {
            let d = conn.lookup_domain_by_name(&next()).unwrap();
            std::hint::black_box((
                d.info().unwrap(),
                d.state().unwrap(),
                d.autostart().unwrap(),
                d.is_persistent().unwrap(),
                d.os_type().unwrap(),
                d.has_managed_save(0).unwrap(),
            ));
        });
        rt.block_on(async {
            for (view, out) in [
                (DomainView::Basic, &mut basic),
                (DomainView::Full, &mut full),
            ] {
                batch_async(budget, 20, out, async || {
                    dom.get_domain(get_req(host, &next(), view)).await.unwrap();
                })
                .await;
            }
            // The service's floor: a call answered from the server's
            // memory (its configured hosts), no libvirt call at all.
            batch_async(budget, 20, &mut floor, async || {
                hosts.list_hosts(v1::ListHostsRequest {}).await.unwrap();
            })
            .await;
        });
    }
    header(title);
    row(
        "floor: ListHosts (no libvirt call) vs lookup+info",
        &li,
        &floor,
        "",
    );
    row("GetDomain BASIC vs lookup+info", &li, &basic, "");
    row(
        "GetDomain FULL vs lookup+info",
        &li,
        &full,
        "target <= 1.25x",
    );
    row(
        "GetDomain FULL vs the 7 direct calls of FULL",
        &full_direct,
        &full,
        "",
    );
}

/// `n` domains named `prefix*` listed by the service against libvirt's
/// answers for every domain of the host (the same set when `prefix` is
/// empty; the service's bulk call covers the whole host either way).
#[allow(clippy::too_many_arguments)]
fn list_all_domains(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    conn: &Connect,
    host: &str,
    prefix: &str,
    n: usize,
    budget: Duration,
    title: &str,
) {
    let (mut bulk, mut naive, mut basic, mut full) = Default::default();
    for _round in 0..3 {
        batch(budget, 3, &mut bulk, || assert!(bulk_stats(conn) >= n));
        batch(budget, 2, &mut naive, || assert!(naive_loop(conn) >= n));
        rt.block_on(async {
            for (view, out) in [
                (DomainView::Basic, &mut basic),
                (DomainView::Full, &mut full),
            ] {
                batch_async(budget, 2, out, async || {
                    assert_eq!(list_all(client, host, prefix, view).await, n);
                })
                .await;
            }
        });
    }
    header(title);
    row("ListDomains BASIC vs GetAllDomainStats", &bulk, &basic, "");
    row(
        "ListDomains FULL vs GetAllDomainStats",
        &bulk,
        &full,
        "target <= 1.5x",
    );
    row(
        "ListDomains BASIC vs list + info() each",
        &naive,
        &basic,
        "",
    );
    row("ListDomains FULL vs list + info() each", &naive, &full, "");
}

fn growth_with_n(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    hosts: &[(String, String)],
    budget: Duration,
) {
    println!("\n3. Listing cost by N (p50; every page of 1000; per domain in brackets)");
    println!(
        "  {:>6} {:>20} {:>20} {:>20} {:>7} {:>7}",
        "N", "GetAllDomainStats", "ListDomains BASIC", "ListDomains FULL", "x BASIC", "x FULL"
    );
    let mut by_n: Vec<(usize, &String, Connect)> = hosts
        .iter()
        .map(|(host, uri)| {
            let conn = open(uri);
            (names_of(&conn).len(), host, conn)
        })
        .collect();
    by_n.sort_by_key(|(n, _, _)| *n);
    for (n, host, conn) in by_n {
        let (mut bulk, mut basic, mut full) = Default::default();
        for _round in 0..2 {
            batch(budget / 2, 2, &mut bulk, || {
                assert_eq!(bulk_stats(&conn), n)
            });
            rt.block_on(async {
                for (view, out) in [
                    (DomainView::Basic, &mut basic),
                    (DomainView::Full, &mut full),
                ] {
                    batch_async(budget / 2, 2, out, async || {
                        assert_eq!(list_all(client, host, "", view).await, n);
                    })
                    .await;
                }
            });
        }
        let cell = |s: &Samples| {
            let p = s.pct(50.0);
            format!("{} ({:.1}us)", us(p), p / n as f64)
        };
        println!(
            "  {:>6} {:>20} {:>20} {:>20} {:>6.2}x {:>6.2}x",
            n,
            cell(&bulk),
            cell(&basic),
            cell(&full),
            basic.pct(50.0) / bulk.pct(50.0),
            full.pct(50.0) / bulk.pct(50.0),
        );
    }
}

/// Calls per second and latencies of `callers` threads sharing `conn`.
fn direct_concurrent(
    conn: &Connect,
    names: &[String],
    callers: usize,
    secs: f64,
) -> (f64, Samples) {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let all = std::thread::scope(|s| {
        let workers: Vec<_> = (0..callers)
            .map(|c| {
                let stop = &stop;
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut i = c * 7919;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let d = conn.lookup_domain_by_name(&names[i % names.len()]).unwrap();
                        std::hint::black_box(d.info().unwrap());
                        out.push(t.elapsed().as_secs_f64() * 1e6);
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    let elapsed = start.elapsed().as_secs_f64();
    (all.len() as f64 / elapsed, Samples(all))
}

/// Calls per second and latencies of `callers` tasks over `clients`.
async fn service_concurrent(
    clients: &[Client],
    host: &str,
    names: Arc<Vec<String>>,
    view: DomainView,
    callers: usize,
    secs: f64,
) -> (f64, Samples) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let mut dom = clients[c % clients.len()].domains();
            let (stop, names, host) = (stop.clone(), names.clone(), host.to_owned());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut i = c * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    dom.get_domain(get_req(&host, &names[i % names.len()], view))
                        .await
                        .unwrap();
                    out.push(t.elapsed().as_secs_f64() * 1e6);
                    i += 1;
                }
                out
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    (all.len() as f64 / elapsed, Samples(all))
}

fn concurrent(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    conn: &Connect,
    host: &str,
    names: &[String],
) {
    let names_arc = Arc::new(names.to_vec());
    let clients: Vec<Client> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..args.conns.max(1) {
            v.push(Client::connect(args.addr.clone()).await.unwrap());
        }
        v
    });
    let (callers, secs) = (args.callers, args.secs);
    // Two alternating rounds each, half the time per round.
    let (mut d_rate, mut f_rate, mut b_rate) = (0.0, 0.0, 0.0);
    let (mut d_lat, mut f_lat, mut b_lat) =
        (Samples::default(), Samples::default(), Samples::default());
    for _round in 0..2 {
        let (r, s) = direct_concurrent(conn, names, callers, secs / 2.0);
        d_rate += r / 2.0;
        d_lat.0.extend(s.0);
        for (view, rate, lat) in [
            (DomainView::Full, &mut f_rate, &mut f_lat),
            (DomainView::Basic, &mut b_rate, &mut b_lat),
        ] {
            let (r, s) = rt.block_on(service_concurrent(
                &clients,
                host,
                names_arc.clone(),
                view,
                callers,
                secs / 2.0,
            ));
            *rate += r / 2.0;
            lat.0.extend(s.0);
        }
    }
    println!(
        "\n4. {callers} concurrent GetDomain callers, {secs:.0} s each: service over {} HTTP/2 connection(s), \
         direct = {callers} threads sharing one connection (lookup+info)",
        clients.len()
    );
    println!("  {:<44} {:>9} {:>9} {:>9}", "", "calls/s", "p50", "p99");
    for (what, rate, lat) in [
        ("direct lookup+info, one shared connection", d_rate, &d_lat),
        ("service GetDomain FULL", f_rate, &f_lat),
        ("service GetDomain BASIC", b_rate, &b_lat),
    ] {
        println!(
            "  {:<44} {:>9.0} {} {}",
            what,
            rate,
            us(lat.pct(50.0)),
            us(lat.pct(99.0))
        );
    }
    println!(
        "  throughput ratio service/direct: FULL {:.2}x, BASIC {:.2}x  (target >= 1.5x)",
        f_rate / d_rate,
        b_rate / d_rate
    );
}
