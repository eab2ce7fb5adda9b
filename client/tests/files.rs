//! The client's file helpers against an in-process server: screenshots to
//! files, transfers the test driver cannot do surfacing as typed errors
//! and leaving no file behind, and (with LIBVIRT_GRPC_REAL=1 and a libvirtd
//! on qemu:///system) a volume uploaded and downloaded byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use libvirt_grpc_client::{v1, Client, ClientError, DownloadOptions, Progress, UploadOptions};
use libvirt_grpc_server::config::{Config, HostConfig};

const TEST_URI: &str = "test:///default";
const REAL_URI: &str = "qemu:///system";

/// A server with `hosts` (the first is the default), local files allowed
/// below the temporary directory; stops when the sender drops.
async fn server(hosts: Vec<HostConfig>) -> (Client, tokio::sync::oneshot::Sender<()>) {
    virt::error::clear_error_callback();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        hosts,
        host_path_roots: vec![std::env::temp_dir()],
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        libvirt_grpc_server::server::serve(&config, listener, shutdown)
            .await
            .unwrap();
    });
    let client = Client::connect(url)
        .await
        .unwrap()
        .with_timeout(std::time::Duration::from_secs(60));
    (client, stop)
}

/// A name prefix unique to this run and call.
fn prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lvgc{}x{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes, when dropped (also on a failed assertion), the domains and
/// pools (with their volumes) named `prefix*` on `uri`, and `files`.
struct Cleanup {
    uri: &'static str,
    prefix: String,
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(conn) = virt::connect::Connect::open(Some(self.uri)) {
            let mine = |n: Result<String, virt::error::Error>| {
                n.map(|n| n.starts_with(&self.prefix)).unwrap_or(false)
            };
            for d in conn.list_all_domains(0).unwrap_or_default() {
                if mine(d.name()) {
                    let _ = d.destroy();
                    let _ = d.undefine();
                }
            }
            for p in conn.list_all_storage_pools(0).unwrap_or_default() {
                if mine(p.name()) {
                    for v in p.list_all_volumes(0).unwrap_or_default() {
                        let _ = v.delete(0);
                    }
                    let _ = p.destroy();
                    let _ = p.undefine();
                }
            }
        }
        for f in &self.files {
            let _ = std::fs::remove_dir_all(f).or_else(|_| std::fs::remove_file(f));
        }
    }
}

/// A fresh directory for local files, removed by `cleanup`.
fn scratch(cleanup: &mut Cleanup) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}files", cleanup.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    cleanup.files.push(dir.clone());
    dir
}

/// The names in `dir` (to see that no temporary file is left).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Deterministic bytes that do not compress.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A started `dir` pool named `name` on `host` whose directory lies in
/// the temporary directory.
async fn dir_pool(c: &Client, host: &str, name: &str, cleanup: &mut Cleanup) {
    let dir = std::env::temp_dir().join(name);
    cleanup.files.push(dir.clone());
    c.storage()
        .define_storage_pool(c.request(v1::DefineStoragePoolRequest {
            host: host.into(),
            source: Some(v1::define_storage_pool_request::Source::Spec(
                v1::StoragePoolSpec {
                    name: name.into(),
                    r#type: v1::StoragePoolType::Dir as i32,
                    target_path: dir.to_string_lossy().into_owned(),
                    ..Default::default()
                },
            )),
            build: true,
            start: true,
            autostart: false,
        }))
        .await
        .unwrap();
}

/// Checks that `seen` rises and ends at `total`, every report knowing it.
fn assert_progress(seen: &[Progress], total: u64) {
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "{seen:?}");
    assert!(seen.iter().all(|p| p.total == Some(total)), "{seen:?}");
    assert_eq!(seen.last().map(|p| p.done), Some(total));
}

#[tokio::test]
async fn a_screenshot_goes_to_a_file_that_is_never_overwritten_unasked() {
    let (c, _stop) = server(vec![HostConfig::new("default", TEST_URI)]).await;
    let mut cleanup = Cleanup {
        uri: TEST_URI,
        prefix: prefix(),
        files: vec![],
    };
    let dir = scratch(&mut cleanup);
    let png = dir.join("test.png");
    let info = c
        .screenshot_to_file(c.domain_ref("test"), 0, &png, false)
        .await
        .unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(bytes.len() as u64, info.size_bytes);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    std::fs::write(&png, b"mine").unwrap();
    let e = c
        .screenshot_to_file(c.domain_ref("test"), 0, &png, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e:?}"
    );
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    assert_eq!(std::fs::read(&png).unwrap(), b"mine");
    c.screenshot_to_file(c.domain_ref("test"), 0, &png, true)
        .await
        .unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    // A missing domain: the typed error, and no file.
    let none = dir.join("none.png");
    let e = c
        .screenshot_to_file(c.domain_ref("lvgc-no-such-domain"), 0, &none, false)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound(_)), "{e:?}");
    assert_eq!(names(&dir), ["test.png"]);
}

