//! Benchmark (not a test): the delay from libvirt's callback to a client
//! receiving the event, with 1, 100 and 1000 subscribers, and the memory
//! 1000 open streams cost. In-process server over `test:///default`.
//!
//! Run: `cargo run --release -p libvirt-grpc-tests --example bench_events`
//! (optional argument: events per round, default 200).
//!
//! The delay is measured from the time the callback stamped on the event
//! (`time_unix_micros`) to the moment each subscriber's task reads it. The
//! memory figure is the process's RSS growth while the streams are open; the
//! clients live in the same process, so it is an upper bound for the server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use libvirt_grpc_tests::{prefix, small_spec, v1, Cleanup, TestServer};
use tokio_stream::StreamExt;

/// An event's time in microseconds since the Unix epoch.
fn micros(e: &v1::Event) -> i64 {
    e.event_time
        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos / 1_000))
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn round(s: &TestServer, subscribers: usize, events: usize) {
    let p = prefix();
    let _c = Cleanup::new("test:///default", &p);
    let name = format!("{p}bench");
    let rss0 = rss_kib();
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers);
    for _ in 0..subscribers {
        let mut st = s
            .client
            .events()
            .watch_events(v1::WatchEventsRequest {
                names: vec![name.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(events);
            let mut lost = 0u64;
            let _ = st.next().await; // started
            ready.send(()).await.unwrap();
            while delays.len() < events {
                let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(60), st.next()).await
                else {
                    break;
                };
                match m.item {
                    Some(v1::watch_events_response::Item::Event(e)) => {
                        delays.push(now_micros() - micros(&e))
                    }
                    Some(v1::watch_events_response::Item::EventsLost(l)) => {
                        lost += l.to_sequence - l.from_sequence + 1;
                        if delays.len() as u64 + lost >= events as u64 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            (delays, lost)
        }));
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.unwrap();
    }
    let rss_open = rss_kib();
    let start = std::time::Instant::now();
    for i in 0..events {
        if i % 2 == 0 {
            s.client.define_domain(small_spec(&name)).await.unwrap();
        } else {
            s.client.undefine_domain(&name).await.unwrap();
        }
    }
    let produce = start.elapsed();
    let mut all = Vec::new();
    let mut lost = 0;
    for t in tasks {
        let (d, l) = t.await.unwrap();
        all.extend(d);
        lost += l;
    }
    all.sort_unstable();
    println!(
        "subscribers={subscribers:5} events={events} delivered={} lost={lost} \
         delay_ms p50={:.3} p99={:.3} max={:.3}  produce={:.0} ev/s  rss_growth_with_streams={} KiB ({:.1} KiB/stream)",
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        events as f64 / produce.as_secs_f64(),
        rss_open.saturating_sub(rss0),
        rss_open.saturating_sub(rss0) as f64 / subscribers as f64,
    );
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let s = TestServer::test_driver().await;
    for n in [1, 100, 1000] {
        round(&s, n, events).await;
    }
}
