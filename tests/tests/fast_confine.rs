//! Confinement on libvirt's test driver (which really writes save images):
//! host paths outside `host_path_roots`, with `..`, or through a symlink
//! out of a root are PERMISSION_DENIED and nothing is written; paths under
//! a root work.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use libvirt_grpc_tests::{domain_ref, prefix, scenario, small_spec, v1, Cleanup};
use tonic::Code;
use tonic_types::StatusExt;
use v1::define_storage_pool_request::Source as PoolSource;

const URI: &str = "test:///default";

#[tokio::test]
async fn save_and_restore_paths_stay_under_the_roots() {
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let d = scenario::confine_dirs(&p, "confine", &mut c);
    let s = scenario::confined_server("default", URI, &d.root).await;
    let name = format!("{p}vm");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();
    let mut dom = s.client.domains();
    let save = |path: String| v1::SaveDomainRequest {
        domain: domain_ref("", &name),
        path,
        ..Default::default()
    };

    let outside = d.outside.join("img").display().to_string();
    let dotdot = format!("{}/../outside/img", d.root.display());
    let through_link = d.root.join("link/img").display().to_string();
    for (path, what) in [
        (outside.clone(), "outside"),
        (dotdot, "with .."),
        (through_link.clone(), "through a symlink"),
        ("/etc/lvgt-never".to_owned(), "elsewhere"),
    ] {
        let info = scenario::assert_outside(dom.save_domain(save(path)).await, what);
        assert_eq!(info.metadata["field"], "path", "{what}");
        assert!(
            scenario::dir_is_empty(&d.outside),
            "{what}: something was written outside"
        );
    }
    assert!(!Path::new("/etc/lvgt-never").exists());
    // Still running: no save happened.
    assert_eq!(
        s.client.get_domain(&name).await.unwrap().state(),
        v1::DomainState::Running
    );

    let inside = d.root.join("img").display().to_string();
    dom.save_domain(save(inside.clone())).await.unwrap();
    assert!(Path::new(&inside).exists());

    // A restore reads only under the roots too: the same image, copied
    // outside, is refused directly and through the symlink.
    std::fs::copy(&inside, d.outside.join("img")).unwrap();
    for (path, what) in [(outside, "outside"), (through_link, "through a symlink")] {
        let r = dom
            .restore_domain(v1::RestoreDomainRequest {
                path,
                ..Default::default()
            })
            .await;
        let info = scenario::assert_outside(r, what);
        assert_eq!(info.metadata["field"], "path", "{what}");
        assert_eq!(
            s.client.get_domain(&name).await.unwrap().state(),
            v1::DomainState::Shutoff,
            "{what}: restored"
        );
    }
    let d2 = dom
        .restore_domain(v1::RestoreDomainRequest {
            path: inside,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d2.name, name);
    assert_eq!(d2.state(), v1::DomainState::Running);
}

#[tokio::test]
async fn pool_targets_outside_the_roots_or_through_a_symlink_are_refused() {
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let d = scenario::confine_dirs(&p, "confine", &mut c);
    let s = scenario::confined_server("default", URI, &d.root).await;
    let mut st = s.client.storage();
    let spec = |name: &str, target: &Path| {
        PoolSource::Spec(v1::StoragePoolSpec {
            name: name.to_owned(),
            r#type: v1::StoragePoolType::Dir as i32,
            target_path: target.display().to_string(),
            ..Default::default()
        })
    };
    let refused = [
        (
            spec(&format!("{p}a"), &d.outside.join("p")),
            "spec.target_path",
        ),
        (
            spec(&format!("{p}b"), &d.root.join("link/p")),
            "spec.target_path",
        ),
        (
            PoolSource::Xml(format!(
                "<pool type='dir'><name>{p}c</name><target><path>{}</path></target></pool>",
                d.root.join("link/p").display()
            )),
            "xml.target.path",
        ),
    ];
    for (source, field) in refused {
        let e = st
            .define_storage_pool(v1::DefineStoragePoolRequest {
                source: Some(source),
                build: true,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        let info = e.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["field"], field);
        assert!(
            scenario::dir_is_empty(&d.outside),
            "a pool directory was built outside"
        );
    }
    let ok = st
        .define_storage_pool(v1::DefineStoragePoolRequest {
            source: Some(spec(&format!("{p}in"), &d.root.join("p"))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(ok.target_path, d.root.join("p").display().to_string());
    let pools = st
        .list_storage_pools(v1::ListStoragePoolsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .pools;
    let ours: Vec<_> = pools.iter().filter(|x| x.name.starts_with(&p)).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
}
