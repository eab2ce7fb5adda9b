//! EventService against libvirt's in-process test driver: lifecycle events
//! in order with their details, filters, resume from the ring, a resume
//! from too far back, many subscribers, and list-then-watch.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_server::config::{Config, HostConfig};
use libvirt_grpc_tests::{bad_fields, code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};
use v1::{
    watch_events_response::Item as Message, DomainLifecycleDetail as D, DomainLifecycleEvent as L,
    EventKind,
};

const URI: &str = "test:///default";

async fn open(
    s: &TestServer,
    req: v1::WatchEventsRequest,
) -> (v1::WatchStarted, Streaming<v1::WatchEventsResponse>) {
    let mut st = s
        .client
        .events()
        .watch_events(req)
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut st).await;
    match first {
        Message::Started(w) => (w, st),
        other => panic!("first message must be started, got {other:?}"),
    }
}

async fn next(st: &mut Streaming<v1::WatchEventsResponse>) -> Message {
    tokio::time::timeout(Duration::from_secs(10), st.next())
        .await
        .expect("no message within 10 s")
        .expect("stream ended")
        .unwrap()
        .item
        .unwrap()
}

async fn next_event(st: &mut Streaming<v1::WatchEventsResponse>) -> v1::Event {
    match next(st).await {
        Message::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn lifecycle(e: &v1::Event) -> (L, D) {
    match &e.details {
        Some(v1::event::Details::Lifecycle(l)) => (l.event(), l.detail()),
        other => panic!("not a lifecycle event: {other:?}"),
    }
}

fn names(name: &str) -> v1::WatchEventsRequest {
    v1::WatchEventsRequest {
        names: vec![name.to_owned()],
        ..Default::default()
    }
}

/// define, start, suspend, resume, destroy, undefine through the API.
async fn cycle(s: &TestServer, name: &str) {
    let c = &s.client;
    c.define_domain(small_spec(name)).await.unwrap();
    c.start_domain(name).await.unwrap();
    c.domains()
        .suspend_domain(v1::SuspendDomainRequest {
            domain: Some(c.domain_ref(name)),
        })
        .await
        .unwrap();
    c.domains()
        .resume_domain(v1::ResumeDomainRequest {
            domain: Some(c.domain_ref(name)),
        })
        .await
        .unwrap();
    c.stop_domain(name).await.unwrap();
    c.undefine_domain(name).await.unwrap();
}

const EXPECTED: [(L, D, i32); 6] = [
    (L::Defined, D::DefinedAdded, 0),
    (L::Started, D::StartedBooted, 0),
    (L::Suspended, D::SuspendedPaused, 0),
    (L::Resumed, D::ResumedUnpaused, 0),
    (L::Stopped, D::StoppedDestroyed, 1),
    (L::Undefined, D::UndefinedRemoved, 0),
];

/// Whether an event's time is within a few seconds of now.
fn recent(e: &v1::Event) {
    let t = e.event_time.expect("every event has a time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let at = t.seconds as f64 + f64::from(t.nanos) / 1e9;
    assert!(
        (now - at).abs() < 10.0,
        "event_time {at} is not near now {now}"
    );
}

#[tokio::test]
async fn lifecycle_events_in_order_with_details_and_state() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let (started, mut st) = open(&s, names(&name)).await;
    assert!(!started.epoch.is_empty());
    cycle(&s, &name).await;
    let mut last = started.sequence;
    for (event, detail, code) in EXPECTED {
        let e = next_event(&mut st).await;
        assert!(e.sequence > last, "sequences strictly increase");
        last = e.sequence;
        assert_eq!(e.epoch, started.epoch);
        assert_eq!(
            (e.host.as_str(), e.name.as_str()),
            ("default", name.as_str())
        );
        assert!(uuid::Uuid::parse_str(&e.uuid).is_ok());
        assert_eq!(e.kind(), EventKind::Lifecycle);
        assert_eq!(e.object_type(), v1::ObjectType::Domain);
        assert!(!e.reconciled);
        recent(&e);
        assert_eq!(lifecycle(&e), (event, detail));
        let Some(v1::event::Details::Lifecycle(l)) = &e.details else {
            unreachable!()
        };
        assert_eq!(l.detail_code, code, "libvirt's number travels beside it");
        let hint = e.state.unwrap();
        // The hint is read right after the event; the next change may
        // already have happened, so only the final undefine is exact.
        if event == L::Undefined {
            assert!(!hint.exists);
        } else if hint.exists {
            assert_ne!(hint.domain_state(), v1::DomainState::Unspecified);
            assert_ne!(
                hint.domain_state_reason(),
                v1::DomainStateReason::Unspecified
            );
        }
    }
}

#[tokio::test]
async fn filters_by_name_kind_host_and_type() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    let (_, mut only_a) = open(&s, names(&a)).await;
    let (_, mut only_started) = open(
        &s,
        v1::WatchEventsRequest {
            names: vec![a.clone(), b.clone()],
            kinds: vec![EventKind::Lifecycle as i32],
            hosts: vec!["default".into()],
            object_types: vec![v1::ObjectType::Domain as i32],
            ..Default::default()
        },
    )
    .await;
    cycle(&s, &b).await;
    cycle(&s, &a).await;
    for _ in 0..6 {
        let e = next_event(&mut only_a).await;
        assert_eq!(e.name, a, "a name filter lets nothing else through");
    }
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(next_event(&mut only_started).await.name);
    }
    assert_eq!(&seen[..6], &vec![b.clone(); 6][..]);
    assert_eq!(&seen[6..], &vec![a.clone(); 6][..]);
    // A filter on a kind nothing produces here stays silent (but open).
    let (_, mut reboot_only) = open(
        &s,
        v1::WatchEventsRequest {
            names: vec![a.clone()],
            kinds: vec![EventKind::Reboot as i32],
            ..Default::default()
        },
    )
    .await;
    cycle(&s, &a).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), reboot_only.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let s = TestServer::test_driver().await;
    let mut ev = s.client.events();
    // Every bad field in one BadRequest.
    let st = ev
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["nope".into()],
            names: vec![String::new()],
            uuids: vec!["not-a-uuid".into()],
            kinds: vec![999, EventKind::Unspecified as i32],
            object_types: vec![v1::ObjectType::Unspecified as i32],
            resume_after: Some(1),
            epoch: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    let mut fields = bad_fields(&st);
    fields.sort();
    fields.dedup();
    assert_eq!(
        fields,
        ["epoch", "kinds", "names", "object_types", "uuids"],
        "{st:?}"
    );
    // An unknown host alone is NOT_FOUND.
    let st = ev
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["nope".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    for req in [
        v1::WatchEventsRequest {
            kinds: vec![999],
            ..Default::default()
        },
        v1::WatchEventsRequest {
            object_types: vec![99],
            ..Default::default()
        },
        v1::WatchEventsRequest {
            resume_after: Some(1),
            ..Default::default()
        },
    ] {
        let code = code_of(ev.watch_events(req).await.map(|_| ()));
        assert_eq!(code, Code::InvalidArgument);
    }
    let pos = ev
        .get_event_position(v1::GetEventPositionRequest {})
        .await
        .unwrap()
        .into_inner();
    let future = v1::WatchEventsRequest {
        resume_after: Some(pos.sequence + 1_000_000),
        epoch: pos.epoch,
        ..Default::default()
    };
    let st = ev.watch_events(future).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&st), ["resume_after"]);
}

