//! Messages over gRPC's usual 4 MiB, both ways, through the client crate's
//! stubs against an in-process server on the test driver: the client's
//! `MAX_MESSAGE_BYTES` (64 MiB) and the server's `max_message_bytes`.
//!
//! No single field of the API takes 4 MiB (raw XML and metadata values
//! are capped at 1 MiB, transfers are chunked), so the big messages are
//! made of many fields: a domain whose six metadata elements of about
//! 1 MB each make its XML ~5.7 MiB (the response), and an event watch
//! following 40 000 domain names (the request, ~6 MiB).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use libvirt_grpc_client::{v1, Client, MAX_MESSAGE_BYTES};
use tokio_stream::StreamExt;
use tonic::Code;

const FOUR_MIB: usize = 4 << 20;

/// `n` pseudo-random lowercase letters from `seed` (each element its own,
/// so a mix-up shows).
fn letters(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// A server on the test driver, the run's cleanup, its prefix and a client.
async fn setup() -> (Server, Cleanup, String, Client) {
    let s = server().await;
    let p = prefix();
    let cleanup = Cleanup {
        uri: TEST_URI.into(),
        prefix: p.clone(),
        files: vec![],
    };
    let c = Client::connect(s.url.clone()).await.unwrap();
    (s, cleanup, p, c)
}

/// Defines a small test-driver domain `name`.
async fn define_small(c: &Client, name: &str) {
    c.define_domain_xml(format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    ))
    .await
    .unwrap();
}

fn dref(name: &str) -> Option<v1::DomainRef> {
    Some(v1::DomainRef {
        host: String::new(),
        key: Some(v1::domain_ref::Key::Name(name.to_owned())),
    })
}

fn element(uri: &str, body: &str) -> v1::SetDomainMetadataRequest {
    v1::SetDomainMetadataRequest {
        kind: v1::MetadataKind::Element as i32,
        value: format!("<blob>{body}</blob>"),
        key: "lvg".into(),
        uri: uri.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_4_mib_and_the_limits_of_the_client_stubs() {
    let (s, _c, p, c) = setup().await;
    let name = format!("{p}big");
    define_small(&c, &name).await;
    let mut dom = c.domains();

    // Six elements of 1 000 000 letters each, every one read back as set.
    let bodies: Vec<String> = (0..6).map(|i| letters(0x5EED + i, 1_000_000)).collect();
    for (i, body) in bodies.iter().enumerate() {
        let uri = format!("urn:lvg-limits:{i}");
        dom.set_domain_metadata(v1::SetDomainMetadataRequest {
            domain: dref(&name),
            ..element(&uri, body)
        })
        .await
        .unwrap();
        let got = dom
            .get_domain_metadata(v1::GetDomainMetadataRequest {
                domain: dref(&name),
                kind: v1::MetadataKind::Element as i32,
                uri: uri.clone(),
                config: false,
            })
            .await
            .unwrap()
            .into_inner()
            .value;
        assert_eq!(
            got.trim(),
            format!("<blob>{body}</blob>"),
            "element {i} read back differs"
        );
    }

    // The domain's XML is one response of more than 4 MiB, with every
    // element in it once.
    let xml_req = || v1::GetDomainXmlRequest {
        domain: dref(&name),
        ..Default::default()
    };
    let xml = dom
        .get_domain_xml(xml_req())
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(xml.len() > FOUR_MIB + (1 << 20), "only {} bytes", xml.len());
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(xml.matches(body.as_str()).count(), 1, "element {i}");
    }
    // The same through the handle.
    assert_eq!(c.domain(name.as_str()).xml().await.unwrap(), xml);

    // A stub with tonic's defaults (4 MiB to receive) cannot take it: the
    // client's own limit is what lets it through.
    let channel = tonic::transport::Channel::from_shared(s.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut bare = v1::domain_service_client::DomainServiceClient::new(channel.clone());
    let st = bare.get_domain_xml(xml_req()).await.unwrap_err();
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");
    assert!(st.message().contains("too large"), "{st:?}");

    // A request over 4 MiB reaches the server's own checks (not the
    // transport's 4 MiB): one metadata value of 5 MiB is refused for its
    // size, naming the field.
    let st = dom
        .set_domain_metadata(v1::SetDomainMetadataRequest {
            domain: dref(&name),
            kind: v1::MetadataKind::Description as i32,
            value: letters(7, 5 << 20),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    assert!(st.message().contains("value"), "{st:?}");

    // Over 64 MiB: the client's stub refuses to send it. tonic's own
    // OUT_OF_RANGE ("encoded message length too large") ends the request
    // body, and hyper answers the call with the reset of the stream it
    // makes for that: INTERNAL "h2 protocol error" (OUT_OF_RANGE should a
    // later tonic pass its status on) ...
    let huge = || v1::SetDomainMetadataRequest {
        domain: dref(&name),
        kind: v1::MetadataKind::Description as i32,
        value: "x".repeat(MAX_MESSAGE_BYTES + 1),
        ..Default::default()
    };
    let st = dom.set_domain_metadata(huge()).await.unwrap_err();
    assert!(
        matches!(st.code(), Code::Internal | Code::OutOfRange),
        "{st:?}"
    );
    // ... and a stub without a send limit gets the server's answer.
    let st = bare.set_domain_metadata(huge()).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");

    // Nothing of that reached the domain.
    let got = dom
        .get_domain_metadata(v1::GetDomainMetadataRequest {
            domain: dref(&name),
            kind: v1::MetadataKind::Description as i32,
            ..Default::default()
        })
        .await;
    assert!(
        got.as_ref()
            .map(|r| r.get_ref().value.is_empty())
            .unwrap_or(true),
        "{:?}",
        got.map(|r| r.into_inner().value.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_4_mib_an_event_watch_of_40000_names() {
    let (_s, _c, p, c) = setup().await;
    let name = format!("{p}watched");
    // 40 000 names of 150 bytes, the one that matters last.
    let mut names: Vec<String> = (0..40_000)
        .map(|i| format!("{p}{i:06}-{}", letters(i, 120)))
        .collect();
    names.push(name.clone());
    let req = v1::WatchEventsRequest {
        names,
        ..Default::default()
    };
    let size = prost::Message::encoded_len(&req);
    assert!(size > FOUR_MIB + (1 << 20), "only {size} bytes");
    let mut events = c.events().watch_events(req).await.unwrap().into_inner();
    match events.next().await.unwrap().unwrap().item {
        Some(v1::watch_events_response::Item::Started(_)) => {}
        other => panic!("expected started, got {other:?}"),
    }

    // The server read the whole list: an event of the last name arrives.
    define_small(&c, &name).await;
    let e = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Some(v1::watch_events_response::Item::Event(e)) =
                events.next().await.unwrap().unwrap().item
            {
                return e;
            }
        }
    })
    .await
    .expect("no event for the watched name");
    assert_eq!(e.name, name, "{e:?}");
}
