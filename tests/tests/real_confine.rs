//! Confinement against the real libvirtd (`qemu:///system`, whose files
//! the server can see, so symlinks are resolved): a QEMU guest's save and
//! restore paths and a pool's target outside `host_path_roots`, with `..`,
//! or through a symlink out of a root are PERMISSION_DENIED and libvirtd
//! writes nothing; under a root they work.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use libvirt_grpc_tests::{
    domain_ref, prefix, real_enabled, scenario, small_spec, v1, Cleanup, REAL_URI,
};

#[tokio::test]
async fn real_save_and_restore_stay_under_the_roots() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let d = scenario::confine_dirs(&p, "rconfine", &mut c);
    let s = scenario::confined_server("real", REAL_URI, &d.root).await;
    let client = s.client.clone().with_default_host("real");
    let name = format!("{p}vm");
    // Diskless, no NIC: it sits in SeaBIOS, which is enough to save.
    client
        .define_domain(v1::DomainSpec {
            domain_type: "qemu".into(),
            arch: "x86_64".into(),
            ..small_spec(&name)
        })
        .await
        .unwrap();
    client.start_domain(&name).await.unwrap();
    let mut dom = client.domains();
    let save = |path: String| v1::SaveDomainRequest {
        domain: domain_ref("real", &name),
        path,
        ..Default::default()
    };
    let state = |client: libvirt_grpc_tests::Client, name: String| async move {
        client.get_domain(&name).await.unwrap().state()
    };

    let outside = d.outside.join("img").display().to_string();
    let through_link = d.root.join("link/img").display().to_string();
    for (path, what) in [
        (outside.clone(), "outside"),
        (format!("{}/../outside/img", d.root.display()), "with .."),
        (through_link.clone(), "through a symlink"),
    ] {
        scenario::assert_outside(dom.save_domain(save(path)).await, what);
        assert!(
            scenario::dir_is_empty(&d.outside),
            "{what}: libvirtd wrote outside the root"
        );
    }
    assert_eq!(
        state(client.clone(), name.clone()).await,
        v1::DomainState::Running
    );

    let inside = d.root.join("img").display().to_string();
    let saved = dom
        .save_domain(save(inside.clone()))
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(saved.state(), v1::DomainState::Shutoff);
    assert!(Path::new(&inside).exists());

    std::fs::copy(&inside, d.outside.join("img")).unwrap();
    for (path, what) in [(outside, "outside"), (through_link, "through a symlink")] {
        let r = dom
            .restore_domain(v1::RestoreDomainRequest {
                host: "real".into(),
                path,
                ..Default::default()
            })
            .await;
        scenario::assert_outside(r, what);
        assert_eq!(
            state(client.clone(), name.clone()).await,
            v1::DomainState::Shutoff,
            "{what}: restored"
        );
    }
    let restored = dom
        .restore_domain(v1::RestoreDomainRequest {
            host: "real".into(),
            path: inside,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(restored.name, name);
    assert_eq!(restored.state(), v1::DomainState::Running);
}

#[tokio::test]
async fn real_pool_targets_through_a_symlink_build_nothing() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let d = scenario::confine_dirs(&p, "rconfine", &mut c);
    let s = scenario::confined_server("real", REAL_URI, &d.root).await;
    let mut st = s.client.storage();
    for (target, what) in [
        (d.root.join("link/p"), "through a symlink"),
        (d.outside.join("p"), "outside"),
    ] {
        let r = st
            .define_storage_pool(v1::DefineStoragePoolRequest {
                host: "real".into(),
                source: Some(v1::define_storage_pool_request::Source::Xml(format!(
                    "<pool type='dir'><name>{p}pool</name><target><path>{}</path></target></pool>",
                    target.display()
                ))),
                build: true,
                start: true,
                ..Default::default()
            })
            .await;
        scenario::assert_outside(r, what);
        assert!(
            scenario::dir_is_empty(&d.outside),
            "{what}: a directory was built outside"
        );
    }
    let pool = st
        .define_storage_pool(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(v1::define_storage_pool_request::Source::Xml(format!(
                "<pool type='dir'><name>{p}pool</name><target><path>{}</path></target></pool>",
                d.root.join("p").display()
            ))),
            build: true,
            start: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(pool.state(), v1::StoragePoolState::Running);
    assert!(d.root.join("p").is_dir());
}