/// A domain stopped at once: STOPPED with detail STOPPED_DESTROYED, and a
/// state hint of SHUTOFF / SHUTOFF_DESTROYED read right after it.
#[tokio::test]
async fn a_stopped_domain_says_destroyed_in_detail_and_hint() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}st");
    let c = &s.client;
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            kinds: vec![EventKind::Lifecycle as i32],
            ..names(&name)
        },
    )
    .await;
    c.define_domain(small_spec(&name)).await.unwrap();
    c.start_domain(&name).await.unwrap();
    assert_eq!(lifecycle(&next_event(&mut st).await).0, L::Defined);
    assert_eq!(lifecycle(&next_event(&mut st).await).0, L::Started);
    c.stop_domain(&name).await.unwrap();
    let e = next_event(&mut st).await;
    recent(&e);
    assert_eq!(lifecycle(&e), (L::Stopped, D::StoppedDestroyed));
    let hint = e.state.unwrap();
    assert!(hint.exists && !hint.active);
    assert_eq!(hint.domain_state(), v1::DomainState::Shutoff);
    assert_eq!(
        hint.domain_state_reason(),
        v1::DomainStateReason::ShutoffDestroyed
    );
    assert_eq!(
        hint.domain_state_reason_code, 2,
        "VIR_DOMAIN_SHUTOFF_DESTROYED"
    );
    c.start_domain(&name).await.unwrap();
    let e = next_event(&mut st).await;
    assert_eq!(lifecycle(&e), (L::Started, D::StartedBooted));
    let hint = e.state.unwrap();
    assert!(hint.exists && hint.active);
    assert_eq!(
        (hint.domain_state(), hint.domain_state_reason()),
        (
            v1::DomainState::Running,
            v1::DomainStateReason::RunningBooted
        )
    );
    c.stop_domain(&name).await.unwrap();
}

