//! The read path on the in-process test driver: changes made through a
//! libvirt connection of the test's own (which shares `test:///default`
//! with the server in this process, behind the service's back) are seen by
//! the very next `GetDomain` and `ListDomains`, with no wait and no retry.
//! The same checks as `real_reads`, without a daemon.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{
    code_of, prefix,
    reads::{Reads, VIEWS},
    v1, Cleanup, TestServer,
};
use tonic::Code;
use v1::{DomainState, DomainStateReason, DomainView};
use virt::{connect::Connect, sys};

const URI: &str = "test:///default";
const HOST: &str = "default";

fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='KiB'>131072</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )
}

fn open() -> Connect {
    virt::error::clear_error_callback();
    Connect::open(Some(URI)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_changes_are_seen_by_the_next_read() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let conn = open();
    let name = format!("{p}vm");
    let xml = domain_xml(&name);
    let d = conn.define_domain_xml(&xml).unwrap();
    let uuid = d.uuid_string().unwrap();

    reads
        .expect(&name, &VIEWS, "define", |d| {
            d.uuid == uuid && d.state() == DomainState::Shutoff && d.id == 0
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "define", |d| {
            d.memory_bytes == 128 << 20 && d.vcpus == 1 && d.persistent && !d.autostart
        })
        .await;

    for on in [true, false, true, false] {
        d.set_autostart(on).unwrap();
        reads
            .expect(&name, &[DomainView::Full], "set_autostart", |d| {
                d.autostart == on
            })
            .await;
    }

    for (max_kib, cur_kib) in [(262_144u64, 196_608u64), (196_608, 98_304)] {
        d.set_max_memory(max_kib).unwrap();
        d.set_memory_flags(cur_kib, sys::VIR_DOMAIN_AFFECT_CONFIG)
            .unwrap();
        reads
            .expect(&name, &[DomainView::Full], "set memory", |d| {
                d.max_memory_bytes == max_kib << 10 && d.memory_bytes == cur_kib << 10
            })
            .await;
    }

    d.set_vcpus_flags(
        4,
        sys::VIR_DOMAIN_AFFECT_CONFIG | sys::VIR_DOMAIN_VCPU_MAXIMUM,
    )
    .unwrap();
    for n in [3u32, 2, 4] {
        d.set_vcpus_flags(n, sys::VIR_DOMAIN_AFFECT_CONFIG).unwrap();
        reads
            .expect(&name, &[DomainView::Full], "set vCPUs", |d| d.vcpus == n)
            .await;
    }

    d.create().unwrap();
    let id = d.id().unwrap();
    reads
        .expect(&name, &VIEWS, "start", |d| {
            d.state() == DomainState::Running && d.id == id && d.uuid == uuid
        })
        .await;
    d.suspend().unwrap();
    reads
        .expect(&name, &VIEWS, "suspend", |d| {
            d.state() == DomainState::Paused && d.state_reason() == DomainStateReason::PausedUser
        })
        .await;
    d.resume().unwrap();
    reads
        .expect(&name, &VIEWS, "resume", |d| {
            d.state() == DomainState::Running
                && d.state_reason() == DomainStateReason::RunningUnpaused
        })
        .await;

    d.managed_save(0).unwrap();
    reads
        .expect(&name, &VIEWS, "managed save", |d| {
            d.state() == DomainState::Shutoff && d.id == 0
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "managed save", |d| {
            d.has_managed_save
        })
        .await;
    d.managed_save_remove(0).unwrap();
    reads
        .expect(&name, &[DomainView::Full], "managed save remove", |d| {
            !d.has_managed_save
        })
        .await;

    // Undefined while running: transient; defined again: persistent.
    // (With autostart on first: what libvirt then says of it is answered;
    // the test driver keeps the flag.)
    d.create().unwrap();
    d.set_autostart(true).unwrap();
    reads
        .expect(&name, &[DomainView::Full], "autostart while running", |d| {
            d.persistent && d.autostart && d.state() == DomainState::Running
        })
        .await;
    d.undefine().unwrap();
    let kept_autostart = d.autostart().unwrap();
    reads
        .expect(
            &name,
            &[DomainView::Full],
            "undefine while running",
            move |d| {
                !d.persistent
                    && d.autostart == kept_autostart
                    && !d.has_managed_save
                    && d.state() == DomainState::Running
                    && d.uuid == uuid
            },
        )
        .await;
    conn.define_domain_xml(&d.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE).unwrap())
        .unwrap();
    reads
        .expect(&name, &[DomainView::Full], "define while running", |d| {
            d.persistent && d.state() == DomainState::Running
        })
        .await;
    d.destroy().unwrap();
    reads
        .expect(&name, &VIEWS, "destroy", |d| {
            d.state() == DomainState::Shutoff && d.id == 0
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redefined_name_never_answers_the_old_uuid() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let conn = open();
    let name = format!("{p}again");
    let mut seen: Vec<String> = Vec::new();
    for round in 0..8 {
        let d = conn.define_domain_xml(&domain_xml(&name)).unwrap();
        let uuid = d.uuid_string().unwrap();
        assert!(!seen.contains(&uuid), "libvirt reused a UUID: {uuid}");
        let running = round % 2 == 1;
        if running {
            d.create().unwrap();
        }
        for _ in 0..2 {
            reads
                .expect(&name, &VIEWS, &format!("define #{round}"), |d| {
                    d.uuid == uuid && (d.state() == DomainState::Running) == running
                })
                .await;
        }
        for old in &seen {
            let r = reads.try_get_uuid(old, DomainView::Basic).await;
            assert_eq!(code_of(r), Code::NotFound, "old UUID {old} still answers");
        }
        if running {
            d.destroy().unwrap();
        }
        d.undefine().unwrap();
        reads.expect_gone(&name, "undefine").await;
        seen.push(uuid);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uuid_defined_under_a_new_name_answers_the_new_name() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let conn = open();
    let uuid = uuid::Uuid::new_v4().to_string();
    let names = [format!("{p}first"), format!("{p}second")];
    for round in 0..6 {
        let (name, other) = (&names[round % 2], &names[(round + 1) % 2]);
        let xml = domain_xml(name).replace("</name>", &format!("</name><uuid>{uuid}</uuid>"));
        let d = conn.define_domain_xml(&xml).unwrap();
        if round % 3 == 2 {
            d.create().unwrap();
        }
        for view in VIEWS {
            let got = reads.try_get_uuid(&uuid, view).await.unwrap();
            assert_eq!(&got.name, name, "round {round} ({view:?}): {got:?}");
        }
        reads
            .expect(name, &VIEWS, &format!("define #{round}"), |d| {
                d.uuid == uuid
            })
            .await;
        reads.expect_gone(other, &format!("define #{round}")).await;
        if round % 3 == 2 {
            d.destroy().unwrap();
        }
        d.undefine().unwrap();
        let r = reads.try_get_uuid(&uuid, DomainView::Basic).await;
        assert_eq!(code_of(r), Code::NotFound, "{uuid} after undefine");
    }
}

fn define_many(names: &[String]) {
    let conn = open();
    for n in names {
        conn.define_domain_xml(&domain_xml(n)).unwrap();
    }
}

fn undefine_many(names: &[String]) {
    let conn = open();
    for n in names {
        if let Ok(d) = conn.lookup_domain_by_name(n) {
            d.undefine().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_lists_each_stable_domain_exactly_once_under_churn() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let stable: Vec<String> = (0..1000).map(|i| format!("{p}s{i:04}")).collect();
    define_many(&stable);
    for view in VIEWS {
        reads
            .paging_under_churn(&p, &stable, view, &define_many, &undefine_many)
            .await;
    }
    undefine_many(&stable);
    assert!(reads.list(&p, DomainView::Basic).await.is_empty());
}

/// Concurrent reads in each view, made together by the server, each answer
/// their own domain while domains are undefined and defined anew between rounds
/// (see [`Reads::concurrent_reads`]).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reads_each_answer_their_own_domain_under_churn() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let conn = open();
    let names: Vec<String> = (0..48).map(|i| format!("{p}c{i:02}")).collect();
    let define = |n: &str| {
        conn.define_domain_xml(&domain_xml(n))
            .unwrap()
            .uuid_string()
            .unwrap()
    };
    let undefine = |n: &str| conn.lookup_domain_by_name(n).unwrap().undefine().unwrap();
    reads
        .concurrent_reads_under_churn(&names, &define, &undefine)
        .await;
}
