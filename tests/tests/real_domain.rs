//! DomainService against a real libvirtd with a real QEMU guest
//! (`type='qemu'`, diskless, no NIC: it sits in SeaBIOS, which is enough for
//! every lifecycle call and a real screenshot).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{
    prefix, real_enabled, scenario, small_spec, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tonic::Code;
use v1::{DomainState, DomainStateReason};

fn by_name(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn qemu_spec(name: &str) -> v1::DomainSpec {
    v1::DomainSpec {
        domain_type: "qemu".into(),
        arch: "x86_64".into(),
        graphics: vec![v1::GraphicsSpec {
            r#type: v1::GraphicsType::Vnc as i32,
            listen: "127.0.0.1".into(),
            autoport: true,
            port: 0,
        }],
        ..small_spec(name)
    }
}

#[tokio::test]
async fn qemu_guest_full_lifecycle() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}vm");
    let client = s.client.clone().with_default_host("real");
    let mut dom = client.domains();

    // The shared body: define, start, a refused second start, suspend, resume.
    let d = scenario::domain_lifecycle(&client, "real", qemu_spec(&name)).await;
    assert_eq!(d.os_type, "hvm");

    // A real screenshot: SeaBIOS text mode, a valid PNG with real pixels,
    // streamed as `info` then chunks of at most 1 MiB.
    let (info, png, chunks) = wait_until(Duration::from_secs(20), "a screenshot", || {
        let mut dom = dom.clone();
        let name = name.clone();
        async move {
            use v1::screenshot_domain_response::Item;
            let mut stream = dom
                .screenshot_domain(v1::ScreenshotDomainRequest {
                    domain: by_name(&name),
                    screen: 0,
                })
                .await
                .ok()?
                .into_inner();
            let first = stream.message().await.ok()??;
            let Some(Item::Info(info)) = first.item else {
                panic!("the first message is not the info: {first:?}");
            };
            let (mut png, mut chunks) = (Vec::new(), Vec::new());
            while let Some(m) = stream.message().await.ok()? {
                let Some(Item::Chunk(c)) = m.item else {
                    panic!("a later message is not a chunk");
                };
                chunks.push(c.len());
                png.extend_from_slice(&c);
            }
            Some((info, png, chunks))
        }
    })
    .await;
    assert_eq!(info.size_bytes, png.len() as u64);
    assert!(chunks.iter().all(|n| *n <= 1 << 20), "{chunks:?}");
    let shot = v1::ScreenshotInfo {
        source_mime_type: info.source_mime_type.clone(),
        ..info
    };
    let reader = png::Decoder::new(std::io::Cursor::new(png.clone()))
        .read_info()
        .expect("valid PNG");
    let (w, h) = (reader.info().width, reader.info().height);
    assert!(
        w >= 320 && h >= 200,
        "{w}x{h} from {}",
        shot.source_mime_type
    );
    let out = std::env::temp_dir().join(format!("{p}screenshot.png"));
    std::fs::write(&out, &png).unwrap();
    eprintln!(
        "screenshot {w}x{h} ({}) saved to {}",
        shot.source_mime_type,
        out.display()
    );
    let _ = std::fs::remove_file(&out);

    // A running guest in a FULL listing: CPU time (read apart, for running
    // domains only), memory and vCPUs from libvirt's bulk answers.
    let listed = dom
        .list_domains(v1::ListDomainsRequest {
            host: "real".into(),
            name_prefix: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domains;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let l = &listed[0];
    assert!(
        l.cpu_time.is_some_and(|t| t.seconds > 0 || t.nanos > 0),
        "{l:?}"
    );
    assert_eq!(
        (l.memory_bytes, l.vcpus, l.state()),
        (128 << 20, 1, DomainState::Running)
    );

    // Bulk stats of a real guest carry CPU time and vCPU figures; no group
    // named asks for every group.
    let stats = dom
        .get_domain_stats(v1::GetDomainStatsRequest {
            domains: vec![by_name(&name).unwrap()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(stats.len(), 1);
    assert!(
        stats[0]
            .cpu
            .as_ref()
            .and_then(|c| c.cpu_time)
            .is_some_and(|t| t.seconds > 0 || t.nanos > 0),
        "{:?}",
        stats[0]
    );
    assert_eq!(stats[0].host, "real");
    assert_eq!(stats[0].state_reason(), DomainStateReason::RunningUnpaused);
    assert_eq!(stats[0].vcpus.len(), 1);
    assert_eq!(stats[0].vcpus[0].state(), v1::VcpuState::Running);
    assert!(stats[0].vcpus[0].time.is_some());
    // Balloon figures are bytes: libvirt's KiB times 1024.
    let current = stats[0].balloon.as_ref().and_then(|b| b.current_bytes);
    assert_eq!(current, Some(128 << 20), "{:?}", stats[0]);

    // Live device hot-plug on QEMU: a file-backed CD-ROM-less disk via XML.
    let img = std::env::temp_dir().join(format!("{p}disk.img"));
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    c.file(&img);
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        img.display()
    );
    let live = Some(v1::ModifyScope {
        live: true,
        config: false,
    });
    dom.attach_domain_device(v1::AttachDomainDeviceRequest {
        domain: by_name(&name),
        xml: disk.clone(),
        scope: live,
    })
    .await
    .unwrap();
    let xml = dom
        .get_domain_xml(v1::GetDomainXmlRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(xml.contains("dev='vdb'"), "{xml}");
    // A guest in SeaBIOS never acknowledges the unplug, so detach is only
    // requested (libvirt answers once QEMU accepted the request).
    let _ = dom
        .detach_domain_device(v1::DetachDomainDeviceRequest {
            domain: by_name(&name),
            xml: disk,
            scope: live,
        })
        .await;

    dom.send_domain_key(v1::SendDomainKeyRequest {
        domain: by_name(&name),
        codeset: 0,
        // 20 ms (tests have no prost-types: fill the default).
        hold_duration: {
            let mut d = v1::SendDomainKeyRequest::default()
                .hold_duration
                .unwrap_or_default();
            d.nanos = 20_000_000;
            Some(d)
        },
        keycodes: vec![28],
    })
    .await
    .unwrap();
    dom.reboot_domain(v1::RebootDomainRequest {
        domain: by_name(&name),
        mode: 0,
    })
    .await
    .unwrap_or_else(|e| {
        // No OS means no ACPI handling: QEMU may refuse a guest reboot;
        // reset is the hard variant and must work.
        eprintln!("reboot refused: {e}");
        tonic::Response::new(v1::RebootDomainResponse { domain: None })
    });
    dom.reset_domain(v1::ResetDomainRequest {
        domain: by_name(&name),
    })
    .await
    .unwrap();

    // No job runs: the job reads NONE and an abort is refused as libvirt
    // refuses it ("no job is active"), FAILED_PRECONDITION.
    let job = dom
        .get_domain_job(v1::GetDomainJobRequest {
            domain: by_name(&name),
            completed: false,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.r#type(), v1::DomainJobType::None, "{job:?}");
    let st = dom
        .abort_domain_job(v1::AbortDomainJobRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("no job"), "{st:?}");

    let d = dom
        .stop_domain(v1::StopDomainRequest {
            domain: by_name(&name),
            graceful: false,
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), DomainState::Shutoff);
    assert_eq!(d.state_reason(), DomainStateReason::ShutoffDestroyed);

    client.undefine_domain(&name).await.unwrap();
    assert_eq!(
        client.get_domain(&name).await.unwrap_err().code(),
        Code::NotFound
    );
    let _ = std::fs::remove_file(&img);
}

#[tokio::test]
async fn real_bad_input_leaves_nothing() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let mut dom = s.client.domains();
    // Broken XML, an unknown emulator element value, and a domain type
    // this host cannot run: errors, and no domain with our prefix.
    for xml in [
        format!("<domain type='qemu'><name>{p}a</name>"),
        format!("<domain type='qemu'><name>{p}b</name><memory>65536</memory><os><type>nosuchos</type></os></domain>"),
    ] {
        let r = dom
            .define_domain(v1::DefineDomainRequest {
                host: "real".into(),
                source: Some(v1::define_domain_request::Source::Xml(xml)),
                validate: false,
            })
            .await;
        let st = r.unwrap_err();
        assert!(matches!(st.code(), Code::InvalidArgument), "{st:?}");
    }
    let left = s
        .client
        .clone()
        .with_default_host("real")
        .list_domains()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.name.starts_with(&p))
        .count();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn real_host_info() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let mut h = s.client.hosts();
    let info = h
        .get_host_info(v1::GetHostInfoRequest {
            host: "real".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.hypervisor_type, "QEMU");
    assert!(info.node.unwrap().cpus >= 1);
    let caps = h
        .get_domain_capabilities(v1::GetDomainCapabilitiesRequest {
            host: "real".into(),
            virt_type: "qemu".into(),
            arch: "x86_64".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(caps.contains("<domainCapabilities>"), "{caps}");
}