/// The defaults WatchEventsRequest's comments promise: empty filters accept
/// every kind and object type, no `resume_after` means live without
/// replay, an epoch without `resume_after` is ignored, an empty host name
/// is the default host.
#[tokio::test]
async fn empty_filters_and_no_resume_are_live_and_accept_everything() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let (vm, net) = (format!("{p}dvm"), format!("{p}dnet"));
    let c = &s.client;
    // Happened (and reached the hub) before the watch: never replayed.
    let (_, mut before) = open(&s, names(&vm)).await;
    c.define_domain(small_spec(&vm)).await.unwrap();
    assert_eq!(lifecycle(&next_event(&mut before).await).0, L::Defined);
    let (started, mut all) = open(
        &s,
        v1::WatchEventsRequest {
            epoch: "ignored-without-resume_after".into(),
            ..Default::default()
        },
    )
    .await;
    let (_, mut default_host) = open(
        &s,
        v1::WatchEventsRequest {
            hosts: vec![String::new()],
            ..names(&vm)
        },
    )
    .await;
    c.start_domain(&vm).await.unwrap();
    let n2 = net.clone();
    tokio::task::spawn_blocking(move || {
        let conn = virt::connect::Connect::open(Some(URI)).unwrap();
        let n = conn
            .define_network_xml(&format!("<network><name>{n2}</name></network>"))
            .unwrap();
        n.undefine().unwrap();
    })
    .await
    .unwrap();
    let mut seen_types = Vec::new();
    let mut first = true;
    while seen_types.len() < 2 {
        let e = match next(&mut all).await {
            Message::Event(e) => e,
            other => panic!("no replay, no loss expected: {other:?}"),
        };
        assert!(e.sequence > started.sequence, "nothing replayed");
        if e.name == vm && first {
            assert_eq!(lifecycle(&e).0, L::Started, "the define is not replayed");
            first = false;
        }
        if (e.name == vm || e.name == net) && !seen_types.contains(&e.object_type()) {
            seen_types.push(e.object_type());
        }
    }
    assert!(seen_types.contains(&v1::ObjectType::Domain));
    assert!(seen_types.contains(&v1::ObjectType::Network));
    let e = next_event(&mut default_host).await;
    assert_eq!((e.host.as_str(), lifecycle(&e).0), ("default", L::Started));
    c.stop_domain(&vm).await.unwrap();
}

