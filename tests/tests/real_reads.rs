//! The read path against a real libvirtd: what `GetDomain` and `ListDomains`
//! answer is what libvirt holds at the time of the call, whoever changed it.
//! Changes are made behind the service's back (`virsh` as a process, or a
//! libvirt connection of the test's own), then read at once, with no wait
//! and no retry: a read that answers from a stale memory fails here.
//!
//! Both views are read where a field is in the view: BASIC carries identity
//! and run state, FULL everything.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
};

use libvirt_grpc_tests::{
    code_of, prefix, real_enabled, v1, virsh, Cleanup, Client, TestServer, REAL_URI,
};
use tonic::Code;
use v1::{DomainState, DomainStateReason, DomainView};

const HOST: &str = "real";
const VIEWS: [DomainView; 2] = [DomainView::Basic, DomainView::Full];

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

fn path_str(p: &PathBuf) -> &str {
    p.to_str().unwrap()
}

/// libvirt's own UUID of `name`, through virsh.
fn virsh_uuid(name: &str) -> String {
    virsh(&["domuuid", name]).trim().to_owned()
}

async fn get(client: &Client, name: &str, view: DomainView) -> v1::Domain {
    client
        .domains()
        .get_domain(v1::GetDomainRequest {
            domain: libvirt_grpc_tests::domain_ref(HOST, name),
            view: view as i32,
        })
        .await
        .unwrap_or_else(|e| panic!("GetDomain {name} ({view:?}): {e}"))
        .into_inner()
        .domain
        .unwrap()
}

/// The domains `ListDomains` answers for `name_prefix`, every page.
async fn list(client: &Client, name_prefix: &str, view: DomainView) -> Vec<v1::Domain> {
    list_with(client, name_prefix, view, |_| {}).await
}

async fn list_with(
    client: &Client,
    name_prefix: &str,
    view: DomainView,
    tune: impl Fn(&mut v1::ListDomainsRequest),
) -> Vec<v1::Domain> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let mut req = v1::ListDomainsRequest {
            host: HOST.into(),
            name_prefix: name_prefix.into(),
            page_size: 1000,
            page_token: token,
            view: view as i32,
            ..Default::default()
        };
        tune(&mut req);
        let page = client
            .domains()
            .list_domains(req)
            .await
            .unwrap()
            .into_inner();
        out.extend(page.domains);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// Domain `name` as `GetDomain` and as `ListDomains` answer it, in `view`:
/// the listing must hold it exactly once.
async fn read_both(client: &Client, name: &str, view: DomainView) -> [v1::Domain; 2] {
    let got = get(client, name, view).await;
    let listed: Vec<_> = list(client, name, view)
        .await
        .into_iter()
        .filter(|d| d.name == name)
        .collect();
    assert_eq!(
        listed.len(),
        1,
        "{name} listed {} times ({view:?})",
        listed.len()
    );
    [got, listed.into_iter().next().unwrap()]
}

