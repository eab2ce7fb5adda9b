//! Extra libvirt hosts for the real suites: "hosts in a box"
//! (`scripts/libvirtd-box.sh`, shared/TESTBED.md section 6), each a libvirtd
//! in its own mount namespace on a loopback TCP port. A test starts the
//! boxes it needs; dropping a [`LibvirtBox`] purges it (destroys its guests,
//! stops its daemon by the pid the script checked, deletes its state), also
//! when the test panics.

use std::{path::PathBuf, process::Command};

use crate::free_port;

/// One running box.
pub struct LibvirtBox {
    /// The box's name (also the script's).
    pub name: String,
    /// `qemu+tcp://127.0.0.1:PORT/system`.
    pub uri: String,
    /// `qemu+tls://127.0.0.1:TLS_PORT/system` of a box started with
    /// [`start_tls`](Self::start_tls) (without `?pkipath=`).
    pub tls_uri: Option<String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/libvirtd-box.sh")
}

impl LibvirtBox {
    /// Starts box `name` (letters, digits, `_` and `-`, at most 32) and
    /// waits until it answers.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, None)
    }

    /// [`start`](Self::start), also listening with TLS: `pki` holds the
    /// box's cacert.pem, servercert.pem and serverkey.pem.
    pub fn start_tls(name: &str, pki: &std::path::Path) -> Self {
        Self::start_with(name, Some(pki))
    }

    fn start_with(name: &str, pki: Option<&std::path::Path>) -> Self {
        let port = free_port();
        let mut args = vec!["start".to_owned(), name.to_owned(), port.to_string()];
        let mut tls_uri = None;
        if let Some(pki) = pki {
            let tls_port = free_port();
            args.push(tls_port.to_string());
            args.push(pki.to_str().expect("a UTF-8 path").to_owned());
            tls_uri = Some(format!("qemu+tls://127.0.0.1:{tls_port}/system"));
        }
        let out = Command::new(script())
            .args(&args)
            .output()
            .expect("run libvirtd-box.sh");
        let b = LibvirtBox {
            name: name.to_owned(),
            uri: format!("qemu+tcp://127.0.0.1:{port}/system"),
            tls_uri,
        };
        assert!(
            out.status.success(),
            "libvirtd-box.sh start {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        b
    }

    fn run(&self, command: &str) {
        let out = Command::new(script())
            .args([command, &self.name])
            .output()
            .expect("run libvirtd-box.sh");
        assert!(
            out.status.success(),
            "libvirtd-box.sh {command} {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the daemon (its guests are destroyed); [`restart`](Self::restart)
    /// brings it back.
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Kills the daemon as a crash would (its guests live on).
    pub fn kill(&self) {
        self.run("kill");
    }

    /// Starts the daemon again on the same port and waits until it answers.
    pub fn restart(&self) {
        self.run("start");
    }

    /// The daemon's pid, as the script checked it (its own pid file, and
    /// the process found there being that box's libvirtd).
    pub fn pid(&self) -> i32 {
        let out = Command::new(script())
            .args(["pid", &self.name])
            .output()
            .expect("run libvirtd-box.sh");
        assert!(out.status.success(), "box {} has no daemon", self.name);
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a pid: {text:?}"))
    }

    /// The box's private state directory (`/run/libvirt` of the box is
    /// `run/` in it).
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(std::env::var("LIBVIRTD_BOX_ROOT").unwrap_or_else(|_| "/tmp".into()))
            .join(format!("libvirt-grpc-box-{}", self.name))
    }
}

impl Drop for LibvirtBox {
    fn drop(&mut self) {
        match Command::new(script()).args(["purge", &self.name]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "libvirtd-box.sh purge {} failed: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run libvirtd-box.sh purge {}: {e}", self.name),
        }
    }
}