/// `uuids` matches in any case and form; `names` matches exactly.
#[tokio::test]
async fn uuid_filter_takes_any_form_and_names_match_exactly() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}uu");
    let c = &s.client;
    let (_, mut st) = open(&s, names(&name)).await;
    c.define_domain(small_spec(&name)).await.unwrap();
    c.start_domain(&name).await.unwrap();
    let uuid = next_event(&mut st).await.uuid;
    // Both changes reached the hub before the next subscriptions.
    assert_eq!(lifecycle(&next_event(&mut st).await).0, L::Started);
    let simple_upper = uuid.replace('-', "").to_uppercase();
    let (_, mut by_uuid) = open(
        &s,
        v1::WatchEventsRequest {
            uuids: vec![simple_upper],
            ..Default::default()
        },
    )
    .await;
    let (_, mut by_other_case) = open(&s, names(&name.to_uppercase())).await;
    c.stop_domain(&name).await.unwrap();
    let e = next_event(&mut by_uuid).await;
    assert_eq!(
        (e.uuid.as_str(), lifecycle(&e).0),
        (uuid.as_str(), L::Stopped)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), by_other_case.next())
            .await
            .is_err(),
        "a name filter is case-sensitive"
    );
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let (started, mut st) = open(&s, names(&name)).await;
    let c = &s.client;
    c.define_domain(small_spec(&name)).await.unwrap();
    let first = next_event(&mut st).await;
    drop(st);
    // Changes while nobody watches.
    c.start_domain(&name).await.unwrap();
    c.stop_domain(&name).await.unwrap();
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            resume_after: Some(first.sequence),
            epoch: started.epoch.clone(),
            ..names(&name)
        },
    )
    .await;
    let e1 = next_event(&mut st).await;
    let e2 = next_event(&mut st).await;
    assert_eq!(lifecycle(&e1).0, L::Started);
    assert_eq!(lifecycle(&e2).0, L::Stopped);
    assert!(first.sequence < e1.sequence && e1.sequence < e2.sequence);
    // Then live.
    c.undefine_domain(&name).await.unwrap();
    assert_eq!(lifecycle(&next_event(&mut st).await).0, L::Undefined);

    // Another epoch: told explicitly.
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            resume_after: Some(1),
            epoch: "some-other-epoch".into(),
            ..Default::default()
        },
    )
    .await;
    match next(&mut st).await {
        Message::EventsLost(l) => {
            assert_eq!(l.reason(), v1::LossReason::EpochChanged);
            assert_eq!(l.epoch, started.epoch);
            // Every sequence of the current epoch so far.
            assert_eq!(l.from_sequence, 1);
            assert!(l.to_sequence > first.sequence);
        }
        other => panic!("expected events_lost, got {other:?}"),
    }
}

#[tokio::test]
async fn resume_from_too_far_back_reports_the_gap() {
    let s = TestServer::start_with(Config {
        hosts: vec![HostConfig::new("default", URI)],
        event_ring_size: 4,
        ..Config::default()
    })
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let (started, mut st) = open(&s, names(&name)).await;
    cycle(&s, &name).await;
    // Wait until all six reached the hub.
    for _ in 0..6 {
        next_event(&mut st).await;
    }
    let (now, _) = open(&s, v1::WatchEventsRequest::default()).await;
    assert!(now.sequence >= started.sequence + 6);
    assert_eq!(now.oldest_sequence, now.sequence - 3, "the ring holds 4");
    // Other tests of this binary share the test driver, so more events may
    // arrive meanwhile: the resumed stream's own `started` says where the
    // ring stood when it subscribed.
    let (resumed, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            resume_after: Some(started.sequence),
            epoch: started.epoch.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        resumed.oldest_sequence,
        resumed.sequence - 3,
        "the ring holds 4"
    );
    match next(&mut st).await {
        Message::EventsLost(l) => {
            assert_eq!(l.reason(), v1::LossReason::LeftRing);
            assert_eq!(l.from_sequence, started.sequence + 1);
            assert_eq!(l.to_sequence, resumed.oldest_sequence - 1);
        }
        other => panic!("expected events_lost, got {other:?}"),
    }
    // Then exactly the four the ring still held, in order.
    for seq in resumed.oldest_sequence..=resumed.sequence {
        assert_eq!(next_event(&mut st).await.sequence, seq);
    }
}

#[tokio::test]
async fn many_subscribers_see_the_same_sequence() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(open(&s, names(&name)).await.1);
    }
    cycle(&s, &name).await;
    let mut reference: Option<Vec<u64>> = None;
    for st in &mut streams {
        let mut seqs = Vec::new();
        for (event, ..) in EXPECTED {
            let e = next_event(st).await;
            assert_eq!(lifecycle(&e).0, event);
            seqs.push(e.sequence);
        }
        match &reference {
            None => reference = Some(seqs),
            Some(r) => assert_eq!(r, &seqs),
        }
    }
}

#[tokio::test]
async fn list_then_watch_without_a_gap() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let c = &s.client;
    c.define_domain(small_spec(&name)).await.unwrap();
    let list = c
        .domains()
        .list_domains(v1::ListDomainsRequest {
            name_prefix: p.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.domains.len(), 1);
    assert!(!list.event_epoch.is_empty());
    // A change between the listing and the watch is not lost.
    c.start_domain(&name).await.unwrap();
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            resume_after: Some(list.event_sequence),
            epoch: list.event_epoch,
            ..names(&name)
        },
    )
    .await;
    loop {
        let e = next_event(&mut st).await;
        if lifecycle(&e).0 == L::Started {
            break;
        }
        assert_eq!(lifecycle(&e).0, L::Defined, "only the define may repeat");
    }
}

