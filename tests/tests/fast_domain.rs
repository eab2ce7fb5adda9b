//! DomainService against libvirt's in-process test driver: every RPC and the
//! error codes of the table that this driver can produce.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, prefix, scenario, small_spec, v1, Cleanup, TestServer};
use tonic::Code;
use v1::{
    define_domain_request::Source, domain_ref::Key, DomainRef, DomainState, DomainStateReason,
};

const URI: &str = "test:///default";

/// The `google.rpc.ErrorInfo` every error status carries.
fn error_info(st: &tonic::Status) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    st.get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {st:?}"))
}

fn meta<'a>(info: &'a tonic_types::ErrorInfo, key: &str) -> Option<&'a str> {
    info.metadata.get(key).map(String::as_str)
}

fn by_name(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

#[tokio::test]
async fn lists_builtin_test_domain() {
    let s = TestServer::test_driver().await;
    let all = s.client.list_domains().await.unwrap();
    let t = all
        .iter()
        .find(|d| d.name == "test")
        .expect("built-in domain 'test'");
    assert_eq!(t.host, "default");
    assert!(uuid::Uuid::parse_str(&t.uuid).is_ok());
    assert_eq!(t.os_type, "linux");
    assert!(t.vcpus >= 1 && t.memory_bytes > 0 && t.max_memory_bytes >= t.memory_bytes);
    // Sizes are bytes: whole KiB, since libvirt counts KiB.
    assert_eq!(t.memory_bytes % 1024, 0);
    // The built-in domain reports no reason: UNKNOWN, raw code 0.
    assert_eq!(t.state_reason(), DomainStateReason::Unknown);
    assert_eq!(t.state_reason_code, 0);
    assert!(t.cpu_time.is_some());
}

#[tokio::test]
async fn lifecycle_through_every_state() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}vm");
    let c = &s.client;
    let mut dom = c.domains();
    // The shared body: define, start, a refused second start, suspend, resume.
    scenario::domain_lifecycle(c, "default", small_spec(&name)).await;

    // Lookup by id and by uuid reach the same domain.
    let got = c.get_domain(&name).await.unwrap();
    for key in [Key::Id(got.id), Key::Uuid(got.uuid.clone())] {
        let r = dom
            .get_domain(v1::GetDomainRequest {
                domain: Some(DomainRef {
                    host: "default".into(),
                    key: Some(key),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.domain.unwrap().name, name);
    }

    // Reboot, reset and shutdown return the domain as read right after.
    let d = dom
        .reboot_domain(v1::RebootDomainRequest {
            domain: by_name(&name),
            mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.name, name);
    let d = dom
        .reset_domain(v1::ResetDomainRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), DomainState::Running);
    let d = dom
        .shutdown_domain(v1::ShutdownDomainRequest {
            domain: by_name(&name),
            mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    // The test driver shuts down at once.
    assert_eq!(d.state(), DomainState::Shutoff);
    let d = c.get_domain(&name).await.unwrap();
    assert_eq!(d.state(), DomainState::Shutoff);
    assert_eq!(d.state_reason(), DomainStateReason::ShutoffShutdown);

    c.start_domain(&name).await.unwrap();
    let r = dom
        .stop_domain(v1::StopDomainRequest {
            domain: by_name(&name),
            graceful: false,
        })
        .await
        .unwrap()
        .into_inner();
    let d = r.domain.unwrap();
    assert_eq!(d.state(), DomainState::Shutoff);
    assert_eq!(d.state_reason(), DomainStateReason::ShutoffDestroyed);
    assert_eq!(d.state_reason_code, 2);

    c.undefine_domain(&name).await.unwrap();
    assert_eq!(
        c.get_domain(&name).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn list_filters_and_paging() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let c = &s.client;
    for i in 0..5 {
        c.define_domain(small_spec(&format!("{p}{i}")))
            .await
            .unwrap();
    }
    c.start_domain(&format!("{p}1")).await.unwrap();
    c.start_domain(&format!("{p}3")).await.unwrap();
    let mut dom = c.domains();

    let list = |req: v1::ListDomainsRequest| {
        let mut dom = dom.clone();
        async move { dom.list_domains(req).await.unwrap().into_inner() }
    };
    let names =
        |r: &v1::ListDomainsResponse| r.domains.iter().map(|d| d.name.clone()).collect::<Vec<_>>();

    let active = list(v1::ListDomainsRequest {
        name_prefix: p.clone(),
        run_filter: v1::RunFilter::Active as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(names(&active), vec![format!("{p}1"), format!("{p}3")]);

    let inactive = list(v1::ListDomainsRequest {
        name_prefix: p.clone(),
        run_filter: v1::RunFilter::Inactive as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(inactive.domains.len(), 3);

    let by_state = list(v1::ListDomainsRequest {
        name_prefix: p.clone(),
        states: vec![DomainState::Running as i32],
        ..Default::default()
    })
    .await;
    assert_eq!(by_state.domains.len(), 2);

    let transient = list(v1::ListDomainsRequest {
        name_prefix: p.clone(),
        persistence_filter: v1::PersistenceFilter::Transient as i32,
        ..Default::default()
    })
    .await;
    assert!(transient.domains.is_empty());

    // Pages of two: 2 + 2 + 1, in name order, no repeats.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = list(v1::ListDomainsRequest {
            name_prefix: p.clone(),
            page_size: 2,
            page_token: token,
            ..Default::default()
        })
        .await;
        pages += 1;
        seen.extend(names(&r));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..5).map(|i| format!("{p}{i}")).collect::<Vec<_>>());

    let bad = dom
        .list_domains(v1::ListDomainsRequest {
            page_token: "nothex".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}

#[tokio::test]
async fn define_from_xml_and_read_xml_back() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}xml");
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory unit='KiB'>65536</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    );
    let mut dom = s.client.domains();
    let d = dom
        .define_domain(v1::DefineDomainRequest {
            host: String::new(),
            source: Some(Source::Xml(xml)),
            validate: false,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.vcpus, 2);
    let x = dom
        .get_domain_xml(v1::GetDomainXmlRequest {
            domain: by_name(&name),
            inactive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(x.contains(&format!("<name>{name}</name>")), "{x}");
    assert!(x.contains("<vcpu placement='static'>2</vcpu>"), "{x}");
}

#[tokio::test]
async fn spec_text_is_escaped_and_round_trips() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}esc");
    let nasty = "</description><evil attr=\"1\"/> & 'quotes' <![CDATA[x]]>";
    let mut spec = small_spec(&name);
    spec.description = nasty.to_owned();
    spec.title = "a < b & c".to_owned();
    s.client.define_domain(spec).await.unwrap();
    let mut dom = s.client.domains();
    let desc = dom
        .get_domain_metadata(v1::GetDomainMetadataRequest {
            domain: by_name(&name),
            kind: v1::MetadataKind::Description as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .value;
    assert_eq!(desc, nasty);
    let xml = dom
        .get_domain_xml(v1::GetDomainXmlRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(!xml.contains("<evil"), "{xml}");
}

#[tokio::test]
async fn bad_input_is_rejected_and_leaves_nothing() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let mut dom = s.client.domains();
    let mine = || async {
        s.client
            .list_domains()
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.name.starts_with(&p))
            .count()
    };
    assert_eq!(mine().await, 0);

    // Malformed XML.
    let r = dom
        .define_domain(v1::DefineDomainRequest {
            host: String::new(),
            source: Some(Source::Xml("<domain><name>x".into())),
            validate: false,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // Names with markup, quotes, or 10 000 characters.
    for bad in [
        format!("{p}a<b"),
        format!("{p}a&b"),
        format!("{p}a\"b"),
        format!("{p}a'b"),
        format!("{p}{}", "x".repeat(10_000)),
        String::new(),
    ] {
        let r = dom
            .define_domain(v1::DefineDomainRequest {
                host: String::new(),
                source: Some(Source::Spec(small_spec(&bad))),
                validate: false,
            })
            .await;
        let st = r.expect_err("bad name accepted");
        assert_eq!(st.code(), Code::InvalidArgument);
        assert!(st.message().contains("spec.name"), "{}", st.message());
    }

    // Missing source, missing reference, bad UUID, unknown host, unknown name.
    let r = dom
        .define_domain(v1::DefineDomainRequest {
            host: String::new(),
            source: None,
            validate: false,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    let r = dom
        .get_domain(v1::GetDomainRequest {
            domain: None,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    let r = dom
        .get_domain(v1::GetDomainRequest {
            domain: Some(DomainRef {
                host: String::new(),
                key: Some(Key::Uuid("not-a-uuid".into())),
            }),
            ..Default::default()
        })
        .await;
    let st = r.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("not a UUID"), "{}", st.message());
    let r = dom
        .get_domain(v1::GetDomainRequest {
            domain: Some(DomainRef {
                host: "nosuchhost".into(),
                key: Some(Key::Name("test".into())),
            }),
            ..Default::default()
        })
        .await;
    // The server's own error: ErrorInfo with its own domain and reason.
    let st = r.unwrap_err();
    assert_eq!(st.code(), Code::NotFound);
    let info = error_info(&st);
    assert_eq!(info.domain, "libvirt-grpc");
    assert_eq!(info.reason, "UNKNOWN_HOST");
    assert_eq!(meta(&info, "host"), Some("nosuchhost"));
    let r = dom
        .get_domain(v1::GetDomainRequest {
            domain: by_name(&format!("{p}missing")),
            ..Default::default()
        })
        .await;
    let st = r.unwrap_err();
    assert_eq!(st.code(), Code::NotFound);
    // libvirt's code and domain travel as an ErrorInfo detail, by name.
    let info = error_info(&st);
    assert_eq!(info.domain, "libvirt.org");
    assert_eq!(info.reason, "NO_DOMAIN");
    assert_eq!(meta(&info, "libvirt_code"), Some("42"));
    assert_eq!(meta(&info, "libvirt_domain"), Some("TEST"));
    assert_eq!(meta(&info, "libvirt_domain_code"), Some("12"));
    assert_eq!(meta(&info, "host"), Some("default"));

    // A NUL byte never reaches libvirt.
    let r = dom
        .get_domain(v1::GetDomainRequest {
            domain: by_name("a\0b"),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // Duplicate transient create of an existing name.
    s.client
        .define_domain(small_spec(&format!("{p}dup")))
        .await
        .unwrap();
    s.client.start_domain(&format!("{p}dup")).await.unwrap();
    // Starting it again: the server's own answer, the same on every driver.
    let st = dom
        .start_domain(v1::StartDomainRequest {
            domain: by_name(&format!("{p}dup")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition);
    let info = error_info(&st);
    assert_eq!(info.domain, "libvirt-grpc");
    assert_eq!(info.reason, "OPERATION_INVALID");
    assert!(st.message().contains("already running"), "{}", st.message());
    let xml = format!(
        "<domain type='test'><name>{p}dup</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    );
    let r = dom
        .create_domain(v1::CreateDomainRequest {
            source: Some(v1::create_domain_request::Source::Xml(xml)),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);

    assert_eq!(
        mine().await,
        1,
        "only the deliberately defined domain may remain"
    );
}

#[tokio::test]
async fn transient_create_vanishes_on_destroy() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}tr");
    let mut dom = s.client.domains();
    let d = dom
        .create_domain(v1::CreateDomainRequest {
            source: Some(v1::create_domain_request::Source::Spec(small_spec(&name))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert!(!d.persistent);
    assert_eq!(d.state(), DomainState::Running);
    // The test driver lacks VIR_DOMAIN_START_PAUSED for transient creates:
    // that is UNIMPLEMENTED, and nothing is created.
    let r = dom
        .create_domain(v1::CreateDomainRequest {
            source: Some(v1::create_domain_request::Source::Spec(small_spec(
                &format!("{p}tr2"),
            ))),
            start_paused: true,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::Unimplemented);
    assert_eq!(
        s.client
            .get_domain(&format!("{p}tr2"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let r = dom
        .stop_domain(v1::StopDomainRequest {
            domain: by_name(&name),
            graceful: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.domain.is_none());
    assert_eq!(
        s.client.get_domain(&name).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn save_restore_and_managed_save() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let name = format!("{p}sv");
    let dir = std::env::temp_dir().join(format!("{p}save"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let path = dir.join("img").to_string_lossy().into_owned();
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();
    let mut dom = s.client.domains();

    let r = dom
        .save_domain(v1::SaveDomainRequest {
            domain: by_name(&name),
            path: "relative/path".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // An unknown restore state is refused before anything is saved.
    let r = dom
        .save_domain(v1::SaveDomainRequest {
            domain: by_name(&name),
            path: path.clone(),
            restore_state: 9,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    let d = dom
        .save_domain(v1::SaveDomainRequest {
            domain: by_name(&name),
            path: path.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), DomainState::Shutoff);
    assert_eq!(d.state_reason(), DomainStateReason::ShutoffSaved);
    assert!(std::path::Path::new(&path).exists());
    // Unspecified restore state: as saved (running).
    let d = dom
        .restore_domain(v1::RestoreDomainRequest {
            path: path.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.name, name);
    assert_eq!(d.state(), DomainState::Running);
    assert_eq!(
        s.client.get_domain(&name).await.unwrap().state(),
        DomainState::Running
    );

    let d = dom
        .managed_save_domain(v1::ManagedSaveDomainRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert!(d.has_managed_save);
    assert_eq!(d.state(), DomainState::Shutoff);
    let d = dom
        .remove_domain_managed_save(v1::RemoveDomainManagedSaveRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert!(!d.has_managed_save);
    assert!(!s.client.get_domain(&name).await.unwrap().has_managed_save);
}

#[tokio::test]
async fn resources_devices_metadata_and_pinning() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}res");
    let mut spec = small_spec(&name);
    spec.vcpus = 2;
    spec.max_memory_bytes = 256 << 20;
    s.client.define_domain(spec).await.unwrap();
    let mut dom = s.client.domains();
    let config = Some(v1::ModifyScope {
        live: false,
        config: true,
    });

    // Every change returns the domain as read right after it.
    let d = dom
        .set_domain_autostart(v1::SetDomainAutostartRequest {
            domain: by_name(&name),
            autostart: true,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert!(d.autostart);
    assert!(s.client.get_domain(&name).await.unwrap().autostart);
    // The autostart filter: this domain is listed with AUTOSTART only.
    for (filter, listed) in [
        (v1::AutostartFilter::Autostart, true),
        (v1::AutostartFilter::NoAutostart, false),
        (v1::AutostartFilter::Unspecified, true),
    ] {
        let names: Vec<String> = dom
            .list_domains(v1::ListDomainsRequest {
                name_prefix: name.clone(),
                autostart_filter: filter as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .domains
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names.contains(&name), listed, "{filter:?}: {names:?}");
    }

    let d = dom
        .set_domain_vcpus(v1::SetDomainVcpusRequest {
            domain: by_name(&name),
            vcpus: 1,
            scope: config,
            maximum: false,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.vcpus, 1);
    assert_eq!(s.client.get_domain(&name).await.unwrap().vcpus, 1);
    let r = dom
        .set_domain_vcpus(v1::SetDomainVcpusRequest {
            domain: by_name(&name),
            vcpus: 0,
            scope: config,
            maximum: false,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // A byte count that is not whole KiB is rounded up to the next KiB.
    let d = dom
        .set_domain_memory(v1::SetDomainMemoryRequest {
            domain: by_name(&name),
            memory_bytes: (200 << 20) - 1023,
            scope: config,
            maximum: false,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.memory_bytes, 200 << 20);
    assert_eq!(
        s.client.get_domain(&name).await.unwrap().memory_bytes,
        200 << 20
    );

    // Live changes of a stopped domain are a precondition failure.
    let r = dom
        .set_domain_memory(v1::SetDomainMemoryRequest {
            domain: by_name(&name),
            memory_bytes: 100 << 20,
            scope: Some(v1::ModifyScope {
                live: true,
                config: false,
            }),
            maximum: false,
        })
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);

    // The test driver has no device hot-plug or config edits: the honest
    // answer is UNIMPLEMENTED naming the libvirt call (the real suite
    // attaches and detaches for real).
    let disk = "<disk type='file' device='disk'><source file='/var/lib/libvirt-grpc/x.img'/><target dev='vdb' bus='virtio'/></disk>";
    let r = dom
        .attach_domain_device(v1::AttachDomainDeviceRequest {
            domain: by_name(&name),
            xml: disk.into(),
            scope: config,
        })
        .await;
    let st = r.unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);
    assert!(
        st.message().contains("virDomainAttachDeviceFlags"),
        "{}",
        st.message()
    );
    let r = dom
        .attach_domain_device(v1::AttachDomainDeviceRequest {
            domain: by_name(&name),
            xml: String::new(),
            scope: config,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // Custom metadata element set, read, removed.
    let uri = "https://example.org/lvg/1";
    let d = dom
        .set_domain_metadata(v1::SetDomainMetadataRequest {
            domain: by_name(&name),
            kind: v1::MetadataKind::Element as i32,
            value: "<owner team=\"infra\"/>".into(),
            key: "lvg".into(),
            uri: uri.into(),
            scope: config,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.name, name);
    let v = dom
        .get_domain_metadata(v1::GetDomainMetadataRequest {
            domain: by_name(&name),
            kind: v1::MetadataKind::Element as i32,
            uri: uri.into(),
            config: true,
        })
        .await
        .unwrap()
        .into_inner()
        .value;
    assert!(v.contains("team=\"infra\""), "{v}");
    dom.set_domain_metadata(v1::SetDomainMetadataRequest {
        domain: by_name(&name),
        kind: v1::MetadataKind::Element as i32,
        key: "lvg".into(),
        uri: uri.into(),
        scope: config,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = dom
        .get_domain_metadata(v1::GetDomainMetadataRequest {
            domain: by_name(&name),
            kind: v1::MetadataKind::Element as i32,
            uri: uri.into(),
            config: true,
        })
        .await;
    assert_eq!(code_of(r), Code::NotFound);

    // Pinning on the running domain.
    s.client.start_domain(&name).await.unwrap();
    let d = dom
        .pin_domain_vcpu(v1::PinDomainVcpuRequest {
            domain: by_name(&name),
            vcpu: 0,
            cpus: vec![1, 3],
            scope: None,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), DomainState::Running);
    let pins = dom
        .get_domain_vcpu_pinning(v1::GetDomainVcpuPinningRequest {
            domain: by_name(&name),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .vcpus;
    assert_eq!(pins[0].cpus, vec![1, 3]);
    let r = dom
        .pin_domain_vcpu(v1::PinDomainVcpuRequest {
            domain: by_name(&name),
            vcpu: 0,
            cpus: vec![4096],
            scope: None,
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
}

#[tokio::test]
async fn stats_screenshot_and_keys() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}st");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();
    let mut dom = s.client.domains();
    let stats = dom
        .get_domain_stats(v1::GetDomainStatsRequest {
            domains: vec![by_name(&name).unwrap()],
            groups: vec![
                v1::DomainStatsGroup::Cpu as i32,
                v1::DomainStatsGroup::Vcpu as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].name, name);
    assert_eq!(stats[0].host, "default");
    assert_eq!(stats[0].state(), DomainState::Running);
    assert_eq!(stats[0].state_reason(), DomainStateReason::RunningBooted);
    // Groups not asked for are absent.
    assert!(stats[0].balloon.is_none() && stats[0].blocks.is_empty());

    // No group named asks for every group: the test driver reports only
    // the state group (the real suite sees CPU, vCPU and balloon figures).
    let all = dom
        .get_domain_stats(v1::GetDomainStatsRequest {
            domains: vec![by_name("test").unwrap()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state(), DomainState::Running, "{:?}", all[0]);
    let r = dom
        .get_domain_stats(v1::GetDomainStatsRequest {
            groups: vec![v1::DomainStatsGroup::Unspecified as i32],
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);

    // The screenshot streams as info, then chunks of at most 1 MiB.
    let (info, png) = s.client.screenshot_domain(&name, 0).await.unwrap();
    assert_eq!(info.size_bytes, png.len() as u64);
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().expect("a valid PNG");
    assert!(reader.info().width > 0 && reader.info().height > 0);

    let r = dom
        .send_domain_key(v1::SendDomainKeyRequest {
            domain: by_name(&name),
            codeset: 0,
            hold_duration: None,
            keycodes: vec![],
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    // Unspecified code set (Linux) and no hold duration (libvirt's default).
    dom.send_domain_key(v1::SendDomainKeyRequest {
        domain: by_name(&name),
        codeset: 0,
        hold_duration: None,
        keycodes: vec![30],
    })
    .await
    .unwrap();
    // Several bad fields: one BadRequest names them all.
    let st = dom
        .send_domain_key(v1::SendDomainKeyRequest {
            domain: by_name(&name),
            codeset: 99,
            hold_duration: {
                let mut d = v1::SendDomainKeyRequest::default()
                    .hold_duration
                    .unwrap_or_default();
                d.seconds = -1;
                Some(d)
            },
            keycodes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(
        libvirt_grpc_tests::bad_fields(&st),
        ["codeset", "hold_duration", "keycodes"]
    );
    // A bad reference is named in the same BadRequest as the other fields.
    let st = dom
        .set_domain_memory(v1::SetDomainMemoryRequest {
            domain: by_name(""),
            memory_bytes: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(
        libvirt_grpc_tests::bad_fields(&st),
        ["domain.name", "memory_bytes"]
    );
}

#[tokio::test]
async fn read_only_host_is_permission_denied() {
    let s = TestServer::start(vec![libvirt_grpc_server::config::HostConfig {
        read_only: true,
        ..libvirt_grpc_server::config::HostConfig::new("ro", URI)
    }])
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    // Reads work, changes are refused by libvirt itself.
    assert!(s
        .client
        .list_domains()
        .await
        .unwrap()
        .iter()
        .any(|d| d.name == "test"));
    let st = s
        .client
        .define_domain(small_spec(&format!("{p}ro")))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::PermissionDenied);
    assert_eq!(
        s.client
            .get_domain(&format!("{p}ro"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn device_edits_unimplemented_on_test_driver() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}dev");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let mut dom = s.client.domains();
    let cdrom = "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>";
    let r = dom
        .update_domain_device(v1::UpdateDomainDeviceRequest {
            domain: by_name(&name),
            xml: cdrom.into(),
            scope: None,
            force: true,
        })
        .await;
    assert_eq!(code_of(r), Code::Unimplemented);
    let r = dom
        .detach_domain_device(v1::DetachDomainDeviceRequest {
            domain: by_name(&name),
            xml: cdrom.into(),
            scope: None,
        })
        .await;
    assert_eq!(code_of(r), Code::Unimplemented);
}

#[tokio::test]
async fn define_of_an_existing_name_updates_it() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}upd");
    let first = s.client.define_domain(small_spec(&name)).await.unwrap();
    // A spec without a UUID takes the existing domain's: an update.
    let mut spec = small_spec(&name);
    spec.memory_bytes = 256 << 20;
    let second = s.client.define_domain(spec).await.unwrap();
    assert_eq!(second.uuid, first.uuid);
    assert_eq!(second.memory_bytes, 256 << 20);
    let read = s.client.get_domain(&name).await.unwrap();
    assert_eq!((read.uuid, read.memory_bytes), (first.uuid, 256 << 20));
    // Raw XML keeps libvirt's rules: no <uuid> for an existing name is a
    // new UUID, which libvirt refuses as a duplicate name.
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory unit='KiB'>65536</memory>\
         <os><type>hvm</type></os></domain>"
    );
    let r = s
        .client
        .domains()
        .define_domain(v1::DefineDomainRequest {
            source: Some(Source::Xml(xml)),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);
}

/// The basic view holds identity and state only; the full view (the
/// default) every field; both agree on what they share, in Get and List.
#[tokio::test]
async fn basic_and_full_views() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}view");
    let c = &s.client;
    let mut dom = c.domains();
    c.define_domain(small_spec(&name)).await.unwrap();
    dom.set_domain_autostart(v1::SetDomainAutostartRequest {
        domain: by_name(&name),
        autostart: true,
    })
    .await
    .unwrap();
    let get = |view: v1::DomainView| {
        let mut dom = dom.clone();
        let r = v1::GetDomainRequest {
            domain: by_name(&name),
            view: view as i32,
        };
        async move {
            dom.get_domain(r)
                .await
                .unwrap()
                .into_inner()
                .domain
                .unwrap()
        }
    };
    let full = get(v1::DomainView::Unspecified).await;
    assert_eq!(full, get(v1::DomainView::Full).await);
    assert!(full.autostart && full.persistent && !full.os_type.is_empty());
    assert_eq!(full.memory_bytes, 128 << 20);
    assert!(full.cpu_time.is_some());
    let basic = get(v1::DomainView::Basic).await;
    assert_eq!(
        basic,
        v1::Domain {
            host: full.host.clone(),
            name: full.name.clone(),
            uuid: full.uuid.clone(),
            id: full.id,
            state: full.state,
            state_reason: full.state_reason,
            state_reason_code: full.state_reason_code,
            ..Default::default()
        },
        "the basic view holds identity and state, nothing else"
    );

    let list = |view: v1::DomainView, autostart: v1::AutostartFilter| {
        let mut dom = dom.clone();
        let r = v1::ListDomainsRequest {
            name_prefix: p.clone(),
            view: view as i32,
            autostart_filter: autostart as i32,
            ..Default::default()
        };
        async move { dom.list_domains(r).await.unwrap().into_inner().domains }
    };
    assert_eq!(
        list(v1::DomainView::Full, v1::AutostartFilter::Unspecified).await,
        vec![full.clone()]
    );
    assert_eq!(
        list(v1::DomainView::Basic, v1::AutostartFilter::Unspecified).await,
        vec![basic.clone()]
    );
    // The autostart filter holds in the basic view too (the view omits the
    // field, not the filter).
    assert_eq!(
        list(v1::DomainView::Basic, v1::AutostartFilter::Autostart).await,
        vec![basic]
    );
    assert!(
        list(v1::DomainView::Basic, v1::AutostartFilter::NoAutostart)
            .await
            .is_empty()
    );

    let bad = dom
        .get_domain(v1::GetDomainRequest {
            domain: by_name(&name),
            view: 99,
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
    let bad = dom
        .list_domains(v1::ListDomainsRequest {
            view: 99,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}

/// A domain undefined and defined again under the same name has a new
/// UUID: no read by name (through whatever handle the server kept on any
/// of its connections) answers with the old one.
#[tokio::test]
async fn redefined_or_renamed_domain_is_never_answered_from_an_old_handle() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}again");
    let c = &s.client;
    let mut last = String::new();
    for round in 0..4 {
        let defined = c.define_domain(small_spec(&name)).await.unwrap();
        assert_ne!(defined.uuid, last, "round {round}: a new UUID");
        // Enough reads to go through every pool connection, in both views.
        for view in [v1::DomainView::Basic, v1::DomainView::Full].repeat(4) {
            let got = c
                .domains()
                .get_domain(v1::GetDomainRequest {
                    domain: by_name(&name),
                    view: view as i32,
                })
                .await
                .unwrap()
                .into_inner()
                .domain
                .unwrap();
            assert_eq!(got.uuid, defined.uuid, "round {round}, {view:?}");
        }
        last = defined.uuid;
        c.undefine_domain(&name).await.unwrap();
        for _ in 0..4 {
            let gone = c
                .domains()
                .get_domain(v1::GetDomainRequest {
                    domain: by_name(&name),
                    ..Default::default()
                })
                .await;
            assert_eq!(code_of(gone), Code::NotFound, "round {round}");
        }
    }
}

/// The test driver has no jobs: both job calls say UNIMPLEMENTED, naming
/// libvirt's call, rather than a made-up "no job".
#[tokio::test]
async fn job_calls_are_unimplemented_on_the_test_driver() {
    let s = TestServer::test_driver().await;
    let mut dom = s.client.domains();
    let st = dom
        .get_domain_job(v1::GetDomainJobRequest {
            domain: by_name("test"),
            completed: false,
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);
    assert!(st.message().contains("virDomainGetJobStats"), "{st:?}");
    let st = dom
        .abort_domain_job(v1::AbortDomainJobRequest {
            domain: by_name("test"),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);
    assert!(st.message().contains("virDomainAbortJob"), "{st:?}");
    let st = dom
        .get_domain_job(v1::GetDomainJobRequest {
            domain: by_name("no-such-domain"),
            completed: false,
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound);
}

/// `host = "*"` lists every configured host in one call: domains in the
/// configuration's host order, by name within a host, each exactly once
/// across pages; a host that is down is named, not fatal.
#[tokio::test]
async fn listing_across_every_host() {
    use libvirt_grpc_server::config::HostConfig;
    let port = libvirt_grpc_tests::free_port();
    // Two names for the same in-process driver, and one host that is down.
    let s = TestServer::start(vec![
        HostConfig::new("a", URI),
        HostConfig::new("down", format!("test+tcp://127.0.0.1:{port}/default")),
        HostConfig::new("b", URI),
    ])
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    for i in 0..3 {
        s.client
            .define_domain(small_spec(&format!("{p}{i}")))
            .await
            .unwrap();
    }
    let mut dom = s.client.domains();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = dom
            .list_domains(v1::ListDomainsRequest {
                host: "*".into(),
                name_prefix: p.clone(),
                page_size: 2,
                page_token: token,
                view: v1::DomainView::Basic as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for h in &r.unreachable_hosts {
            assert_eq!(h.host, "down");
            assert_eq!(h.code, Code::Unavailable as i32, "{h:?}");
        }
        seen.extend(r.domains.iter().map(|d| (d.host.clone(), d.name.clone())));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let want: Vec<(String, String)> = ["a", "b"]
        .iter()
        .flat_map(|h| (0..3).map(move |i| (h.to_string(), i)))
        .map(|(h, i)| (h, format!("{p}{i}")))
        .collect();
    assert_eq!(seen, want);
    let first = dom
        .list_domains(v1::ListDomainsRequest {
            host: "*".into(),
            name_prefix: p.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.domains.len(), 6);
    assert_eq!(
        first
            .unreachable_hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        vec!["down"]
    );
    // A single-host token is not a token of the "*" listing.
    let bad = dom
        .list_domains(v1::ListDomainsRequest {
            host: "*".into(),
            page_token: "6162".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}
