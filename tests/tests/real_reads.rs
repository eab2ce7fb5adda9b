//! The read path against a real libvirtd: what `GetDomain` and `ListDomains`
//! answer is what libvirt holds at the time of the call, whoever changed it.
//! Changes are made behind the service's back (`virsh` as a process, or a
//! libvirt connection of the test's own), then read at once, with no wait
//! and no retry: a read that answers from a stale memory fails here.
//!
//! Both views are read where a field is in the view: BASIC carries identity
//! and run state, FULL everything.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use libvirt_grpc_tests::{
    code_of, prefix,
    reads::{Reads, VIEWS},
    real_enabled, v1, virsh, Cleanup, TestServer, REAL_URI,
};
use tonic::Code;
use v1::{DomainState, DomainStateReason, DomainView};

const HOST: &str = "real";

/// A diskless, NIC-less `type='qemu'` domain: it sits in SeaBIOS when
/// started, which is enough for every state change read here.
fn domain_xml(name: &str, uuid: Option<&str>) -> String {
    let uuid = uuid
        .map(|u| format!("<uuid>{u}</uuid>"))
        .unwrap_or_default();
    format!(
        "<domain type='qemu'><name>{name}</name>{uuid}<memory unit='KiB'>131072</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><features><acpi/></features>\
         <on_crash>destroy</on_crash></domain>"
    )
}

