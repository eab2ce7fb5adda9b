//! The client crate's guest-agent helpers against a real qemu-guest-agent
//! (the test guest of scripts/build-test-guest.sh under the real
//! libvirtd): exec as a stream, a file put and got back byte for byte with
//! progress. Runs only with LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI};
use tokio_stream::StreamExt;

#[tokio::test]
async fn exec_streams_and_files_go_both_ways() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}vm");
    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    let real = s.client.host("real");
    real.client()
        .create_domain_xml(libvirt_grpc_tests::guest::xml(&name, &console))
        .await
        .unwrap();
    let agent = real.domain(name.as_str()).agent();
    wait_until(Duration::from_secs(90), "the guest agent to answer", || {
        let agent = agent.clone();
        async move { agent.ping().await.ok() }
    })
    .await;

    // Exec: the typed items in order, stdout and stderr apart.
    let mut out = agent
        .exec("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        .await
        .unwrap();
    let mut items = Vec::new();
    while let Some(item) = out.next().await {
        items.push(item.unwrap());
    }
    assert!(
        matches!(
            items.first(),
            Some(libvirt_grpc_client::ExecOutput::Started { .. })
        ),
        "{items:?}"
    );
    assert!(items.contains(&libvirt_grpc_client::ExecOutput::Stdout(b"out\n".to_vec())));
    assert!(items.contains(&libvirt_grpc_client::ExecOutput::Stderr(b"err\n".to_vec())));
    let Some(libvirt_grpc_client::ExecOutput::Exited(exit)) = items.last() else {
        panic!("no exit last: {items:?}");
    };
    assert_eq!(exit.code, Some(3));
    let r = agent
        .exec_request(v1::ExecGuestCommandRequest {
            path: "/bin/cat".into(),
            stdin: b"fed".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .output()
        .await
        .unwrap();
    assert_eq!((r.stdout.as_slice(), r.exit.code), (&b"fed"[..], Some(0)));

    // A file up and back: byte-identical, monotone progress to its size.
    let dir = std::env::temp_dir().join(format!("{p}files"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = dir.join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let mut seen = Vec::new();
    let put = agent
        .put_file(&src, "/tmp/lvgt-client.bin", |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(put.bytes, bytes.len() as u64);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(seen.last().map(|p| p.done), Some(bytes.len() as u64));
    let back = dir.join("back.bin");
    let mut seen = Vec::new();
    let got = agent
        .get_file("/tmp/lvgt-client.bin", &back, false, |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(got, put);
    assert!(std::fs::read(&back).unwrap() == bytes, "not byte-identical");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(
        seen.last().copied(),
        Some(libvirt_grpc_client::Progress {
            done: bytes.len() as u64,
            total: Some(bytes.len() as u64)
        })
    );
    // A missing guest file fails and leaves no local file.
    let none = dir.join("none.bin");
    let e = agent
        .get_file("/nonexistent/lvgt", &none, false, |_| {})
        .await
        .unwrap_err();
    assert!(e.details().is_some(), "{e:?}");
    assert!(!none.exists());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["back.bin", "src.bin"]);
    real.domain(name.as_str()).destroy().await.unwrap();
}