#[tokio::test]
async fn what_the_test_driver_cannot_move_is_unimplemented_and_leaves_no_file() {
    let (c, _stop) = server(vec![HostConfig::new("default", TEST_URI)]).await;
    let p = prefix();
    let mut cleanup = Cleanup {
        uri: TEST_URI,
        prefix: p.clone(),
        files: vec![],
    };
    let dir = scratch(&mut cleanup);
    let pool = format!("{p}pool");
    dir_pool(&c, "", &pool, &mut cleanup).await;
    let src = dir.join("src.img");
    std::fs::write(&src, data(4096)).unwrap();

    // Upload creating the volume: UNIMPLEMENTED, and the volume is gone.
    let up = c
        .upload_volume(
            c.volume_ref(&pool, "up.img"),
            &src,
            UploadOptions {
                create: Some(v1::StorageVolumeSpec::default()),
                ..Default::default()
            },
            |_| {},
        )
        .await;
    assert!(matches!(up, Err(ClientError::Unimplemented(_))), "{up:?}");
    let gone = c
        .storage()
        .get_storage_volume(v1::GetStorageVolumeRequest {
            volume: Some(c.volume_ref(&pool, "up.img")),
        })
        .await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);

    // Download: UNIMPLEMENTED, and neither the file nor a temporary one.
    c.storage()
        .create_storage_volume(v1::CreateStorageVolumeRequest {
            pool: c.volume_ref(&pool, "").pool,
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "down.img".into(),
                    capacity_bytes: 4096,
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap();
    let out = dir.join("down.img");
    let down = c
        .download_volume(
            c.volume_ref(&pool, "down.img"),
            &out,
            DownloadOptions::default(),
            |_| {},
        )
        .await;
    assert!(
        matches!(down, Err(ClientError::Unimplemented(_))),
        "{down:?}"
    );
    assert_eq!(names(&dir), ["src.img"]);

    // A local file that is missing is an Io error naming it.
    let e = c
        .upload_volume(
            c.volume_ref(&pool, "down.img"),
            dir.join("missing"),
            UploadOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(&e, ClientError::Io { path, .. } if path.ends_with("missing")));
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn guest_agent_helpers_surface_unimplemented_on_the_test_driver() {
    let (c, _stop) = server(vec![HostConfig::new("default", TEST_URI)]).await;
    let p = prefix();
    let mut cleanup = Cleanup {
        uri: TEST_URI,
        prefix: p.clone(),
        files: vec![],
    };
    let dir = scratch(&mut cleanup);
    let name = format!("{p}vm");
    c.domains()
        .define_domain(v1::DefineDomainRequest {
            host: String::new(),
            source: Some(v1::define_domain_request::Source::Xml(format!(
                "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
                 <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
            ))),
            validate: false,
        })
        .await
        .unwrap();
    c.start_domain(&name).await.unwrap();
    let vm = c.domain_ref(&name);

    let e = c
        .exec(v1::ExecGuestCommandRequest {
            domain: Some(vm.clone()),
            path: "/bin/true".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let ClientError::Unimplemented(d) = &e else {
        panic!("expected Unimplemented, got {e:?}");
    };
    assert!(d.message.contains("virDomainQemuAgentCommand"), "{d:?}");

    let local = dir.join("hostname");
    let e = c
        .read_guest_file(vm.clone(), "/etc/hostname", &local, false, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unimplemented(_)), "{e:?}");
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));

    std::fs::write(&local, b"guest\n").unwrap();
    let e = c
        .write_guest_file(vm, &local, "/etc/hostname", false, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unimplemented(_)), "{e:?}");
}

fn real_enabled() -> bool {
    let on = std::env::var("LIBVIRT_GRPC_REAL").as_deref() == Ok("1");
    if !on {
        eprintln!("skipped: set LIBVIRT_GRPC_REAL=1 to run against a real libvirtd");
    }
    on
}

#[tokio::test]
async fn a_volume_goes_up_and_comes_back_byte_for_byte() {
    if !real_enabled() {
        return;
    }
    let (c, _stop) = server(vec![
        HostConfig::new("real", REAL_URI),
        HostConfig::new("default", TEST_URI),
    ])
    .await;
    let c = c.with_default_host("real");
    let p = prefix();
    let mut cleanup = Cleanup {
        uri: REAL_URI,
        prefix: p.clone(),
        files: vec![],
    };
    let dir = scratch(&mut cleanup);
    let pool = format!("{p}pool");
    dir_pool(&c, "real", &pool, &mut cleanup).await;

    // Not a multiple of the 1 MiB chunk; a multiple of 512, the granularity
    // a raw volume's size is rounded to.
    let bytes = data((3 << 20) + 7 * 512);
    let len = bytes.len() as u64;
    let src = dir.join("src.img");
    std::fs::write(&src, &bytes).unwrap();
    let mut seen = Vec::new();
    let up = c
        .upload_volume(
            c.volume_ref(&pool, "vol.img"),
            &src,
            UploadOptions {
                create: Some(v1::StorageVolumeSpec {
                    format: v1::StorageVolumeFormat::Raw as i32,
                    ..Default::default()
                }),
                verify_before_commit: true,
                ..Default::default()
            },
            |p| seen.push(p),
        )
        .await
        .unwrap();
    assert!(up.created);
    assert_eq!(up.transfer.bytes, len);
    assert_progress(&seen, len);

    let out = dir.join("back.img");
    let mut seen = Vec::new();
    let down = c
        .download_volume(
            c.volume_ref(&pool, "vol.img"),
            &out,
            DownloadOptions::default(),
            |p| seen.push(p),
        )
        .await
        .unwrap();
    assert_eq!(down, up.transfer);
    assert_progress(&seen, len);
    assert!(std::fs::read(&out).unwrap() == bytes, "not byte-identical");

    // The file exists now: a second download keeps it unless asked.
    let e = c
        .download_volume(
            c.volume_ref(&pool, "vol.img"),
            &out,
            DownloadOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    let again = c
        .download_volume(
            c.volume_ref(&pool, "vol.img"),
            &out,
            DownloadOptions {
                overwrite: true,
                length_bytes: 1000,
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(again.bytes, 1000);
    assert!(std::fs::read(&out).unwrap() == bytes[..1000]);
    assert_eq!(names(&dir), ["back.img", "src.img"]);
}
