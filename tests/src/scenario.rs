//! Scenario bodies that run unchanged on libvirt's test driver and on the
//! real daemon: each suite calls them with its own host and spec, then goes
//! on with what only its driver can do.

use tonic::Code;

use crate::{code_of, domain_ref, v1, Client, TestServer};
use v1::{DomainState, DomainStateReason};

/// Defines `spec` on `host` and takes it through start, a refused second
/// start, suspend and resume, checking every answer's state and reason.
/// The domain is left running.
pub async fn domain_lifecycle(client: &Client, host: &str, spec: v1::DomainSpec) -> v1::Domain {
    let name = spec.name.clone();
    let memory = spec.memory_bytes;
    let d = client.define_domain(spec).await.unwrap();
    assert_eq!(d.host, host);
    assert_eq!(d.state(), DomainState::Shutoff);
    assert!(d.persistent);
    assert_eq!(d.memory_bytes, memory);

    // Off, it can be neither suspended nor resumed: FAILED_PRECONDITION on
    // every driver (the test driver's own words are internal errors).
    let mut dom = client.domains();
    let suspend = || v1::SuspendDomainRequest {
        domain: domain_ref(host, &name),
    };
    let resume = || v1::ResumeDomainRequest {
        domain: domain_ref(host, &name),
    };
    for st in [
        dom.suspend_domain(suspend()).await.unwrap_err(),
        dom.resume_domain(resume()).await.unwrap_err(),
    ] {
        assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
        assert!(st.message().contains("not running"), "{}", st.message());
    }

    let d = client.start_domain(&name).await.unwrap();
    assert_eq!(d.state(), DomainState::Running);
    assert_eq!(d.state_reason(), DomainStateReason::RunningBooted);
    assert_eq!(d.state_reason_code, 1);
    assert!(d.id > 0);

    // Starting or resuming a running domain is a precondition failure, not
    // an internal error.
    let st = dom.resume_domain(resume()).await.unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("already running"), "{}", st.message());
    let again = dom
        .start_domain(v1::StartDomainRequest {
            domain: domain_ref(host, &name),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(again), Code::FailedPrecondition);

    // The second suspend of a paused domain succeeds and leaves it paused
    // (QEMU's answer, on the test driver too).
    for _ in 0..2 {
        let d = dom
            .suspend_domain(suspend())
            .await
            .unwrap()
            .into_inner()
            .domain
            .unwrap();
        assert_eq!(d.state(), DomainState::Paused);
        assert_eq!(d.state_reason(), DomainStateReason::PausedUser);
    }
    let d = dom
        .resume_domain(resume())
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), DomainState::Running);
    d
}

/// Whether volume `name` of pool `pool` on `host` exists, as the service
/// answers (any error but NOT_FOUND fails the test).
pub async fn volume_exists(s: &TestServer, host: &str, pool: &str, name: &str) -> bool {
    let r = s
        .client
        .storage()
        .get_storage_volume(s.client.request(v1::GetStorageVolumeRequest {
            volume: crate::volume_ref(host, pool, name),
        }))
        .await;
    match r {
        Ok(_) => true,
        Err(e) if e.code() == Code::NotFound => false,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

/// A root for `host_path_roots` and a directory outside it (with a symlink
/// `root/link` pointing there), under the temp dir, removed by the cleanup.
pub struct ConfineDirs {
    /// The root.
    pub root: std::path::PathBuf,
    /// Outside every root.
    pub outside: std::path::PathBuf,
}

/// Makes [`ConfineDirs`] named after `prefix` and `tag`.
pub fn confine_dirs(prefix: &str, tag: &str, c: &mut crate::Cleanup) -> ConfineDirs {
    let base = std::env::temp_dir().join(format!("{prefix}{tag}"));
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    c.file(&base);
    ConfineDirs { root, outside }
}

/// A server fronting `uri` as host `host`, confined to `root`.
pub async fn confined_server(host: &str, uri: &str, root: &std::path::Path) -> TestServer {
    use libvirt_grpc_server::config::{Config, HostConfig};
    TestServer::start_with(Config {
        hosts: vec![HostConfig::new(host, uri)],
        host_path_roots: vec![root.to_path_buf()],
        ..Config::default()
    })
    .await
}

/// Asserts PERMISSION_DENIED with reason PATH_OUTSIDE_ROOTS; its ErrorInfo.
pub fn assert_outside<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    what: &str,
) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    let st = r.expect_err(what);
    assert_eq!(st.code(), Code::PermissionDenied, "{what}: {st:?}");
    let info = st.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "PATH_OUTSIDE_ROOTS", "{what}");
    info
}

/// Whether directory `dir` is empty.
pub fn dir_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}
