"""The load phase: concurrent clients on the box's libvirtd while it is
SIGKILLed and restarted (--load-kills times, evenly spread).

The box daemon serves two configured hosts: `box` (its QEMU driver,
qemu+tcp) and `boxtest` (its test driver, test+tcp: objects live in the
daemon's memory and vanish with it). Each client (its own gRPC channel, its
own seeded random generator) loops until the phase ends, choosing one of:
  40%  a read: ListDomains, GetHostInfo, ListStoragePools, ListNetworks of
       either host, GetDomain of the running fixture on `box`
  25%  DefineDomain (spec) -> GetDomain -> UndefineDomain      on boxtest
  15%  DefineDomain -> StartDomain -> StopDomain -> UndefineDomain
                                                                on boxtest
  10%  CreateDomain (transient, running) -> StopDomain         on boxtest
  10%  CreateStorageVolume (1 MiB) -> DeleteStorageVolume in the fixture
       pool of `box` (real files)
With --load-qemu-guests the lifecycle operations run on `box` instead:
diskless type='qemu' guests without NIC, real QEMU processes. (libvirt 9.0
then shows its own weakness: a domain whose start was interrupted by the
kill keeps a "start" job after the restart, and every later call on it
waits 30 s for the state change lock; such domains are reported as
leftovers and ended by `libvirtd-box.sh stop`.)
Every object is named PREFIX-L<client>-<n>. A sequence stops at its first
error (what it created is removed by the sweep at the end).

Judged:
  - the server process lives and answers afterwards;
  - no INTERNAL or UNKNOWN ever;
  - an error during an outage (from the kill until the server reaches the
    box again, plus --load-grace seconds) is UNAVAILABLE or
    DEADLINE_EXCEEDED; outside the outages there are no errors at all;
  - after each restart the server reaches the box (GetHostInfo OK) within
    --load-recovery-seconds;
  - the server's RSS after the phase (settled) is at most its RSS after a
    warm-up + --load-rss-mib;
  - nothing named PREFIX-L is left after the sweep.
"""

from __future__ import annotations

import collections
import random
import threading
import time

import rpc

OUTAGE_SECONDS = 3.0  # how long the box stays dead before its restart
WARMUP_SECONDS = 5.0  # load before the RSS baseline is taken
CALL_TIMEOUT = 10.0