#[tokio::test]
async fn client_watch_helper_delivers_and_resumes() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let mut w = s.client.watch(names(&name));
    match w.next().await.unwrap().unwrap().item.unwrap() {
        Message::Started(_) => {}
        other => panic!("{other:?}"),
    }
    cycle(&s, &name).await;
    for (event, ..) in EXPECTED {
        match w.next().await.unwrap().unwrap().item.unwrap() {
            Message::Event(e) => assert_eq!(lifecycle(&e).0, event),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn network_and_pool_lifecycle_events() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let (net, pool) = (format!("{p}net"), format!("{p}pool"));
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            names: vec![net.clone(), pool.clone()],
            ..Default::default()
        },
    )
    .await;
    let (n2, p2) = (net.clone(), pool.clone());
    tokio::task::spawn_blocking(move || {
        let conn = virt::connect::Connect::open(Some(URI)).unwrap();
        let n = conn
            .define_network_xml(&format!(
                "<network><name>{n2}</name><bridge name='{}'/></network>",
                &n2[..n2.len().min(12)]
            ))
            .unwrap();
        n.undefine().unwrap();
        let dir = std::env::temp_dir();
        let pl = conn
            .define_storage_pool_xml(
                &format!(
                    "<pool type='dir'><name>{p2}</name><target><path>{}</path></target></pool>",
                    dir.display()
                ),
                0,
            )
            .unwrap();
        pl.undefine().unwrap();
    })
    .await
    .unwrap();
    // libvirt dispatches each object type in order, but not across types.
    use v1::{NetworkLifecycleEvent as N, StoragePoolLifecycleEvent as P};
    let want = [
        (
            EventKind::NetworkLifecycle,
            N::Defined as i32,
            0,
            net.clone(),
        ),
        (
            EventKind::NetworkLifecycle,
            N::Undefined as i32,
            1,
            net.clone(),
        ),
        (
            EventKind::StoragePoolLifecycle,
            P::Defined as i32,
            0,
            pool.clone(),
        ),
        (
            EventKind::StoragePoolLifecycle,
            P::Undefined as i32,
            1,
            pool.clone(),
        ),
    ];
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut st).await;
        recent(&e);
        match &e.details {
            Some(v1::event::Details::NetworkLifecycle(d)) => {
                got.push((e.kind(), d.event, d.event_code, e.name.clone()))
            }
            Some(v1::event::Details::StoragePoolLifecycle(d)) => {
                got.push((e.kind(), d.event, d.event_code, e.name.clone()))
            }
            other => panic!("{other:?}"),
        }
    }
    for kind in [EventKind::NetworkLifecycle, EventKind::StoragePoolLifecycle] {
        let g: Vec<_> = got.iter().filter(|x| x.0 == kind).collect();
        let w: Vec<_> = want.iter().filter(|x| x.0 == kind).collect();
        assert_eq!(g, w);
    }
}

#[tokio::test]
async fn client_watch_resumes_across_a_server_restart() {
    let cfg = || Config {
        hosts: vec![HostConfig::new("default", URI)],
        ..Config::default()
    };
    let s = TestServer::start_with(cfg()).await;
    let addr = s.addr;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}rs");
    let client = s.client.clone();
    let mut w = client.watch(names(&name));
    match w.next().await.unwrap().unwrap().item.unwrap() {
        Message::Started(_) => {}
        other => panic!("{other:?}"),
    }
    client.define_domain(small_spec(&name)).await.unwrap();
    match w.next().await.unwrap().unwrap().item.unwrap() {
        Message::Event(e) => assert_eq!(lifecycle(&e).0, L::Defined),
        other => panic!("{other:?}"),
    }
    // The server goes away and comes back on the same address with a new
    // epoch: the helper reconnects by itself and says exactly what happened
    // (the old sequence cannot be resumed), then delivers new events.
    s.stop().await;
    let s2 = TestServer::start_at(addr, cfg()).await;
    let mut started_again = false;
    let lost = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("the helper did not reconnect within 10 s")
            .unwrap()
            .unwrap()
            .item
            .unwrap();
        match msg {
            Message::Started(_) => started_again = true,
            Message::EventsLost(l) => break l,
            other => panic!("{other:?}"),
        }
    };
    assert!(started_again, "no new `started` after the reconnect");
    assert_eq!(lost.reason(), v1::LossReason::EpochChanged);
    s2.client.start_domain(&name).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.next().await.unwrap().unwrap().item.unwrap() {
                Message::Event(e) if lifecycle(&e).0 == L::Started => break,
                Message::Event(_) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("no STARTED event from the restarted server within 10 s");
}

