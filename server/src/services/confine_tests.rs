//! Confinement through the services: requests built with a `Caller` in
//! their extensions (as the auth layer puts it there), answered by the
//! real handlers over libvirt's test driver. Each refusal is checked to
//! leave nothing behind; each acceptance to have reached libvirt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use libvirt_grpc::v1::{
    self, domain_service_server::DomainService, host_service_server::HostService,
    network_service_server::NetworkService, snapshot_service_server::SnapshotService,
    storage_service_server::StorageService,
};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use super::{
    domain::DomainApi, host::HostApi, network::NetworkApi, snapshot::SnapshotApi,
    storage::StorageApi,
};
use crate::{
    auth::{Caller, Role},
    config::HostConfig,
    confine::{Confinement, ADMIN_ONLY_XML, PATH_OUTSIDE_ROOTS},
    pool::Hosts,
};

const ROOT: &str = "/var/lib/lvg-confine-unit";

fn hosts() -> Hosts {
    Hosts::new(
        &[HostConfig::new("default", "test:///default")],
        Duration::from_secs(30),
    )
}

fn confinement() -> Arc<Confinement> {
    Arc::new(Confinement::new(&[PathBuf::from(ROOT)]).unwrap())
}

fn domains() -> DomainApi {
    DomainApi::new(hosts()).with_confinement(confinement())
}

fn as_role<T>(role: Role, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.extensions_mut().insert(Caller {
        name: format!("unit-{role}"),
        role,
    });
    req
}

/// A name unique to this test process and call, with the suites' `lvgt`
/// prefix (what their cleanup looks for).
fn name(what: &str) -> String {
    format!("lvgt{}u-{what}", std::process::id())
}

/// Undefines domain `name` on `uri` when dropped, so a failed test leaves
/// nothing behind.
struct Undefine(&'static str, String);

impl Drop for Undefine {
    fn drop(&mut self) {
        // Through ops, as every libvirt call of services/.
        use crate::ops::{domain, Connect};
        if let Ok(c) = Connect::open_unpooled(self.0) {
            let key = domain::DomainKey::Name(self.1.clone());
            let _ = domain::stop(&c, &key, "cleanup", 0);
            let _ = domain::undefine(&c, &key, "cleanup", 0);
        }
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, Status>, reason: &str) -> Status {
    let st = r.expect_err("refused");
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    let info = st.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, reason, "{st:?}");
    st
}

fn domain_xml(name: &str, devices: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory>131072</memory>\
         <os><type>hvm</type></os><devices>{devices}</devices></domain>"
    )
}

async fn define(api: &DomainApi, role: Role, xml: String) -> Result<v1::Domain, Status> {
    api.define_domain(as_role(
        role,
        v1::DefineDomainRequest {
            source: Some(v1::define_domain_request::Source::Xml(xml)),
            ..Default::default()
        },
    ))
    .await
    .map(|r| r.into_inner().domain.unwrap())
}