class Client(threading.Thread):
    def __init__(self, idx: int, b, stop: threading.Event, seed: int):
        super().__init__(daemon=True, name=f"load-{idx}")
        self.idx = idx
        self.b = b
        self.ctx = b.hosts["box"]
        self.stop_ev = stop
        self.rng = random.Random(seed)
        self.caller = rpc.Caller(b.addr)
        self.api = rpc.Api(self.caller, b.methods)
        self.n = 0
        self.calls = []  # (t0, t1, method, code, message)
        self.ops = collections.Counter()

    def call(self, method: str, fields: dict) -> bool:
        t0 = time.monotonic()
        out = self.api(method, fields, timeout=CALL_TIMEOUT)
        self.calls.append((t0, time.monotonic(), method, out.code, out.head(120)))
        if not out.ok:
            time.sleep(0.1)  # as a client would before retrying
        return out.ok

    def name(self) -> str:
        self.n += 1
        return f"{self.b.prefix}-L{self.idx}-{self.n}"

    def spec(self, name: str) -> dict:
        # domain_type empty: the host's driver ("test" or "qemu").
        return {"name": name, "memory_bytes": 64 << 20, "vcpus": 1}

    def run(self):
        # Where the domain lifecycle runs: the box's test driver, or with
        # --load-qemu-guests its QEMU driver.
        h = self.ctx.h if self.b.args.load_qemu_guests else "boxtest"
        reads = [
            ("DomainService.ListDomains", {"host": "box"}),
            ("DomainService.ListDomains", {"host": "boxtest"}),
            ("HostService.GetHostInfo", {"host": "box"}),
            ("HostService.GetHostInfo", {"host": "boxtest"}),
            ("StorageService.ListStoragePools", {"host": "box"}),
            ("NetworkService.ListNetworks", {"host": "boxtest"}),
            ("DomainService.GetDomain", {"domain": self.ctx.dom_ref("dom_run")}),
        ]
        while not self.stop_ev.is_set():
            r = self.rng.random()
            if r < 0.40:
                self.ops["read"] += 1
                self.call(*self.rng.choice(reads))
            elif r < 0.65:
                self.ops["define/undefine"] += 1
                ref = {"host": h, "name": self.name()}
                _ = (self.call("DomainService.DefineDomain", {"host": h, "spec": self.spec(ref["name"])})
                     and self.call("DomainService.GetDomain", {"domain": ref})
                     and self.call("DomainService.UndefineDomain", {"domain": ref}))
            elif r < 0.80:
                self.ops["define/start/destroy/undefine"] += 1
                ref = {"host": h, "name": self.name()}
                _ = (self.call("DomainService.DefineDomain", {"host": h, "spec": self.spec(ref["name"])})
                     and self.call("DomainService.StartDomain", {"domain": ref})
                     and self.call("DomainService.StopDomain", {"domain": ref})
                     and self.call("DomainService.UndefineDomain", {"domain": ref}))
            elif r < 0.90:
                self.ops["create/destroy"] += 1
                ref = {"host": h, "name": self.name()}
                _ = (self.call("DomainService.CreateDomain", {"host": h, "spec": self.spec(ref["name"])})
                     and self.call("DomainService.StopDomain", {"domain": ref}))
            else:
                self.ops["volume create/delete"] += 1
                vref = {"pool": self.ctx.pool_ref(), "name": self.name()}
                _ = (self.call("StorageService.CreateStorageVolume",
                               {"pool": self.ctx.pool_ref(),
                                "spec": {"name": vref["name"], "format": "STORAGE_VOLUME_FORMAT_RAW",
                                         "capacity_bytes": 1024 * 1024}})
                     and self.call("StorageService.DeleteStorageVolume", {"volume": vref}))
        self.caller.close()