/// Writes `xml` to a file the cleanup removes; its path.
fn xml_file(c: &mut Cleanup, name: &str, xml: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap();
    c.file(&path);
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// libvirt's own UUID of `name`, through virsh.
fn virsh_uuid(name: &str) -> String {
    virsh(&["domuuid", name]).trim().to_owned()
}

/// A domain changed through virsh is seen changed by the very next
/// `GetDomain` and `ListDomains`: autostart, memory, vCPUs, run state,
/// managed save and persistence.
#[tokio::test(flavor = "multi_thread")]
async fn virsh_changes_are_seen_by_the_next_read() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let name = format!("{p}vm");
    let file = xml_file(&mut c, &name, &domain_xml(&name, None));
    virsh(&["define", path_str(&file)]);
    let uuid = virsh_uuid(&name);
    // The definition with its UUID, to define it again later.
    let inactive = xml_file(
        &mut c,
        &format!("{name}-inactive"),
        &virsh(&["dumpxml", "--inactive", &name]),
    );

    reads
        .expect(&name, &VIEWS, "define", |d| {
            d.uuid == uuid && d.host == HOST && d.state() == DomainState::Shutoff && d.id == 0
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "define", |d| {
            d.memory_bytes == 128 << 20
                && d.max_memory_bytes == 128 << 20
                && d.vcpus == 1
                && !d.autostart
                && d.persistent
                && !d.has_managed_save
                && d.os_type == "hvm"
        })
        .await;

    // Autostart on and off, by field and by the listing's filter.
    for on in [true, false, true, false] {
        if on {
            virsh(&["autostart", &name]);
        } else {
            virsh(&["autostart", "--disable", &name]);
        }
        reads
            .expect(&name, &[DomainView::Full], "autostart", |d| {
                d.autostart == on
            })
            .await;
        for view in VIEWS {
            let filtered = |want: v1::AutostartFilter| {
                reads.list_with(&name, view, move |r| r.autostart_filter = want as i32)
            };
            let with = filtered(v1::AutostartFilter::Autostart).await;
            let without = filtered(v1::AutostartFilter::NoAutostart).await;
            assert_eq!(with.iter().any(|d| d.name == name), on, "{view:?} {with:?}");
            assert_eq!(
                without.iter().any(|d| d.name == name),
                !on,
                "{view:?} {without:?}"
            );
        }
    }

    // Memory of the inactive definition, twice each way.
    for (max_kib, cur_kib) in [
        (262_144u64, 196_608u64),
        (196_608, 98_304),
        (131_072, 131_072),
    ] {
        virsh(&["setmaxmem", &name, &max_kib.to_string(), "--config"]);
        virsh(&["setmem", &name, &cur_kib.to_string(), "--config"]);
        reads
            .expect(&name, &[DomainView::Full], "setmaxmem/setmem", |d| {
                d.max_memory_bytes == max_kib << 10 && d.memory_bytes == cur_kib << 10
            })
            .await;
    }

    // vCPUs: a larger maximum, then current counts below it.
    virsh(&["setvcpus", &name, "4", "--config", "--maximum"]);
    for n in [3u32, 2, 4] {
        virsh(&["setvcpus", &name, &n.to_string(), "--config"]);
        reads
            .expect(&name, &[DomainView::Full], "setvcpus", |d| d.vcpus == n)
            .await;
    }

    // Run state, in both views.
    virsh(&["start", &name]);
    let id: u32 = virsh(&["domid", &name]).trim().parse().unwrap();
    reads
        .expect(&name, &VIEWS, "start", |d| {
            d.state() == DomainState::Running
                && d.state_reason() == DomainStateReason::RunningBooted
                && d.id == id
                && d.uuid == uuid
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "start", |d| {
            d.vcpus == 4 && d.persistent
        })
        .await;
    virsh(&["suspend", &name]);
    reads
        .expect(&name, &VIEWS, "suspend", |d| {
            d.state() == DomainState::Paused && d.state_reason() == DomainStateReason::PausedUser
        })
        .await;
    virsh(&["resume", &name]);
    reads
        .expect(&name, &VIEWS, "resume", |d| {
            d.state() == DomainState::Running
                && d.state_reason() == DomainStateReason::RunningUnpaused
        })
        .await;

    // A managed save image appears and goes.
    virsh(&["managedsave", &name]);
    reads
        .expect(&name, &VIEWS, "managedsave", |d| {
            d.state() == DomainState::Shutoff
                && d.state_reason() == DomainStateReason::ShutoffSaved
                && d.id == 0
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "managedsave", |d| {
            d.has_managed_save
        })
        .await;
    virsh(&["managedsave-remove", &name]);
    reads
        .expect(&name, &[DomainView::Full], "managedsave-remove", |d| {
            !d.has_managed_save && d.state() == DomainState::Shutoff
        })
        .await;

    // Persistence: undefined while running makes it transient; defined
    // again (same UUID), persistent; destroyed, shut off.
    // (With autostart on first: the flag is answered as libvirt then
    // reports it, and a transient domain has no managed save image.)
    virsh(&["start", &name]);
    virsh(&["autostart", &name]);
    reads
        .expect(&name, &[DomainView::Full], "autostart while running", |d| {
            d.persistent && d.autostart
        })
        .await;
    virsh(&["undefine", &name]);
    let kept_autostart = virsh(&["dominfo", &name])
        .lines()
        .any(|l| l.starts_with("Autostart:") && l.contains("enable"));
    reads
        .expect(&name, &VIEWS, "undefine of a running domain", |d| {
            d.state() == DomainState::Running && d.uuid == uuid
        })
        .await;
    reads
        .expect(
            &name,
            &[DomainView::Full],
            "undefine of a running domain",
            move |d| !d.persistent && d.autostart == kept_autostart && !d.has_managed_save,
        )
        .await;
    virsh(&["define", path_str(&inactive)]);
    reads
        .expect(
            &name,
            &[DomainView::Full],
            "define of the running domain",
            |d| d.persistent && d.state() == DomainState::Running,
        )
        .await;
    virsh(&["destroy", &name]);
    reads
        .expect(&name, &VIEWS, "destroy", |d| {
            d.state() == DomainState::Shutoff
                && d.state_reason() == DomainStateReason::ShutoffDestroyed
                && d.id == 0
        })
        .await;
    reads
        .expect(&name, &[DomainView::Full], "destroy", |d| d.persistent)
        .await;
    drop(c);
}

/// A domain undefined and defined again under the same name gets a new
/// UUID; no read by name ever answers the old one, and the old UUID is
/// NOT_FOUND. Some rounds also run the new domain, so a handle kept for
/// the name would be stale in both identity and id.
#[tokio::test(flavor = "multi_thread")]
async fn a_redefined_name_never_answers_the_old_uuid() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let name = format!("{p}again");
    let file = xml_file(&mut c, &name, &domain_xml(&name, None));
    let mut seen = Vec::new();
    for round in 0..6 {
        virsh(&["define", path_str(&file)]);
        let uuid = virsh_uuid(&name);
        assert!(!seen.contains(&uuid), "libvirt reused a UUID: {uuid}");
        let running = round % 2 == 1;
        if running {
            virsh(&["start", &name]);
        }
        for _ in 0..2 {
            reads
                .expect(&name, &VIEWS, &format!("define #{round}"), |d| {
                    d.uuid == uuid
                        && (d.state() == DomainState::Running) == running
                        && (d.id > 0) == running
                })
                .await;
        }
        for old in &seen {
            let r = reads.try_get_uuid(old, DomainView::Basic).await;
            assert_eq!(code_of(r), Code::NotFound, "old UUID {old} still answers");
        }
        if running {
            virsh(&["destroy", &name]);
        }
        virsh(&["undefine", &name]);
        reads.expect_gone(&name, "undefine").await;
        seen.push(uuid);
    }
    drop(c);
}

/// One UUID defined under one name, undefined, then defined under another:
/// a read by that UUID answers the new name at once, the old name is
/// NOT_FOUND, and back again.
#[tokio::test(flavor = "multi_thread")]
async fn a_uuid_defined_under_a_new_name_answers_the_new_name() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let uuid = uuid::Uuid::new_v4().to_string();
    let names = [format!("{p}first"), format!("{p}second")];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| xml_file(&mut c, n, &domain_xml(n, Some(&uuid))))
        .collect();
    for round in 0..4 {
        let (name, other) = (&names[round % 2], &names[(round + 1) % 2]);
        virsh(&["define", path_str(&files[round % 2])]);
        for view in VIEWS {
            let d = reads.try_get_uuid(&uuid, view).await.unwrap();
            assert_eq!(&d.name, name, "round {round} ({view:?}): {d:?}");
            assert_eq!(d.uuid, uuid);
        }
        reads
            .expect(name, &VIEWS, &format!("define #{round}"), |d| {
                d.uuid == uuid
            })
            .await;
        reads.expect_gone(other, &format!("define #{round}")).await;
        virsh(&["undefine", name]);
        let r = reads.try_get_uuid(&uuid, DomainView::Basic).await;
        assert_eq!(code_of(r), Code::NotFound, "{uuid} after undefine");
    }
    drop(c);
}

