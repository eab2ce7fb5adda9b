//! The test guest of `scripts/build-test-guest.sh` (a kernel and an
//! initramfs with busybox and qemu-guest-agent, no disk, no NIC) as domain
//! XML, for the real suites.

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Kernel and initrd of the test guest (from scripts/test.sh's environment,
/// or built / taken from the cache by the script itself).
pub fn paths() -> (String, String) {
    if let (Ok(k), Ok(i)) = (
        std::env::var("LIBVIRT_GRPC_GUEST_KERNEL"),
        std::env::var("LIBVIRT_GRPC_GUEST_INITRD"),
    ) {
        return (k, i);
    }
    let out = std::process::Command::new(repo_root().join("scripts/build-test-guest.sh"))
        .output()
        .expect("run build-test-guest.sh");
    assert!(out.status.success(), "build-test-guest.sh failed");
    let text = String::from_utf8(out.stdout).expect("paths are UTF-8");
    let mut lines = text.lines();
    (
        lines.next().expect("kernel path").to_owned(),
        lines.next().expect("initrd path").to_owned(),
    )
}

/// The guest's domain XML, named `name`, its serial console logged to
/// `console`.
pub fn xml(name: &str, console: &str) -> String {
    let (kernel, initrd) = paths();
    std::fs::read_to_string(repo_root().join("scripts/test-guest-domain.xml.in"))
        .expect("scripts/test-guest-domain.xml.in")
        .replace("@NAME@", name)
        .replace("@KERNEL@", &kernel)
        .replace("@INITRD@", &initrd)
        .replace("@CONSOLE_LOG@", console)
}

/// [`xml`] with an interactive serial console: ttyS0 on a pty (what
/// `OpenDomainConsole` connects to, and where the guest runs a shell),
/// still logged to `console`.
pub fn xml_with_pty_console(name: &str, console: &str) -> String {
    let xml = xml(name, console);
    let start = xml
        .find("<serial type='file'>")
        .expect("the template's serial");
    let end_tag = "</console>";
    let end = xml.find(end_tag).expect("the template's console") + end_tag.len();
    let pty = format!(
        "<serial type='pty'>\n      <log file='{console}' append='off'/>\n      \
         <target port='0'/>\n    </serial>\n    <console type='pty'>\n      \
         <target type='serial' port='0'/>\n    </console>"
    );
    format!("{}{pty}{}", &xml[..start], &xml[end..])
}

/// [`xml`] without any serial port or console.
pub fn xml_without_console(name: &str, console: &str) -> String {
    let xml = xml(name, console);
    let start = xml
        .find("<serial type='file'>")
        .expect("the template's serial");
    let end_tag = "</console>";
    let end = xml.find(end_tag).expect("the template's console") + end_tag.len();
    format!("{}{}", &xml[..start], &xml[end..])
}

/// The test guest with a 16 MiB qcow2 data disk `vda`, prepared but not
/// defined: the disk is a volume of a new dir pool `{p}{tag}pool`, and
/// `dir` is a per-run directory for the test's own files (its console log
/// is there). Both directories are registered with `c`.
pub struct Qcow2Guest {
    /// The domain name, `{p}{tag}`.
    pub name: String,
    /// Its XML, for DefineDomain.
    pub xml: String,
    /// The disk volume's path.
    pub disk_path: String,
    /// The pool holding the disk.
    pub pool: String,
    /// The per-run directory.
    pub dir: PathBuf,
}

/// Makes the pool, the volume and the XML of a [`Qcow2Guest`] on `real`.
pub async fn qcow2_guest(
    s: &crate::TestServer,
    c: &mut crate::Cleanup,
    p: &str,
    tag: &str,
) -> Qcow2Guest {
    use crate::v1;
    let pool_dir = std::env::temp_dir().join(format!("{p}{tag}pool"));
    let dir = std::env::temp_dir().join(format!("{p}{tag}work"));
    c.file(&pool_dir);
    c.file(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pool = format!("{p}{tag}pool");
    let mut st = s.client.storage();
    st.define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
        host: "real".into(),
        source: Some(v1::define_storage_pool_request::Source::Spec(
            v1::StoragePoolSpec {
                name: pool.clone(),
                r#type: v1::StoragePoolType::Dir as i32,
                target_path: pool_dir.to_str().unwrap().to_owned(),
                ..Default::default()
            },
        )),
        build: true,
        start: true,
        autostart: false,
    }))
    .await
    .unwrap();
    let disk = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: crate::pool_ref("real", &pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "disk.qcow2".into(),
                    format: v1::StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 16 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let name = format!("{p}{tag}");
    let console = dir.join("console.log");
    let xml = self::xml(&name, console.to_str().unwrap()).replace(
        "</devices>",
        &format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices>",
            disk.path
        ),
    );
    Qcow2Guest {
        name,
        xml,
        disk_path: disk.path,
        pool,
        dir,
    }
}