/// Asserts `check` on `name` as both reads answer it, in each of `views`.
async fn expect(
    client: &Client,
    name: &str,
    views: &[DomainView],
    what: &str,
    check: impl Fn(&v1::Domain) -> bool,
) {
    for view in views {
        for (read, d) in ["GetDomain", "ListDomains"]
            .iter()
            .zip(read_both(client, name, *view).await)
        {
            assert!(check(&d), "{read} ({view:?}) after {what}: {d:?}");
        }
    }
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
    let client = s.client.clone().with_default_host(HOST);
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

    expect(&client, &name, &VIEWS, "define", |d| {
        d.uuid == uuid && d.host == HOST && d.state() == DomainState::Shutoff && d.id == 0
    })
    .await;
    expect(&client, &name, &[DomainView::Full], "define", |d| {
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
        expect(&client, &name, &[DomainView::Full], "autostart", |d| {
            d.autostart == on
        })
        .await;
        for view in VIEWS {
            let filtered = |want: v1::AutostartFilter| {
                list_with(&client, &name, view, move |r| {
                    r.autostart_filter = want as i32
                })
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
        expect(
            &client,
            &name,
            &[DomainView::Full],
            "setmaxmem/setmem",
            |d| d.max_memory_bytes == max_kib << 10 && d.memory_bytes == cur_kib << 10,
        )
        .await;
    }

    // vCPUs: a larger maximum, then current counts below it.
    virsh(&["setvcpus", &name, "4", "--config", "--maximum"]);
    for n in [3u32, 2, 4] {
        virsh(&["setvcpus", &name, &n.to_string(), "--config"]);
        expect(&client, &name, &[DomainView::Full], "setvcpus", |d| {
            d.vcpus == n
        })
        .await;
    }

    // Run state, in both views.
    virsh(&["start", &name]);
    let id: u32 = virsh(&["domid", &name]).trim().parse().unwrap();
    expect(&client, &name, &VIEWS, "start", |d| {
        d.state() == DomainState::Running
            && d.state_reason() == DomainStateReason::RunningBooted
            && d.id == id
            && d.uuid == uuid
    })
    .await;
    expect(&client, &name, &[DomainView::Full], "start", |d| {
        d.vcpus == 4 && d.persistent
    })
    .await;
    virsh(&["suspend", &name]);
    expect(&client, &name, &VIEWS, "suspend", |d| {
        d.state() == DomainState::Paused && d.state_reason() == DomainStateReason::PausedUser
    })
    .await;
    virsh(&["resume", &name]);
    expect(&client, &name, &VIEWS, "resume", |d| {
        d.state() == DomainState::Running && d.state_reason() == DomainStateReason::RunningUnpaused
    })
    .await;

    // A managed save image appears and goes.
    virsh(&["managedsave", &name]);
    expect(&client, &name, &VIEWS, "managedsave", |d| {
        d.state() == DomainState::Shutoff
            && d.state_reason() == DomainStateReason::ShutoffSaved
            && d.id == 0
    })
    .await;
    expect(&client, &name, &[DomainView::Full], "managedsave", |d| {
        d.has_managed_save
    })
    .await;
    virsh(&["managedsave-remove", &name]);
    expect(
        &client,
        &name,
        &[DomainView::Full],
        "managedsave-remove",
        |d| !d.has_managed_save && d.state() == DomainState::Shutoff,
    )
    .await;

    // Persistence: undefined while running makes it transient; defined
    // again (same UUID), persistent; destroyed, shut off.
    virsh(&["start", &name]);
    virsh(&["undefine", &name]);
    expect(
        &client,
        &name,
        &VIEWS,
        "undefine of a running domain",
        |d| d.state() == DomainState::Running && d.uuid == uuid,
    )
    .await;
    expect(
        &client,
        &name,
        &[DomainView::Full],
        "undefine of a running domain",
        |d| !d.persistent,
    )
    .await;
    virsh(&["define", path_str(&inactive)]);
    expect(
        &client,
        &name,
        &[DomainView::Full],
        "define of the running domain",
        |d| d.persistent && d.state() == DomainState::Running,
    )
    .await;
    virsh(&["destroy", &name]);
    expect(&client, &name, &VIEWS, "destroy", |d| {
        d.state() == DomainState::Shutoff
            && d.state_reason() == DomainStateReason::ShutoffDestroyed
            && d.id == 0
    })
    .await;
    expect(&client, &name, &[DomainView::Full], "destroy", |d| {
        d.persistent
    })
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
    let client = s.client.clone().with_default_host(HOST);
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
            expect(&client, &name, &VIEWS, &format!("define #{round}"), |d| {
                d.uuid == uuid
                    && (d.state() == DomainState::Running) == running
                    && (d.id > 0) == running
            })
            .await;
        }
        for old in &seen {
            let r = client
                .domains()
                .get_domain(v1::GetDomainRequest {
                    domain: Some(v1::DomainRef {
                        host: HOST.into(),
                        key: Some(v1::domain_ref::Key::Uuid(old.clone())),
                    }),
                    view: DomainView::Basic as i32,
                })
                .await;
            assert_eq!(code_of(r), Code::NotFound, "old UUID {old} still answers");
        }
        if running {
            virsh(&["destroy", &name]);
        }
        virsh(&["undefine", &name]);
        for view in VIEWS {
            let r = client
                .domains()
                .get_domain(v1::GetDomainRequest {
                    domain: libvirt_grpc_tests::domain_ref(HOST, &name),
                    view: view as i32,
                })
                .await;
            assert_eq!(
                code_of(r),
                Code::NotFound,
                "{name} after undefine ({view:?})"
            );
            assert!(list(&client, &name, view).await.is_empty());
        }
        seen.push(uuid);
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
/// between pages: every domain that existed during the whole listing is
/// listed exactly once, nothing is listed twice, names strictly increase
/// across pages, and nothing listed was never defined.
#[tokio::test(flavor = "multi_thread")]
async fn paging_lists_each_stable_domain_exactly_once_under_churn() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let c = Cleanup::new(REAL_URI, &p);
    let client = s.client.clone().with_default_host(HOST);
    let stable: Vec<String> = (0..1000).map(|i| format!("{p}s{i:04}")).collect();
    tokio::task::block_in_place(|| define_many(&stable));
    let stable_set: BTreeSet<&str> = stable.iter().map(String::as_str).collect();

    let mut churn_seq = 0u32;
    for view in VIEWS {
        // Churn domains sort between the stable ones (`s0123c7` right after
        // `s0123`), ahead of and behind the listing's position.
        let mut alive: Vec<String> = Vec::new();
        let mut ever: BTreeSet<String> = BTreeSet::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut last: Option<String> = None;
        let mut token = String::new();
        let mut pages = 0usize;
        loop {
            let page = client
                .domains()
                .list_domains(v1::ListDomainsRequest {
                    host: HOST.into(),
                    name_prefix: p.clone(),
                    page_size: 37,
                    page_token: token,
                    view: view as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.domains.len() <= 37);
            for d in &page.domains {
                assert!(
                    last.as_deref().is_none_or(|l| l < d.name.as_str()),
                    "{view:?}: {} after {last:?}",
                    d.name
                );
                last = Some(d.name.clone());
                *counts.entry(d.name.clone()).or_default() += 1;
                assert!(
                    stable_set.contains(d.name.as_str()) || ever.contains(&d.name),
                    "{view:?}: {} was never defined",
                    d.name
                );
                assert_eq!(d.state(), DomainState::Shutoff, "{d:?}");
                assert!(!d.uuid.is_empty() && d.host == HOST, "{d:?}");
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;

            // Between pages: two new domains (one ahead of the listing, one
            // behind it), and the oldest churn domain goes.
            let ahead = (pages * 37 + 50 + pages * 13) % 1000;
            let behind = (pages * 37).saturating_sub(20) % 1000;
            let new: Vec<String> = [ahead, behind]
                .iter()
                .map(|i| {
                    churn_seq += 1;
                    format!("{p}s{i:04}c{churn_seq}")
                })
                .collect();
            let gone: Vec<String> = if alive.len() > 4 {
                vec![alive.remove(0)]
            } else {
                Vec::new()
            };
            tokio::task::block_in_place(|| {
                define_many(&new);
                undefine_many(&gone);
            });
            ever.extend(new.iter().cloned());
            alive.extend(new);
        }
        assert!(pages >= 1000 / 37, "{view:?}: only {pages} pages");
        for n in &stable {
            assert_eq!(
                counts.get(n).copied().unwrap_or(0),
                1,
                "{view:?}: stable {n} listed {:?} times",
                counts.get(n)
            );
        }
        let dup: Vec<_> = counts.iter().filter(|(_, k)| **k > 1).collect();
        assert!(dup.is_empty(), "{view:?}: listed twice: {dup:?}");
        // The churn of this view goes before the next one lists.
        tokio::task::block_in_place(|| undefine_many(&alive));
    }
    tokio::task::block_in_place(|| undefine_many(&stable));
    tokio::task::block_in_place(|| c.run());
    assert!(list(&client, &p, DomainView::Basic).await.is_empty());
}
