//! An sshd of a test's own on a loopback port, for a host reached over
//! `qemu+ssh://` (libvirt runs `ssh`, which runs libvirt's proxy on the far
//! side). Its host key, the client's key pair, `authorized_keys` and a
//! `known_hosts` that trusts only that host key live in a per-run directory;
//! dropping the [`Sshd`] kills the daemon and every process it started (by
//! the daemon's own child handle and its process tree, never a pid file) and
//! removes the directory, also when the test panics.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::free_port;

/// sshd's privilege-separation directory, which it requires to exist.
const PRIVSEP_DIR: &str = "/run/sshd";

/// One running sshd, listening on 127.0.0.1 only.
pub struct Sshd {
    /// The per-run directory of its keys, configuration and log.
    pub dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl Sshd {
    /// Starts an sshd whose files live in a directory named after `prefix`
    /// and waits until it listens.
    pub fn start(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}sshd"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // From here on, a panic removes the directory.
        let mut s = Sshd {
            dir,
            port: free_port(),
            child: None,
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(PRIVSEP_DIR)
                .unwrap();
        }
        for key in ["host_key", "client_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", prefix, "-f"])
                .arg(s.path(key))
                .stdin(Stdio::null())
                .output()
                .expect("run ssh-keygen");
            assert!(
                out.status.success(),
                "ssh-keygen {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let read = |name: &str| std::fs::read_to_string(s.path(name)).unwrap();
        std::fs::write(s.path("authorized_keys"), read("client_key.pub")).unwrap();
        // The client trusts this daemon's host key and no other: the host
        // key is verified (BatchMode refuses an unknown one), and nothing
        // is written to root's own known_hosts.
        std::fs::write(
            s.path("known_hosts"),
            format!("[127.0.0.1]:{} {}", s.port, read("host_key.pub")),
        )
        .unwrap();
        // libvirt runs `ssh -p PORT -l USER -i KEYFILE -T -e none -o
        // BatchMode=yes -- HOST sh -c '<its proxy>'`; its `command=` URI
        // parameter names the binary. This one is ssh with the per-run
        // known_hosts, no user configuration and only the key file.
        let wrapper = s.path("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec ssh -F none -o UserKnownHostsFile={kh} \
                 -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes \
                 -o ConnectTimeout=10 \"$@\"\n",
                kh = s.path("known_hosts").display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // StrictModes would refuse authorized_keys under the world-writable
        // /tmp. The service's pool opens several connections at once, hence
        // MaxStartups above the default 10.
        std::fs::write(
            s.path("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {dir}/authorized_keys\n\
                 AllowUsers root\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 MaxStartups 64\n",
                port = s.port,
                host_key = s.path("host_key").display(),
                dir = s.dir.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(s.path("sshd.log")).unwrap();
        s.child = Some(
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(s.path("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("run /usr/sbin/sshd"),
        );
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if s.log().contains("Server listening on 127.0.0.1") {
                return s;
            }
            let exited = s.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < end,
                "sshd did not listen on 127.0.0.1:{} (exit {exited:?}): {}",
                s.port,
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// The URI of libvirt's `path` (`system`) on this machine reached as
    /// root through this sshd.
    pub fn uri(&self, path: &str) -> String {
        format!(
            "qemu+ssh://root@127.0.0.1:{}/{path}?keyfile={}&no_tty=1&command={}",
            self.port,
            self.path("client_key").display(),
            self.path("ssh").display()
        )
    }

    /// Kills the daemon and every process under it (the per-connection
    /// sshd of each session, which starts a session of its own, and the
    /// proxies those run), so every connection through it ends.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        // Freeze the tree top down, so nothing forks while it is collected,
        // until a pass finds no process it has not stopped; then kill it all.
        signal("STOP", &[pid]);
        let mut stopped = HashSet::new();
        for _ in 0..50 {
            let new: Vec<u32> = descendants(pid)
                .into_iter()
                .filter(|p| !stopped.contains(p))
                .collect();
            if new.is_empty() {
                break;
            }
            signal("STOP", &new);
            stopped.extend(new);
            std::thread::sleep(Duration::from_millis(20));
        }
        let all: Vec<u32> = stopped.into_iter().collect();
        signal("KILL", &all);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `SIG<sig>` to `pids` (some may be gone already).
fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Every process below `root` in the process tree, from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = parent(&entry.path()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let (mut found, mut todo) = (Vec::new(), vec![root]);
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            found.push(c);
            todo.push(c);
        }
    }
    found
}

/// The parent pid in `/proc/PID/stat` (after the command name, which may
/// hold spaces and parentheses, come the state and the parent pid).
fn parent(proc_dir: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