/// Defines `names` (inactive) through libvirt directly, on a few
/// connections at once.
fn define_many(names: &[String]) {
    std::thread::scope(|s| {
        for chunk in names.chunks(names.len().div_ceil(4).max(1)) {
            s.spawn(move || {
                let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
                for n in chunk {
                    conn.define_domain_xml(&domain_xml(n, None))
                        .unwrap_or_else(|e| panic!("define {n}: {e}"));
                }
            });
        }
    });
}

/// Undefines `names` through libvirt directly, on a few connections.
fn undefine_many(names: &[String]) {
    std::thread::scope(|s| {
        for chunk in names.chunks(names.len().div_ceil(4).max(1)) {
            s.spawn(move || {
                let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
                for n in chunk {
                    if let Ok(d) = conn.lookup_domain_by_name(n) {
                        let _ = d.undefine();
                    }
                }
            });
        }
    });
}

/// Paging across 1000 domains while others are defined and undefined
/// between pages (see [`Reads::paging_under_churn`]), in both views.
#[tokio::test(flavor = "multi_thread")]
async fn paging_lists_each_stable_domain_exactly_once_under_churn() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let c = Cleanup::new(REAL_URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let stable: Vec<String> = (0..1000).map(|i| format!("{p}s{i:04}")).collect();
    tokio::task::block_in_place(|| define_many(&stable));
    for view in VIEWS {
        reads
            .paging_under_churn(&p, &stable, view, &define_many, &undefine_many)
            .await;
    }
    tokio::task::block_in_place(|| undefine_many(&stable));
    tokio::task::block_in_place(|| c.run());
    assert!(reads.list(&p, DomainView::Basic).await.is_empty());
}

/// Concurrent reads in each view, made together by the server (one
/// `virDomainListGetStats` for the reads in flight at once in a view), each answer
/// their own domain while domains are undefined and defined anew through
/// a libvirt connection of the test's own between rounds (see
/// [`Reads::concurrent_reads`]).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reads_each_answer_their_own_domain_under_churn() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let c = Cleanup::new(REAL_URI, &p);
    let reads = Reads::new(&s.client, HOST);
    let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
    let names: Vec<String> = (0..48).map(|i| format!("{p}c{i:02}")).collect();
    let define = |n: &str| {
        let d = tokio::task::block_in_place(|| conn.define_domain_xml(&domain_xml(n, None)));
        d.unwrap_or_else(|e| panic!("define {n}: {e}"))
            .uuid_string()
            .unwrap()
    };
    let undefine = |n: &str| {
        tokio::task::block_in_place(|| conn.lookup_domain_by_name(n).and_then(|d| d.undefine()))
            .unwrap_or_else(|e| panic!("undefine {n}: {e}"))
    };
    reads
        .concurrent_reads_under_churn(&names, &define, &undefine)
        .await;
    tokio::task::block_in_place(|| c.run());
}