def run(b, a) -> dict:
    """Runs the phase; records findings on `b`; returns the printed counts."""
    lines = []
    ctx = b.hosts["box"]
    if not ctx.ready:
        ctx.setup()
    tctx = b.hosts["boxtest"]
    if not tctx.ready:
        tctx.attach()
    ctx.ensure_one("dom_run")
    ctx.ensure_one("pool")
    b.log(f"load: {a.load_clients} clients for {a.load_seconds:.0f}s, {a.load_kills} kill(s) of the box libvirtd")
    stop = threading.Event()
    clients = [Client(i, b, stop, a.seed * 1000 + i) for i in range(a.load_clients)]
    t_begin = time.monotonic()
    for c in clients:
        c.start()
    time.sleep(WARMUP_SECONDS)
    rss_before = b.server.rss()
    windows = []  # (t_kill, t_recovered or None)
    recoveries = []
    span = max(a.load_seconds - WARMUP_SECONDS, 1.0)
    for k in range(a.load_kills):
        t_target = t_begin + WARMUP_SECONDS + span * (k + 1) / (a.load_kills + 1) - OUTAGE_SECONDS / 2
        time.sleep(max(0.0, t_target - time.monotonic()))
        t_kill = time.monotonic()
        b.box.kill()
        time.sleep(OUTAGE_SECONDS)
        b.box.start()
        t_up = time.monotonic()
        rec = b.wait_host("box", a.load_recovery_seconds + 30)
        if rec is not None:
            b.wait_host("boxtest", 10)
        t_rec = time.monotonic() if rec is not None else None
        windows.append((t_kill, t_rec))
        recoveries.append((t_up - t_kill, (t_rec - t_up) if t_rec else None))
        if t_rec is None or t_rec - t_up > a.load_recovery_seconds:
            got = f"{t_rec - t_up:.1f}s" if t_rec else "never (within the wait)"
            b.find("load", "box", "HostService.GetHostInfo", f"restart {k + 1}", "", "",
                   f"the server reached the restarted box after {got}; the bound is {a.load_recovery_seconds}s")
    time.sleep(max(0.0, t_begin + a.load_seconds - time.monotonic()))
    stop.set()
    for c in clients:
        c.join(CALL_TIMEOUT * 3)
    t_end = time.monotonic()
    time.sleep(3.0)  # let the server settle (blocking threads idle out)
    rss_after = b.server.rss()

    # Judge every call.
    grace = a.load_grace
    by_code = collections.Counter()
    by_method = collections.defaultdict(collections.Counter)
    in_outage = collections.Counter()
    ops = collections.Counter()
    reported = set()
    for c in clients:
        ops.update(c.ops)
        for t0, t1, method, code, msg in c.calls:
            by_code[code] += 1
            by_method[method][code] += 1
            if code == "OK":
                continue
            during = any(tk - 0.5 <= t1 and t0 <= (tr if tr else t_end) + grace for tk, tr in windows)
            if during:
                in_outage[code] += 1
            key = (method, code, during, msg[:40])
            if code in ("INTERNAL", "UNKNOWN"):
                kind = "code"
            elif during and code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                kind = "load"
                msg = f"during an outage: {msg}"
            elif not during:
                kind = "load"
                msg = f"outside the outages: {msg}"
            else:
                continue
            if key not in reported:
                reported.add(key)
                b.find(kind, "box", method, "(load phase)", "valid request", code, msg)
    total = sum(by_code.values())
    lines.append(f"{total} calls in {t_end - t_begin:.0f}s by {len(clients)} clients: "
                 + ", ".join(f"{k} {v}" for k, v in by_code.most_common()))
    lines.append("operations: " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    lines.append("errors during outages: " + (", ".join(f"{k} {v}" for k, v in in_outage.most_common()) or "none"))
    for i, (dead, rec) in enumerate(recoveries, 1):
        lines.append(f"restart {i}: box dead {dead:.1f}s; server reached it "
                     + (f"{rec:.1f}s after the restart" if rec is not None else "never"))
    for method in sorted(by_method):
        lines.append(f"  {method}: " + ", ".join(f"{k} {v}" for k, v in by_method[method].most_common()))
    grown = (rss_after - rss_before) / 1024
    lines.append(f"server RSS: {rss_before / 1024:.0f} MiB after warm-up, {rss_after / 1024:.0f} MiB after the "
                 f"phase ({grown:+.0f} MiB; bound +{a.load_rss_mib:.0f} MiB)")
    if grown > a.load_rss_mib:
        b.find("rss", "box", "", "(load phase)", "", "", f"server RSS grew by {grown:.0f} MiB during the load phase")

    # Still answering? Then remove what the phase left (a define whose
    # answer was lost in an outage, a guest started just before a kill).
    if not b.server.is_alive():
        b.find("crash", "box", "", "(load phase)", "", "", f"server exited: {b.server.log_tail(3)}")
        b.restart_server("it died in the load phase")
    elif not b.api("HostService.ListHosts", {}, timeout=5).ok:
        b.find("hang", "box", "", "(load phase)", "", "", "the server does not answer after the load phase")
    for c in (ctx, tctx):
        found = c.sweep()
        lines.append(f"swept {c.h} after the phase: {len(found)} object(s)"
                     + (f" ({', '.join(found[:4])}{', ...' if len(found) > 4 else ''})" if found else ""))
        for st in c.verify_sweep(found):
            b.find("leftover", c.h, "", "(load phase)", "", "", f"cannot remove {st}")
    return {"lines": lines, "calls": total, "codes": dict(by_code), "recoveries": recoveries,
            "rss_before_kib": rss_before, "rss_after_kib": rss_after}
