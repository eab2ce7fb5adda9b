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