#[tokio::test]
async fn metadata_change_events_carry_typed_details() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}md");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            names: vec![name.clone()],
            kinds: vec![EventKind::MetadataChange as i32],
            ..Default::default()
        },
    )
    .await;
    let uri = "https://example.org/lvg/md";
    s.client
        .domains()
        .set_domain_metadata(v1::SetDomainMetadataRequest {
            domain: Some(s.client.domain_ref(&name)),
            kind: v1::MetadataKind::Element as i32,
            value: "<tag/>".into(),
            key: "lvg".into(),
            uri: uri.into(),
            scope: Some(v1::ModifyScope {
                live: false,
                config: true,
            }),
        })
        .await
        .unwrap();
    let e = next_event(&mut st).await;
    assert_eq!(e.kind(), EventKind::MetadataChange);
    assert_eq!(e.name, name);
    match e.details {
        Some(v1::event::Details::MetadataChange(m)) => {
            assert_eq!(m.kind(), v1::MetadataKind::Element);
            assert_eq!(m.namespace_uri, uri);
        }
        other => panic!("{other:?}"),
    }
}

/// `resume_after: 0` replays the whole ring, oldest first.
#[tokio::test]
async fn resume_after_zero_replays_the_whole_ring() {
    let s = TestServer::start_with(Config {
        hosts: vec![HostConfig::new("default", URI)],
        ..Config::default()
    })
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}z");
    let (started, mut st) = open(&s, names(&name)).await;
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let defined = next_event(&mut st).await;
    let (resumed, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            resume_after: Some(0),
            epoch: started.epoch.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        resumed.oldest_sequence, 1,
        "a fresh server's ring starts at 1"
    );
    let mut seq = 0;
    while seq < defined.sequence {
        let e = next_event(&mut st).await;
        assert_eq!(e.sequence, seq + 1, "every event of the ring, in order");
        seq = e.sequence;
    }
}

/// No `hosts`: events of every configured host; `hosts` narrows to those
/// named (two host names on the one in-process test driver here, so each
/// change is reported once per host).
#[tokio::test]
async fn no_host_filter_means_every_host() {
    let s = TestServer::start_with(Config {
        hosts: vec![
            HostConfig::new("default", URI),
            HostConfig::new("other", URI),
        ],
        ..Config::default()
    })
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}mh");
    let (_, mut every) = open(&s, names(&name)).await;
    let (_, mut other) = open(
        &s,
        v1::WatchEventsRequest {
            hosts: vec!["other".into()],
            ..names(&name)
        },
    )
    .await;
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let mut hosts = vec![
        next_event(&mut every).await.host,
        next_event(&mut every).await.host,
    ];
    hosts.sort();
    assert_eq!(hosts, ["default", "other"]);
    let e = next_event(&mut other).await;
    assert_eq!((e.host.as_str(), lifecycle(&e).0), ("other", L::Defined));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other.next())
            .await
            .is_err(),
        "nothing of the default host"
    );
}

/// Collects `n` lifecycle events of domains named with `prefix`, skipping
/// everything else.
async fn collect(
    st: &mut Streaming<v1::WatchEventsResponse>,
    prefix: &str,
    n: usize,
) -> Vec<v1::Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next(st).await {
            Message::Event(e) if e.name.starts_with(prefix) => out.push(e),
            Message::EventsLost(l) => panic!("events lost: {l:?}"),
            _ => {}
        }
    }
    out
}

