#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{v1, TestServer};
use std::time::Instant;
fn p(mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!("p50 {:.0} p99 {:.0}", v[v.len() / 2], v[v.len() * 99 / 100])
}
#[tokio::main]
async fn main() {
    let uri = std::env::args().nth(1).unwrap();
    let s = TestServer::start(vec![HostConfig::new("bench", &uri)]).await;
    virt::error::clear_error_callback();
    let conn = virt::connect::Connect::open(Some(&uri)).unwrap();
    let name = "bench-0500";
    let n = 2000;
    let mut v = vec![];
    for _ in 0..n {
        let t = Instant::now();
        let d = conn.lookup_domain_by_name(name).unwrap();
        d.info().unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("direct lookup+info {}", p(v));
    let mut dom = s.client.domains();
    for view in [v1::DomainView::Basic, v1::DomainView::Full] {
        let req = v1::GetDomainRequest {
            domain: Some(s.client.domain_ref(name)),
            view: view as i32,
        };
        let mut v = vec![];
        for _ in 0..n {
            let t = Instant::now();
            dom.get_domain(req.clone()).await.unwrap();
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!("get {view:?} {}", p(v));
    }
    let g = virt::sys::VIR_DOMAIN_STATS_STATE
        | virt::sys::VIR_DOMAIN_STATS_BALLOON
        | virt::sys::VIR_DOMAIN_STATS_VCPU;
    let mut v = vec![];
    for _ in 0..50 {
        let t = Instant::now();
        libvirt_grpc_server::libvirt_sys::domain_stats(&conn, &[], g, 0).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!("direct allstats {}", p(v));
    for view in [v1::DomainView::Basic, v1::DomainView::Full] {
        let req = v1::ListDomainsRequest {
            page_size: 1000,
            view: view as i32,
            ..Default::default()
        };
        let mut v = vec![];
        for _ in 0..50 {
            let t = Instant::now();
            let r = dom.list_domains(req.clone()).await.unwrap();
            assert!(r.into_inner().domains.len() >= 1000);
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        println!("list {view:?} {}", p(v));
    }
}
