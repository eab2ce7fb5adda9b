"""The processes a battery run starts and watches: the server under test
(started here, by pid, with an address-space limit) and the libvirtd box
(started by scripts/libvirtd-box.sh; killed and restarted here by its pid).
Nothing is ever signalled by name, and every pid is checked before a signal:
/proc/<pid>/comm, not a zombie, and for the server, that it is our child.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time



def is_zombie(pid: str) -> bool:
    """True when process `pid` has ended but is not reaped yet (state Z),
    or is gone altogether."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may
    # itself hold spaces or parentheses.
    rest = stat[stat.rfind(b")") + 1:].split()
    return bool(rest) and rest[0] in (b"Z", b"X")

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat, None when there is no such
    process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def alive(pid: int, comm: str | None = None) -> bool:
    """A live process (zombies are dead), optionally with this comm."""
    st = proc_state(pid)
    if st is None or st in ("Z", "X"):
        return False
    if comm is not None:
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip() == comm[:15]
        except FileNotFoundError:
            return False
    return True


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def reset_peak(pid: int):
    """Resets the process's peak RSS (VmHWM) to its current RSS (Linux
    clear_refs "5"), so that peak_kib() after a request is that request's
    peak: memory a request allocates and frees again still shows."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_kib(pid: int) -> int:
    """VmHWM of a process in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Server:
    """libvirt-grpcd under test, started and stopped by this process."""

    def __init__(self, binary: str, config: str, cwd: str, log_path: str, as_limit: int):
        self.binary = binary
        self.config = config
        self.cwd = cwd
        self.log_path = log_path
        self.as_limit = as_limit
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self):
        os.makedirs(self.cwd, exist_ok=True)
        # A request that makes the server allocate without bound fails (the
        # server aborts: a finding) instead of exhausting the machine.
        # prlimit execs the server, so the pid is the server's. (No
        # preexec_fn: forking a process that runs gRPC threads is unsafe.)
        limit = ["prlimit", f"--as={self.as_limit}"] if self.as_limit else []
        log = open(self.log_path, "ab")
        log.write(f"\n=== start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [*limit, self.binary, "--config", self.config],
            cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C to the battery does not reach it
        )
        log.close()
        self.starts += 1

    def exited(self) -> int | None:
        """The exit status (negative: killed by that signal), None while it
        runs."""
        return self.proc.poll() if self.proc else None

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return rss_kib(self.pid) if self.is_alive() else 0

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL: our own child, by pid."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.poll() if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None

    def log_tail(self, n: int = 5) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 8192))
                lines = f.read().decode(errors="replace").splitlines()
            return " | ".join(lines[-n:])
        except FileNotFoundError:
            return ""


class Box:
    """The libvirtd box, through scripts/libvirtd-box.sh."""

    def __init__(self, script: str, name: str, port: int):
        self.script = script
        self.name = name
        self.port = port
        self.kills = 0
        self._pid = 0

    @property
    def qemu_uri(self) -> str:
        return f"qemu+tcp://127.0.0.1:{self.port}/system"

    @property
    def test_uri(self) -> str:
        return f"test+tcp://127.0.0.1:{self.port}/default"

    def _run(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run([self.script, *args], capture_output=True, text=True, check=check, timeout=120)

    def refresh(self) -> int:
        """Reads the daemon's pid (the script checks it is this box's)."""
        r = self._run("pid", self.name, check=False)
        self._pid = int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else 0
        return self._pid

    @property
    def pid(self) -> int:
        return self._pid

    def is_alive(self) -> bool:
        """Cheap: the pid read at the last start/refresh is a live libvirtd."""
        return self._pid > 0 and alive(self._pid, "libvirtd")

    def rss(self) -> int:
        return rss_kib(self._pid) if self._pid else 0

    def start(self):
        self._run("start", self.name, str(self.port))
        self.refresh()

    def other_processes(self) -> list[str]:
        """Live processes in the box besides its daemon (a QEMU left behind
        by a killed daemon, dnsmasq), as the box script reports them."""
        r = self._run("status", self.name, check=False)
        for line in r.stdout.splitlines():
            if line.startswith("other processes in the box:"):
                return line.split(":", 1)[1].split()
        return []

    def kill(self):
        """SIGKILL the daemon (the script checks the pid is this box's)."""
        self._run("kill", self.name)
        self.kills += 1
