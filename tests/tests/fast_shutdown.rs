//! Shutdown under misbehaving peers (issue 8, finding 4), on the test
//! driver: SIGTERM to the real binary ends event streams with UNAVAILABLE,
//! closes connections that are idle or stuck after the grace period, and
//! exits 0 in time; a second signal stops at once; in process, `serve`
//! closes such connections itself at the end of the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use libvirt_grpc_server::{
    config::{Config, HostConfig},
    events::SHUTDOWN_MESSAGE,
};
use libvirt_grpc_tests::{
    daemon::Daemon,
    peers::{accepted, ends_within, is_closed, raw_connect, stuck_subscriber},
    prefix, v1, wait_until, Client, TestServer,
};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

const URI: &str = "test:///default";

fn config() -> Config {
    Config {
        hosts: vec![HostConfig::new("default", URI)],
        health_interval_secs: 1,
        ..Config::default()
    }
}

/// A subscriber that reads everything: its stream, the bytes of events it
/// has seen so far, and the status its stream ended with (`None`: OK).
async fn reading_subscriber(
    client: &Client,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<Option<Status>>) {
    let mut reading = client
        .events()
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    match reading.next().await.unwrap().unwrap().item {
        Some(v1::watch_events_response::Item::Started(_)) => {}
        other => panic!("{other:?}"),
    }
    let seen_bytes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&seen_bytes);
    let task = tokio::spawn(async move {
        while let Some(item) = reading.next().await {
            match item {
                Ok(msg) => {
                    seen.fetch_add(msg.encoded_len(), Ordering::Relaxed);
                }
                Err(status) => return Some(status),
            }
        }
        None
    });
    (seen_bytes, task)
}

/// Pauses and resumes a running domain with a 200-character name (large
/// events) until `seen` has counted 256 KiB of events: four times a stuck
/// subscriber's flow-control window, so its connection is stuck on a
/// write.
async fn fill_with_events(client: &Client, seen: &AtomicUsize) {
    let p = prefix();
    let name = format!("{p}{}", "e".repeat(200 - p.len()));
    client
        .define_domain(libvirt_grpc_tests::small_spec(&name))
        .await
        .unwrap();
    client.start_domain(&name).await.unwrap();
    let dom = client.domain_ref(&name);
    let mut rounds = 0;
    while seen.load(Ordering::Relaxed) < 256 << 10 {
        client
            .domains()
            .suspend_domain(v1::SuspendDomainRequest {
                domain: Some(dom.clone()),
            })
            .await
            .unwrap();
        client
            .domains()
            .resume_domain(v1::ResumeDomainRequest {
                domain: Some(dom.clone()),
            })
            .await
            .unwrap();
        rounds += 1;
        assert!(rounds < 20_000, "events are not reaching the reader");
    }
    let _ = client.stop_domain(&name).await;
    let _ = client.undefine_domain(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_unavailable_closes_stuck_connections_and_exits() {
    let grace = 3u64;
    // The handshake timeout is longer than the test: only the shutdown
    // may close the silent connection.
    let mut d = Daemon::start(
        "handshake_timeout_secs = 120\n",
        &["--shutdown-grace-secs", &grace.to_string()],
    );
    let client = Client::connect(d.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let silent = raw_connect("127.0.0.1".parse().unwrap(), d.addr);
    accepted(&silent).await;
    let stuck = stuck_subscriber(d.addr).await;
    let (seen, reader) = reading_subscriber(&client).await;
    fill_with_events(&client, &seen).await;
    assert!(!is_closed(&silent), "the silent connection is open");

    let t0 = Instant::now();
    d.terminate();

    // The reading subscriber's stream ends with UNAVAILABLE, never OK.
    let end = tokio::time::timeout(Duration::from_secs(grace), reader)
        .await
        .expect("the reading subscriber's stream did not end within the grace period")
        .unwrap()
        .expect("the stream ended with OK instead of a status");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(end.message(), SHUTDOWN_MESSAGE);
    {
        use tonic_types::StatusExt;
        let details = end.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "SERVER_SHUTTING_DOWN");
        assert!(details.retry_info().is_some(), "RetryInfo on UNAVAILABLE");
    }

    // No new connections once shutdown began.
    let addr = d.addr;
    wait_until(
        Duration::from_secs(grace),
        "the listener to close",
        || async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;

    // The process exits in time, with status 0, although two connections
    // would never have ended by themselves.
    let (status, gone) = d
        .wait_exit(Duration::from_secs(grace + 4))
        .await
        .expect("libvirt-grpcd did not exit within the grace period + 4 s");
    assert!(status.success(), "exit status {status:?}");
    let took = gone - t0;
    assert!(
        took >= Duration::from_secs(grace) - Duration::from_millis(500),
        "exited after {took:?}: the stuck connections cannot have ended before the grace period"
    );
    assert!(
        d.logged("grace period over: closing every remaining connection"),
        "the forced close did not run"
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_without_waiting_for_the_grace_period() {
    let mut d = Daemon::start(
        "handshake_timeout_secs = 120\n",
        &["--shutdown-grace-secs", "60"],
    );
    // A silent connection holds the graceful shutdown for the whole minute.
    let silent = raw_connect("127.0.0.1".parse().unwrap(), d.addr);
    accepted(&silent).await;
    d.terminate();
    let addr = d.addr;
    wait_until(
        Duration::from_secs(10),
        "the listener to close",
        || async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(
        d.wait_exit(Duration::from_millis(500)).await.is_none(),
        "exited before the second signal"
    );
    d.terminate();
    let (status, _) = d
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("libvirt-grpcd did not stop within 5 s of the second SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_and_stuck_connections_after_the_grace_period() {
    let grace = Duration::from_secs(1);
    let s = TestServer::start_with(Config {
        shutdown_grace_secs: 1,
        handshake_timeout_secs: 120,
        ..config()
    })
    .await;
    let silent = raw_connect("127.0.0.1".parse().unwrap(), s.addr);
    accepted(&silent).await;
    let mut stuck = stuck_subscriber(s.addr).await;
    let (seen, reader) = reading_subscriber(&s.client).await;
    fill_with_events(&s.client, &seen).await;

    let t0 = Instant::now();
    s.stop().await;
    let took = t0.elapsed();
    // The server closed both from below: `serve` returned after the grace
    // period, well before it would give up on them (grace + 2 s).
    assert!(
        took >= grace - Duration::from_millis(200),
        "stopped after {took:?}"
    );
    assert!(
        took < grace + Duration::from_millis(1500),
        "stopped after {took:?}"
    );
    assert!(is_closed(&silent), "the silent connection is still open");
    assert!(
        ends_within(&mut stuck, Duration::from_secs(2)).await,
        "the stuck subscriber's connection is still open"
    );
    let end = reader.await.unwrap().expect("the stream ended with OK");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
}