async fn exists(api: &DomainApi, name: &str) -> bool {
    let r = api
        .get_domain(as_role(
            Role::Reader,
            v1::GetDomainRequest {
                domain: Some(v1::DomainRef {
                    key: Some(v1::domain_ref::Key::Name(name.to_owned())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await;
    match r {
        Ok(_) => true,
        Err(st) if st.code() == Code::NotFound => false,
        Err(st) => panic!("{st:?}"),
    }
}

async fn undefine(api: &DomainApi, name: &str) {
    api.undefine_domain(as_role(
        Role::Admin,
        v1::UndefineDomainRequest {
            domain: Some(v1::DomainRef {
                key: Some(v1::domain_ref::Key::Name(name.to_owned())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_disk_outside_the_roots_is_refused_for_an_operator_and_accepted_for_an_admin() {
    let api = domains();
    let n = name("disk");
    let _cleanup = Undefine("test:///default", n.clone());
    let disk = "<disk type='file' device='disk'><source file='/etc/lvg-confine.img'/>\
                <target dev='vda'/></disk>";
    let st = refused(
        define(&api, Role::Operator, domain_xml(&n, disk)).await,
        PATH_OUTSIDE_ROOTS,
    );
    assert!(st.message().contains("/etc/lvg-confine.img"), "{st:?}");
    assert!(st.message().contains(ROOT), "{st:?}");
    assert!(!exists(&api, &n).await, "nothing defined");
    // No caller at all counts as a reader: refused the same way.
    let r = api
        .define_domain(Request::new(v1::DefineDomainRequest {
            source: Some(v1::define_domain_request::Source::Xml(domain_xml(&n, disk))),
            ..Default::default()
        }))
        .await;
    refused(r, PATH_OUTSIDE_ROOTS);

    let inside = format!(
        "<disk type='file' device='disk'><source file='{ROOT}/a.img'/><target dev='vda'/></disk>"
    );
    define(&api, Role::Operator, domain_xml(&n, &inside))
        .await
        .unwrap();
    undefine(&api, &n).await;
    define(&api, Role::Admin, domain_xml(&n, disk))
        .await
        .unwrap();
    assert!(exists(&api, &n).await);
    undefine(&api, &n).await;
}

#[tokio::test]
async fn qemu_commandline_is_admin_only_whatever_its_prefix() {
    let api = domains();
    let n = name("qemu");
    for xml in [
        format!(
            "<domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>{n}</name><memory>131072</memory><os><type>hvm</type></os>\
             <qemu:commandline><qemu:arg value='-D'/><qemu:arg value='/etc/x'/></qemu:commandline>\
             </domain>"
        ),
        format!(
            "<domain type='test' xmlns:x='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>{n}</name><memory>131072</memory><os><type>hvm</type></os>\
             <x:commandline><x:arg value='-D'/></x:commandline></domain>"
        ),
    ] {
        let st = refused(define(&api, Role::Operator, xml).await, ADMIN_ONLY_XML);
        let info = st.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["required_role"], "admin");
        assert!(
            info.metadata["element"].ends_with("commandline"),
            "{info:?}"
        );
        assert!(!exists(&api, &n).await);
    }
}

#[tokio::test]
async fn open_vnc_needs_a_password_or_loopback_below_admin() {
    let api = domains();
    let n = name("vnc");
    let _cleanup = Undefine("test:///default", n.clone());
    let open = "<graphics type='vnc' port='-1' autoport='yes' listen='0.0.0.0'/>";
    refused(
        define(&api, Role::Operator, domain_xml(&n, open)).await,
        ADMIN_ONLY_XML,
    );
    assert!(!exists(&api, &n).await);
    for fine in [
        "<graphics type='vnc' port='-1' autoport='yes' listen='0.0.0.0' passwd='s3cret'/>",
        "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>",
    ] {
        define(&api, Role::Operator, domain_xml(&n, fine))
            .await
            .unwrap();
        undefine(&api, &n).await;
    }
    define(&api, Role::Admin, domain_xml(&n, open))
        .await
        .unwrap();
    undefine(&api, &n).await;
}

#[tokio::test]
async fn a_spec_kernel_and_open_graphics_are_refused_below_admin() {
    let api = domains();
    let n = name("spec");
    let _cleanup = Undefine("test:///default", n.clone());
    let spec = |kernel: &str, listen: &str| v1::DefineDomainRequest {
        source: Some(v1::define_domain_request::Source::Spec(v1::DomainSpec {
            name: n.clone(),
            memory_bytes: 128 << 20,
            vcpus: 1,
            boot: Some(v1::BootSpec {
                kernel: kernel.to_owned(),
                ..Default::default()
            }),
            graphics: vec![v1::GraphicsSpec {
                r#type: v1::GraphicsType::Vnc as i32,
                listen: listen.to_owned(),
                autoport: true,
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let st = refused(
        api.define_domain(as_role(Role::Operator, spec("/boot/vmlinuz", "")))
            .await,
        PATH_OUTSIDE_ROOTS,
    );
    let info = st.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["field"], "spec.boot.kernel");
    refused(
        api.define_domain(as_role(
            Role::Operator,
            spec(&format!("{ROOT}/vmlinuz"), "0.0.0.0"),
        ))
        .await,
        ADMIN_ONLY_XML,
    );
    assert!(!exists(&api, &n).await);
    api.define_domain(as_role(
        Role::Operator,
        spec(&format!("{ROOT}/vmlinuz"), "127.0.0.1"),
    ))
    .await
    .unwrap();
    undefine(&api, &n).await;
}

#[tokio::test]
async fn device_and_snapshot_xml_are_checked_before_libvirt() {
    let api = domains();
    let n = name("dev");
    let _cleanup = Undefine("test:///default", n.clone());
    define(&api, Role::Operator, domain_xml(&n, ""))
        .await
        .unwrap();
    let dref = Some(v1::DomainRef {
        key: Some(v1::domain_ref::Key::Name(n.clone())),
        ..Default::default()
    });
    let r = api
        .attach_domain_device(as_role(
            Role::Operator,
            v1::AttachDomainDeviceRequest {
                domain: dref.clone(),
                xml: "<disk type='block' device='disk'><source dev='/dev/sda'/>\
                      <target dev='vdb'/></disk>"
                    .into(),
                scope: None,
            },
        ))
        .await;
    refused(r, PATH_OUTSIDE_ROOTS);
    // An admin gets libvirt's own answer (the test driver has no hot-plug).
    let r = api
        .attach_domain_device(as_role(
            Role::Admin,
            v1::AttachDomainDeviceRequest {
                domain: dref.clone(),
                xml: "<disk type='block' device='disk'><source dev='/dev/sda'/>\
                      <target dev='vdb'/></disk>"
                    .into(),
                scope: None,
            },
        ))
        .await;
    assert_ne!(r.unwrap_err().code(), Code::PermissionDenied);

    let snaps = SnapshotApi::new(hosts()).with_confinement(confinement());
    let r = snaps
        .create_snapshot(as_role(
            Role::Operator,
            v1::CreateSnapshotRequest {
                domain: dref.clone(),
                source: Some(v1::create_snapshot_request::Source::Xml(
                    "<domainsnapshot><name>s</name>\
                     <memory snapshot='external' file='/etc/lvg-mem'/></domainsnapshot>"
                        .into(),
                )),
                ..Default::default()
            },
        ))
        .await;
    refused(r, PATH_OUTSIDE_ROOTS);
    let list = snaps
        .list_snapshots(as_role(
            Role::Reader,
            v1::ListSnapshotsRequest {
                domain: dref,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(list.snapshots.is_empty(), "{list:?}");
    undefine(&api, &n).await;
}

#[tokio::test]
async fn pool_targets_are_confined_for_everyone_and_sources_below_admin() {
    let api = StorageApi::new(hosts()).with_confinement(confinement());
    let n = name("pool");
    let pool = |target: &str, source: &str| {
        v1::DefineStoragePoolRequest {
        source: Some(v1::define_storage_pool_request::Source::Xml(format!(
            "<pool type='logical'><name>{n}</name>{source}<target><path>{target}</path></target></pool>"
        ))),
        ..Default::default()
    }
    };
    for role in [Role::Operator, Role::Admin] {
        let r = api
            .define_storage_pool(as_role(role, pool("/etc", "")))
            .await;
        refused(r, PATH_OUTSIDE_ROOTS);
    }
    let r = api
        .define_storage_pool(as_role(
            Role::Operator,
            pool(
                &format!("{ROOT}/p"),
                "<source><device path='/dev/sda'/></source>",
            ),
        ))
        .await;
    refused(r, PATH_OUTSIDE_ROOTS);
    let listed = api
        .list_storage_pools(as_role(
            Role::Reader,
            v1::ListStoragePoolsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.pools.iter().any(|p| p.name == n));
}

#[tokio::test]
async fn dnsmasq_options_are_admin_only() {
    let api = NetworkApi::new(hosts()).with_confinement(confinement());
    let n = name("net");
    let r = api
        .define_network(as_role(
            Role::Operator,
            v1::DefineNetworkRequest {
                source: Some(v1::define_network_request::Source::Xml(format!(
                    "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\
                     <name>{n}</name><dnsmasq:options>\
                     <dnsmasq:option value='dhcp-script=/tmp/x'/></dnsmasq:options></network>"
                ))),
                ..Default::default()
            },
        ))
        .await;
    refused(r, ADMIN_ONLY_XML);
}

#[tokio::test]
async fn an_emulator_to_probe_is_confined_below_admin() {
    let api = HostApi::new(hosts()).with_confinement(confinement());
    let query = || v1::GetDomainCapabilitiesRequest {
        emulator: "/tmp/lvg-not-an-emulator".into(),
        ..Default::default()
    };
    let st = refused(
        api.get_domain_capabilities(as_role(Role::Operator, query()))
            .await,
        PATH_OUTSIDE_ROOTS,
    );
    let info = st.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["field"], "emulator");
    // An admin's query reaches libvirt (whose answer is its own).
    let r = api
        .get_domain_capabilities(as_role(Role::Admin, query()))
        .await;
    if let Err(st) = r {
        assert_ne!(st.code(), Code::PermissionDenied, "{st:?}");
    }
}

/// On the real daemon (`LIBVIRT_GRPC_REAL=1`): QEMU's command-line
/// passthrough and open VNC are what the check refuses for an operator,
/// not what libvirt refuses: the same XML defines for an admin.
#[tokio::test]
async fn on_qemu_the_operator_is_refused_what_an_admin_defines() {
    if std::env::var("LIBVIRT_GRPC_REAL").as_deref() != Ok("1") {
        return;
    }
    let api = DomainApi::new(Hosts::new(
        &[HostConfig::new("real", "qemu:///system")],
        Duration::from_secs(60),
    ))
    .with_confinement(confinement());
    let n = name("realqemu");
    let _cleanup = Undefine("qemu:///system", n.clone());
    let xml = format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <name>{n}</name><memory>131072</memory><os><type arch='x86_64'>hvm</type></os>\
         <devices><graphics type='vnc' autoport='yes' listen='0.0.0.0'/></devices>\
         <qemu:commandline><qemu:arg value='-no-user-config'/></qemu:commandline></domain>"
    );
    let st = refused(
        define(&api, Role::Operator, xml.clone()).await,
        ADMIN_ONLY_XML,
    );
    assert!(st.message().contains("admin"), "{st:?}");
    assert!(!exists(&api, &n).await);
    define(&api, Role::Admin, xml).await.unwrap();
    assert!(exists(&api, &n).await);
    undefine(&api, &n).await;
}
