//! Benchmark (not a test): the cost of `GetDomain` and `ListDomains` through
//! the gRPC server against the same work done straight through libvirt, on
//! the in-process test driver, or on a real daemon with `--uri`.
//!
//! ```sh
//! cargo run --release -p libvirt-grpc-tests --example bench_domain -- [--uri qemu:///system] [--n 2000]
//! ```
//! Prints per-call times and the ratio gRPC / direct.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{v1, TestServer};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn per_call(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

#[tokio::main]
async fn main() {
    let uri = arg("--uri", "test:///default");
    let n: u32 = arg("--n", "2000").parse().unwrap();
    let s = TestServer::start(vec![HostConfig::new("bench", &uri)]).await;
    virt::error::clear_error_callback();
    let conn = virt::connect::Connect::open(Some(&uri)).unwrap();
    let Some(first) = conn
        .list_all_domains(0)
        .unwrap()
        .first()
        .map(|d| d.name().unwrap())
    else {
        eprintln!("{uri} has no domain to read; define one first");
        return;
    };

    // Direct: lookup + the same reads `GetDomain` makes.
    let t = Instant::now();
    for _ in 0..n {
        let d = conn.lookup_domain_by_name(&first).unwrap();
        let _ = (
            d.info().unwrap(),
            d.name().unwrap(),
            d.uuid_string().unwrap(),
            d.autostart().unwrap(),
            d.is_persistent().unwrap(),
            d.os_type().unwrap(),
        );
    }
    let direct_get = per_call(t.elapsed(), n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = conn.list_all_domains(0).unwrap();
    }
    let direct_list = per_call(t.elapsed(), n);

    let mut dom = s.client.domains();
    let req = v1::GetDomainRequest {
        domain: Some(s.client.domain_ref(&first)),
        ..Default::default()
    };
    let t = Instant::now();
    for _ in 0..n {
        dom.get_domain(req.clone()).await.unwrap();
    }
    let grpc_get = per_call(t.elapsed(), n);
    let t = Instant::now();
    for _ in 0..n {
        dom.list_domains(v1::ListDomainsRequest::default())
            .await
            .unwrap();
    }
    let grpc_list = per_call(t.elapsed(), n);

    println!("uri={uri} n={n}");
    println!(
        "GetDomain   direct {direct_get:8.1} us  grpc {grpc_get:8.1} us  ratio {:.1}x",
        grpc_get / direct_get
    );
    println!("ListDomains direct {direct_list:8.1} us  grpc {grpc_list:8.1} us  ratio {:.1}x (grpc also reads each domain's state)", grpc_list / direct_list);
}
