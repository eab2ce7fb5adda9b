//! The domain-internals RPCs of DomainService (issue 13) against a real
//! libvirtd with real QEMU guests (the kernel + initramfs test guest of
//! `scripts/build-test-guest.sh`, no NIC): the QEMU monitor, per-device
//! counters, scheduler tuning, peeks and core dumps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use v1::define_domain_request::Source;

fn by_name(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

/// Defines the test guest `name` (its console logged under the temporary
/// directory, `devices` added to its devices) and starts it.
async fn boot(s: &TestServer, c: &mut Cleanup, name: &str, devices: &str) {
    let console = std::env::temp_dir().join(format!("{name}-console.log"));
    c.file(&console);
    let xml = libvirt_grpc_tests::guest::xml(name, console.to_str().unwrap())
        .replace("</devices>", &format!("{devices}</devices>"));
    let mut dom = s.client.domains();
    dom.define_domain(v1::DefineDomainRequest {
        host: "real".into(),
        source: Some(Source::Xml(xml)),
        ..Default::default()
    })
    .await
    .unwrap();
    dom.start_domain(v1::StartDomainRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn monitor(
    s: &TestServer,
    name: &str,
    command: &str,
    protocol: v1::QemuMonitorProtocol,
) -> Result<String, tonic::Status> {
    s.client
        .domains()
        .qemu_monitor_command(v1::QemuMonitorCommandRequest {
            domain: by_name(name),
            command: command.into(),
            protocol: protocol as i32,
        })
        .await
        .map(|r| r.into_inner().reply)
}

#[tokio::test]
async fn qmp_and_hmp_through_the_monitor() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}mon");
    boot(&s, &mut c, &name, "").await;
    use v1::QemuMonitorProtocol as P;

    let reply = monitor(&s, &name, r#"{"execute":"query-status"}"#, P::Qmp)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(json["return"]["status"], "running", "{reply}");
    assert_eq!(json["return"]["running"], true, "{reply}");

    let reply = monitor(&s, &name, "info status", P::Hmp).await.unwrap();
    assert!(reply.contains("running"), "{reply:?}");

    // QEMU's refusal is its answer, not a failed call.
    let reply = monitor(&s, &name, r#"{"execute":"no-such-command"}"#, P::Qmp)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(json["error"]["class"], "CommandNotFound", "{reply}");

    // A stopped domain has no monitor: FAILED_PRECONDITION.
    s.client
        .domains()
        .stop_domain(v1::StopDomainRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap();
    let st = monitor(&s, &name, "info status", P::Hmp).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
}

/// A raw disk image of `len` bytes with a recognisable pattern, for a
/// guest's `vda`; its `<disk>` element.
fn raw_disk(c: &mut Cleanup, name: &str, len: usize) -> (std::path::PathBuf, String) {
    let path = std::env::temp_dir().join(format!("{name}-vda.raw"));
    c.file(&path);
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, data).unwrap();
    let xml = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>",
        path.display()
    );
    (path, xml)
}

/// The value of `field` in `virsh domblkstat` output.
fn virsh_stat(out: &str, field: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.nth(1) == Some(field)).then(|| w.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

#[tokio::test]
async fn counters_and_actions_of_a_running_guest() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}cnt");
    let (_, disk) = raw_disk(&mut c, &name, 1 << 20);
    boot(&s, &mut c, &name, &disk).await;
    let mut dom = s.client.domains();
    use tonic::Code;

    let max = dom
        .get_domain_max_vcpus(v1::GetDomainMaxVcpusRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .max_vcpus;
    let virsh_max: u32 = libvirt_grpc_tests::virsh(&["vcpucount", &name, "--maximum", "--live"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(max, virsh_max);

    // One disk's counters: the same as virsh reads (once SeaBIOS has read
    // the boot sector and the disk is quiet), plus QEMU's times.
    let (b, v) = libvirt_grpc_tests::wait_until(
        std::time::Duration::from_secs(30),
        "the disk counters to settle after a read",
        || {
            let mut dom = dom.clone();
            let name = name.clone();
            async move {
                let v = libvirt_grpc_tests::virsh(&["domblkstat", &name, "vda"]);
                let b = dom
                    .get_domain_block_stats(v1::GetDomainBlockStatsRequest {
                        domain: by_name(&name),
                        disk: "vda".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .stats
                    .unwrap();
                let settled = b.read_requests.unwrap_or(0) > 0
                    && b.read_requests == Some(virsh_stat(&v, "rd_req"))
                    && b.read_bytes == Some(virsh_stat(&v, "rd_bytes"));
                settled.then_some((b, v))
            }
        },
    )
    .await;
    assert_eq!(
        b.write_bytes,
        Some(virsh_stat(&v, "wr_bytes")),
        "{b:?} / {v}"
    );
    assert_eq!(b.flush_requests, Some(virsh_stat(&v, "flush_operations")));
    let t = b.read_time.unwrap();
    assert!(t.seconds > 0 || t.nanos > 0, "a read took no time: {b:?}");
    assert!(b.write_time.is_some() && b.flush_time.is_some(), "{b:?}");
    let st = dom
        .get_domain_block_stats(v1::GetDomainBlockStatsRequest {
            domain: by_name(&name),
            disk: "vdz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");

    // The suite's guests have no NIC: any interface is NOT_FOUND.
    let st = dom
        .get_domain_interface_stats(v1::GetDomainInterfaceStatsRequest {
            domain: by_name(&name),
            interface: "vnet0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");

    // No balloon device: only the RSS of QEMU's process, in bytes.
    let m = dom
        .get_domain_memory_stats(v1::GetDomainMemoryStatsRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert_eq!(m.actual_balloon_bytes, None, "{m:?}");
    let rss = m.rss_bytes.unwrap();
    assert!(rss > 1 << 20 && rss % 1024 == 0, "{m:?}");
    // ... and no period can be set without one.
    let st = dom
        .set_domain_memory_stats_period(v1::SetDomainMemoryStatsPeriodRequest {
            domain: by_name(&name),
            period: Some(libvirt_grpc::prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            scope: None,
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("balloon"), "{}", st.message());

    let d = dom
        .inject_domain_nmi(v1::InjectDomainNmiRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.name, name);
    let errors = dom
        .get_domain_disk_errors(v1::GetDomainDiskErrorsRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .errors;
    assert!(errors.is_empty(), "{errors:?}");
    // A running (not suspended) guest cannot be woken.
    let st = dom
        .wakeup_domain(v1::WakeupDomainRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");

    // Rename: refused while running, done once stopped.
    let new = format!("{p}renamed");
    let st = dom
        .rename_domain(v1::RenameDomainRequest {
            domain: by_name(&name),
            new_name: new.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    dom.stop_domain(v1::StopDomainRequest {
        domain: by_name(&name),
        ..Default::default()
    })
    .await
    .unwrap();
    // QEMU answers the vCPU maximum of running domains only.
    let st = dom
        .get_domain_max_vcpus(v1::GetDomainMaxVcpusRequest {
            domain: by_name(&name),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    let d = dom
        .rename_domain(v1::RenameDomainRequest {
            domain: by_name(&name),
            new_name: new.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.name, new);
    assert_eq!(libvirt_grpc_tests::virsh(&["domname", &d.uuid]).trim(), new);
}

#[tokio::test]
async fn scheduler_cpu_shares_or_a_clear_refusal() {
    use tonic::Code;
    use v1::typed_parameter::Value;
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}sched");
    boot(&s, &mut c, &name, "").await;
    let mut dom = s.client.domains();
    let kind = dom
        .get_domain_scheduler_type(v1::GetDomainSchedulerTypeRequest {
            domain: by_name(&name),
        })
        .await;
    let set = dom
        .set_domain_scheduler_parameters(v1::SetDomainSchedulerParametersRequest {
            domain: by_name(&name),
            parameters: vec![v1::TypedParameter {
                field: "cpu_shares".into(),
                r#type: 0,
                value: Some(Value::IntValue(512)),
            }],
            scope: None,
        })
        .await;
    match (kind, set) {
        // Where the host has the cgroup CPU controller: read back.
        (Ok(k), Ok(after)) => {
            assert_eq!(k.into_inner().scheduler, "posix");
            let shares = after
                .into_inner()
                .parameters
                .into_iter()
                .find(|p| p.field == "cpu_shares")
                .unwrap();
            assert_eq!(shares.value, Some(Value::UintValue(512)), "{shares:?}");
        }
        // This machine kind runs libvirtd with `cgroup_controllers = [ ]`:
        // libvirt's refusal, with a code that says so, never INTERNAL.
        (kind, set) => {
            for st in [kind.err(), set.err()].into_iter().flatten() {
                assert!(
                    matches!(st.code(), Code::FailedPrecondition | Code::Unimplemented),
                    "{st:?}"
                );
                assert!(
                    st.message().contains("cgroup") || st.message().contains("CPU"),
                    "{}",
                    st.message()
                );
                eprintln!("scheduler refused: {:?} {}", st.code(), st.message());
            }
        }
    }
}

async fn peek_block(
    s: &TestServer,
    name: &str,
    disk: &str,
    offset_bytes: u64,
    size_bytes: u64,
) -> Result<Vec<u8>, tonic::Status> {
    s.client
        .domains()
        .peek_domain_block(v1::PeekDomainBlockRequest {
            domain: by_name(name),
            disk: disk.into(),
            offset_bytes,
            size_bytes,
        })
        .await
        .map(|r| r.into_inner().data)
}

#[tokio::test]
async fn block_and_memory_peeks() {
    use tonic::Code;
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}peek");
    let len = 1 << 20;
    let (raw, mut disks) = raw_disk(&mut c, &name, len);
    // A qcow2 disk beside it (vdb).
    let qcow = std::env::temp_dir().join(format!("{name}-vdb.qcow2"));
    c.file(&qcow);
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow)
        .arg("1M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    disks.push_str(&format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        qcow.display()
    ));
    boot(&s, &mut c, &name, &disks).await;

    // The first 512 bytes of the raw disk are the file's, and so is a
    // range at an offset (by source path this time), and the very end.
    let file = std::fs::read(&raw).unwrap();
    assert_eq!(
        peek_block(&s, &name, "vda", 0, 512).await.unwrap(),
        file[..512]
    );
    let path = raw.to_str().unwrap();
    assert_eq!(
        peek_block(&s, &name, path, 4096, 65_536).await.unwrap(),
        file[4096..4096 + 65_536]
    );
    assert_eq!(
        peek_block(&s, &name, "vda", len as u64 - 16, 16)
            .await
            .unwrap(),
        file[len - 16..]
    );
    // Past the end, too large, nothing, unknown disk, qcow2.
    let st = peek_block(&s, &name, "vda", len as u64 - 16, 17)
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");
    let st = peek_block(&s, &name, "vda", 0, 65_537).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    let st = peek_block(&s, &name, "vda", 0, 0).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
    let st = peek_block(&s, &name, "vdz", 0, 512).await.unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    let st = peek_block(&s, &name, "vdb", 0, 512).await;
    // libvirt 9.0 peeks raw images only.
    let st = st.unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
    assert!(st.message().contains("raw"), "{}", st.message());

    // 4 KiB of physical memory, whose first bytes are what QEMU's own
    // monitor shows there: the real-mode vectors. The firmware writes them
    // early in the boot, so the test waits until the monitor shows them and
    // then pauses the guest, so that both reads see the same memory.
    let shown = |xp: &str| -> Vec<u8> {
        xp.lines()
            .filter_map(|l| l.split_once(':'))
            .flat_map(|(_, bytes)| bytes.split_whitespace())
            .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).unwrap())
            .collect()
    };
    let hmp = v1::QemuMonitorProtocol::Hmp;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let xp = monitor(&s, &name, "xp /16xb 0", hmp).await.unwrap();
        if shown(&xp).iter().any(|&b| b != 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the firmware never wrote the vectors: {xp}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut dom = s.client.domains();
    dom.suspend_domain(v1::SuspendDomainRequest {
        domain: by_name(&name),
    })
    .await
    .unwrap();
    let data = dom
        .peek_domain_memory(v1::PeekDomainMemoryRequest {
            domain: by_name(&name),
            address: 0,
            size_bytes: 4096,
            address_space: v1::MemoryAddressSpace::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(data.len(), 4096);
    let xp = monitor(&s, &name, "xp /16xb 0", hmp).await.unwrap();
    let shown = shown(&xp);
    assert_eq!(shown.len(), 16, "{xp}");
    assert!(shown.iter().any(|&b| b != 0), "{xp}");
    assert_eq!(data[..16], shown[..], "{xp}");
    let st = dom
        .peek_domain_memory(v1::PeekDomainMemoryRequest {
            domain: by_name(&name),
            address: 0,
            size_bytes: 65_537,
            address_space: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(libvirt_grpc_tests::bad_fields(&st), ["size_bytes"]);
}

/// The scratch files of core dumps left in the harness's first root.
fn scratch_files() -> Vec<std::path::PathBuf> {
    let dir = libvirt_grpc_tests::harness_roots()[0].join("libvirt-grpc-dumps");
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Files of this process open on a core dump scratch path.
fn open_dumps() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|t| t.to_string_lossy().contains("libvirt-grpc-dumps"))
                .count()
        })
        .unwrap_or(0)
}

/// Creates the test guest `name` with 64 MiB (a small dump) on `host`,
/// transient, its console logged under the temporary directory.
async fn create_small_guest(s: &TestServer, c: &mut Cleanup, host: &str, name: &str) {
    let console = std::env::temp_dir().join(format!("{name}-console.log"));
    c.file(&console);
    let xml = libvirt_grpc_tests::guest::xml(name, console.to_str().unwrap()).replace(
        "<memory unit='MiB'>256</memory>",
        "<memory unit='MiB'>64</memory>",
    );
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: host.into(),
            source: Some(v1::create_domain_request::Source::Xml(xml)),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Defines, builds and starts dir pool `name` over `dir` on `host`.
async fn started_dir_pool(s: &TestServer, host: &str, name: &str, dir: &std::path::Path) {
    use v1::define_storage_pool_request::Source;
    s.client
        .storage()
        .define_storage_pool(v1::DefineStoragePoolRequest {
            host: host.into(),
            source: Some(Source::Spec(v1::StoragePoolSpec {
                name: name.to_owned(),
                r#type: v1::StoragePoolType::Dir as i32,
                target_path: dir.display().to_string(),
                ..Default::default()
            })),
            build: true,
            start: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn core_dump_streams_an_elf_file_and_leaves_nothing() {
    use sha2::{Digest, Sha256};
    use v1::core_dump_domain_response::Item;
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}dump");
    // A small guest keeps the dump (its whole memory) small.
    create_small_guest(&s, &mut c, "real", &name).await;
    let mut dom = s.client.domains();
    // `memory_only`: QEMU's dump-guest-memory, an ELF core file (without
    // it QEMU writes its migration stream, checked below).
    let req = || v1::CoreDumpDomainRequest {
        domain: by_name(&name),
        memory_only: true,
        ..Default::default()
    };

    let mut stream = dom.core_dump_domain(req()).await.unwrap().into_inner();
    let Some(Item::Started(started)) = stream.message().await.unwrap().unwrap().item else {
        panic!("the first message is not `started`");
    };
    // libvirt is done writing once `started` arrives: the scratch file is
    // already unlinked.
    assert!(scratch_files().is_empty(), "{:?}", scratch_files());
    let (mut hasher, mut total, mut head) = (Sha256::new(), 0u64, Vec::new());
    let finished = loop {
        match stream.message().await.unwrap().unwrap().item {
            Some(Item::Chunk(ch)) => {
                assert_eq!(ch.offset_bytes, total);
                assert!(ch.data.len() <= 256 << 10);
                if head.len() < 4 {
                    head.extend_from_slice(&ch.data[..ch.data.len().min(4)]);
                }
                hasher.update(&ch.data);
                total += ch.data.len() as u64;
            }
            Some(Item::Finished(f)) => break f,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&head[..4], b"\x7fELF");
    assert_eq!(total, started.size_bytes);
    assert!(total > 64 << 20, "a 64 MiB guest dumped {total} bytes");
    assert_eq!(finished.total_bytes, total);
    assert_eq!(finished.sha256, hex::encode(hasher.finalize()));
    assert!(scratch_files().is_empty(), "{:?}", scratch_files());

    // The default (no `memory_only`) is QEMU's migration stream ("QEVM");
    // cancelled after its first chunk: nothing left, the guest still runs.
    let mut stream = dom
        .core_dump_domain(v1::CoreDumpDomainRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    let Some(Item::Chunk(first)) = stream.message().await.unwrap().unwrap().item else {
        panic!("the second message is not a chunk");
    };
    assert_eq!(&first.data[..4], b"QEVM");
    drop(stream);
    assert!(scratch_files().is_empty(), "{:?}", scratch_files());
    // The server (in this process) lets go of the unlinked file, so its
    // bytes are freed too.
    libvirt_grpc_tests::wait_until(
        std::time::Duration::from_secs(20),
        "the server to close the cancelled dump",
        || async { (open_dumps() == 0).then_some(()) },
    )
    .await;
    assert_still_runs(&s, &name).await;
}

/// Asserts that guest `name` on host "real" still runs.
async fn assert_still_runs(s: &TestServer, name: &str) {
    let d = s
        .client
        .clone()
        .with_default_host("real")
        .get_domain(name)
        .await
        .unwrap();
    assert_eq!(d.state(), v1::DomainState::Running, "{name}");
}

#[tokio::test]
async fn core_dump_into_a_new_volume_is_an_elf_file_of_its_capacity() {
    use v1::download_storage_volume_response;
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}dumppool"));
    c.file(&dir);
    let pool = format!("{p}dumps");
    started_dir_pool(&s, "real", &pool, &dir).await;
    let name = format!("{p}dumpvol");
    create_small_guest(&s, &mut c, "real", &name).await;
    let mut dom = s.client.domains();
    let req = || v1::CoreDumpDomainToVolumeRequest {
        domain: by_name(&name),
        memory_only: true,
        volume: libvirt_grpc_tests::volume_ref("real", &pool, "guest.core"),
        ..Default::default()
    };
    let vol = dom
        .core_dump_domain_to_volume(req())
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    // libvirtd wrote the volume's file; its capacity is the dump's size.
    let on_disk = std::fs::metadata(&vol.path).unwrap().len();
    assert_eq!(vol.capacity_bytes, on_disk);
    assert!(on_disk > 64 << 20, "a 64 MiB guest dumped {on_disk} bytes");
    assert_eq!(
        std::path::Path::new(&vol.path),
        dir.join("guest.core").as_path()
    );
    // Read back through the service: an ELF core file.
    let mut st = s
        .client
        .storage()
        .download_storage_volume(v1::DownloadStorageVolumeRequest {
            volume: libvirt_grpc_tests::volume_ref("real", &pool, "guest.core"),
            length_bytes: 4,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut head = Vec::new();
    while let Some(m) = st.message().await.unwrap() {
        if let Some(download_storage_volume_response::Item::Chunk(ch)) = m.item {
            head.extend_from_slice(&ch.data);
        }
    }
    assert_eq!(head, b"\x7fELF");

    // The name is taken now: ALREADY_EXISTS, the dump kept as it was.
    let st = dom.core_dump_domain_to_volume(req()).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::AlreadyExists, "{st:?}");
    assert_eq!(std::fs::metadata(&vol.path).unwrap().len(), on_disk);
    // The guest still runs (the default: it continues).
    assert_still_runs(&s, &name).await;
}

#[tokio::test]
async fn a_remote_host_dumps_into_its_own_volume() {
    use libvirt_grpc_server::config::HostConfig;
    use v1::download_storage_volume_response;
    if !real_enabled() {
        return;
    }
    let p = prefix();
    // A libvirtd "in a box", reached over qemu+tcp://: the dump is written
    // by that daemon and never crosses the connection.
    let b = libvirt_grpc_tests::boxes::LibvirtBox::start(&format!("{p}dbox"));
    let s = TestServer::start(vec![
        HostConfig::new("real", REAL_URI),
        HostConfig::new("b0", &b.uri),
    ])
    .await;
    let mut c = Cleanup::new(&b.uri, &p);
    let _real = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}boxdumps"));
    c.file(&dir);
    let pool = format!("{p}boxpool");
    for host in ["b0", "real"] {
        started_dir_pool(&s, host, &pool, &dir).await;
    }
    let name = format!("{p}boxed");
    create_small_guest(&s, &mut c, "b0", &name).await;
    let mut dom = s.client.domains();
    let req = |vol_host: &str| v1::CoreDumpDomainToVolumeRequest {
        domain: libvirt_grpc_tests::domain_ref("b0", &name),
        memory_only: true,
        volume: libvirt_grpc_tests::volume_ref(vol_host, &pool, "boxed.core"),
        ..Default::default()
    };
    // The volume must be on the domain's host: the same pool name on
    // another host is refused before anything is created.
    let st = dom
        .core_dump_domain_to_volume(req("real"))
        .await
        .unwrap_err();
    assert_eq!(libvirt_grpc_tests::bad_fields(&st), ["volume.pool.host"]);
    assert!(!dir.join("boxed.core").exists());

    let vol = dom
        .core_dump_domain_to_volume(req("b0"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(vol.host, "b0");
    let on_disk = std::fs::metadata(dir.join("boxed.core")).unwrap().len();
    assert_eq!(vol.capacity_bytes, on_disk);
    assert!(on_disk > 64 << 20, "a 64 MiB guest dumped {on_disk} bytes");
    // The whole dump read back over the box's connection, byte for byte.
    let mut st = s
        .client
        .storage()
        .download_storage_volume(v1::DownloadStorageVolumeRequest {
            volume: libvirt_grpc_tests::volume_ref("b0", &pool, "boxed.core"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = st.message().await.unwrap() {
        if let Some(download_storage_volume_response::Item::Chunk(ch)) = m.item {
            got.extend_from_slice(&ch.data);
        }
    }
    assert!(got.starts_with(b"\x7fELF"));
    assert!(got == std::fs::read(dir.join("boxed.core")).unwrap());
}
