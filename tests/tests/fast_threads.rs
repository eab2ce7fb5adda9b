//! Emulator pinning and IOThreads on the in-process test driver (which
//! implements all of them): each change read back, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, domain_ref, v1, TestServer};
use tonic::Code;

fn test_dom() -> Option<v1::DomainRef> {
    domain_ref("default", "test")
}

fn ids(list: &[v1::IoThreadPinning]) -> Vec<u32> {
    list.iter().map(|t| t.iothread_id).collect()
}

#[tokio::test]
async fn emulator_pinning_is_set_and_read_back() {
    let s = TestServer::test_driver().await;
    let mut d = s.client.domains();
    let before = d
        .get_domain_emulator_pinning(v1::GetDomainEmulatorPinningRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .cpus;
    assert!(before.len() > 1, "unpinned: every host CPU, got {before:?}");
    d.pin_domain_emulator(v1::PinDomainEmulatorRequest {
        domain: test_dom(),
        cpus: vec![1],
        scope: None,
    })
    .await
    .unwrap();
    let after = d
        .get_domain_emulator_pinning(v1::GetDomainEmulatorPinningRequest {
            domain: test_dom(),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .cpus;
    assert_eq!(after, vec![1]);
    for cpus in [vec![], vec![1_000_000], vec![0; 4097]] {
        let r = d
            .pin_domain_emulator(v1::PinDomainEmulatorRequest {
                domain: test_dom(),
                cpus,
                scope: None,
            })
            .await;
        assert_eq!(code_of(r), Code::InvalidArgument);
    }
    // Put it back as it was.
    d.pin_domain_emulator(v1::PinDomainEmulatorRequest {
        domain: test_dom(),
        cpus: before,
        scope: None,
    })
    .await
    .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn iothreads_are_added_pinned_and_deleted() {
    let s = TestServer::test_driver().await;
    let mut d = s.client.domains();
    let list = || v1::GetDomainIoThreadsRequest {
        domain: test_dom(),
        config: false,
    };
    let before = ids(&d
        .get_domain_io_threads(list())
        .await
        .unwrap()
        .into_inner()
        .iothreads);
    assert!(!before.contains(&7), "{before:?}");
    let added = d
        .add_domain_io_thread(v1::AddDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 7,
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    assert!(ids(&added).contains(&7), "{added:?}");
    let again = d
        .add_domain_io_thread(v1::AddDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 7,
            scope: None,
        })
        .await;
    assert_eq!(code_of(again), Code::AlreadyExists);
    let pinned = d
        .pin_domain_io_thread(v1::PinDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 7,
            cpus: vec![0],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    let seven = pinned.iter().find(|t| t.iothread_id == 7).unwrap();
    assert_eq!(seven.cpus, vec![0]);
    let read = d.get_domain_io_threads(list()).await.unwrap().into_inner();
    assert_eq!(read.iothreads, pinned, "the answer is what a read says");
    let left = d
        .delete_domain_io_thread(v1::DeleteDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 7,
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    assert_eq!(ids(&left), before);
    let gone = d
        .delete_domain_io_thread(v1::DeleteDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 7,
            scope: None,
        })
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
    for id in [0, 4097] {
        let r = d
            .add_domain_io_thread(v1::AddDomainIoThreadRequest {
                domain: test_dom(),
                iothread_id: id,
                scope: None,
            })
            .await;
        assert_eq!(code_of(r), Code::InvalidArgument, "id {id}");
    }
    let r = d
        .pin_domain_io_thread(v1::PinDomainIoThreadRequest {
            domain: test_dom(),
            iothread_id: 0,
            cpus: vec![],
            scope: None,
        })
        .await
        .expect_err("both fields are bad");
    let bad = tonic_types::StatusExt::get_details_bad_request(&r).unwrap();
    assert_eq!(bad.field_violations.len(), 2, "{bad:?}");
    s.stop().await;
}