/// A burst of events (200 domains defined, then undefined, 16 calls at a
/// time, and 20 domains taken through define/start/destroy/undefine at
/// once) arrives complete, in sequence order, in each domain's order, with
/// the hints libvirt gives: shut off after DEFINED, gone after UNDEFINED.
#[tokio::test]
async fn a_burst_of_200_domains_arrives_complete_in_order_with_hints() {
    use futures::StreamExt as _;
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let (_, mut st) = open(
        &s,
        v1::WatchEventsRequest {
            kinds: vec![EventKind::Lifecycle as i32],
            ..Default::default()
        },
    )
    .await;
    let names: Vec<String> = (0..200).map(|i| format!("{p}b{i:03}")).collect();
    let c = &s.client;
    futures::stream::iter(names.iter())
        .for_each_concurrent(16, |n| async move {
            c.define_domain(small_spec(n)).await.unwrap();
        })
        .await;
    let defined = collect(&mut st, &p, names.len()).await;
    let mut seen = std::collections::HashSet::new();
    let mut last = 0;
    for e in &defined {
        assert!(e.sequence > last, "sequences strictly increase");
        last = e.sequence;
        assert_eq!(lifecycle(e).0, L::Defined);
        assert!(seen.insert(e.name.clone()), "{} delivered twice", e.name);
        let hint = e.state.unwrap();
        assert!(hint.exists && !hint.active, "{}: {hint:?}", e.name);
        assert_eq!(hint.domain_state(), v1::DomainState::Shutoff);
    }
    assert_eq!(seen.len(), names.len(), "every domain's DEFINED arrived");
    futures::stream::iter(names.iter())
        .for_each_concurrent(16, |n| async move {
            c.undefine_domain(n).await.unwrap();
        })
        .await;
    let undefined = collect(&mut st, &p, names.len()).await;
    let mut gone = std::collections::HashSet::new();
    for e in &undefined {
        assert!(e.sequence > last, "sequences strictly increase");
        last = e.sequence;
        assert_eq!(lifecycle(e).0, L::Undefined);
        assert_eq!(
            e.state,
            Some(v1::ObjectState::default()),
            "{} is gone",
            e.name
        );
        gone.insert(e.name.clone());
    }
    assert_eq!(gone, seen, "every domain's UNDEFINED arrived");
    // Many events of the same domains in flight at once: each domain's own
    // order holds, and its last hint is libvirt's final word (gone).
    let cycled: Vec<String> = (0..20).map(|i| format!("{p}c{i:02}")).collect();
    futures::stream::iter(cycled.iter())
        .for_each_concurrent(20, |n| async move {
            c.define_domain(small_spec(n)).await.unwrap();
            c.start_domain(n).await.unwrap();
            c.stop_domain(n).await.unwrap();
            c.undefine_domain(n).await.unwrap();
        })
        .await;
    let events = collect(&mut st, &p, cycled.len() * 4).await;
    for n in &cycled {
        let mine: Vec<&v1::Event> = events.iter().filter(|e| &e.name == n).collect();
        assert_eq!(
            mine.iter().map(|e| lifecycle(e).0).collect::<Vec<_>>(),
            vec![L::Defined, L::Started, L::Stopped, L::Undefined],
            "{n}: its events in its order"
        );
        assert!(mine.windows(2).all(|w| w[0].sequence < w[1].sequence));
        assert_eq!(mine[3].state, Some(v1::ObjectState::default()), "{n} gone");
        // A hint is what libvirt said at or after its event: never a state
        // the domain had before it.
        let started = mine[1].state.unwrap();
        assert!(
            !started.exists
                || matches!(
                    started.domain_state(),
                    v1::DomainState::Running | v1::DomainState::Shutoff
                ),
            "{n}: {started:?}"
        );
    }
}

/// A position taken from a server that has just started is a promise: a
/// change made right after it is announced after it (the position waits
/// for the hosts' callbacks). Fresh servers, so each one's registration is
/// racing the first call.
#[tokio::test]
async fn a_position_from_a_fresh_server_sees_the_next_change() {
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    for i in 0..5 {
        let s = TestServer::test_driver().await;
        let name = format!("{p}fresh{i}");
        let pos = s
            .client
            .events()
            .get_event_position(v1::GetEventPositionRequest {})
            .await
            .unwrap()
            .into_inner();
        s.client.define_domain(small_spec(&name)).await.unwrap();
        let (_, mut st) = open(
            &s,
            v1::WatchEventsRequest {
                resume_after: Some(pos.sequence),
                epoch: pos.epoch,
                ..names(&name)
            },
        )
        .await;
        let e = next_event(&mut st).await;
        assert_eq!(lifecycle(&e).0, L::Defined, "server {i}: {e:?}");
        assert!(e.sequence > pos.sequence);
        s.client.undefine_domain(&name).await.unwrap();
    }
}
