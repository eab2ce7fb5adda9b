#!/usr/bin/env python3
"""The adversarial battery of issue 8: bounded (minutes), seeded, run in CI.

  1. Starts libvirt-grpcd (by pid, under an address-space limit) with two
     hosts: `default` = test:///default in process, and `box` = a private
     libvirtd (scripts/libvirtd-box.sh) over qemu+tcp on loopback.
  2. Fuzz: for every method of every service (from the descriptors) and
     every field of its request (recursively), sends generated bad values
     (values.py, mutate.py) to each host, and judges each answer.
  3. Load (load.py): concurrent clients on the box while its libvirtd is
     SIGKILLed and restarted.
  4. Removes whatever it created; checks nothing with its prefix is left and
     that what existed before still exists.

A finding is any of:
  code       INTERNAL or UNKNOWN
  crash      the server process died (it is restarted and the run goes on)
  hang       no answer within the call's deadline, or the server stopped
             answering afterwards
  transport  UNAVAILABLE/RESOURCE_EXHAUSTED made by the transport, not the
             server (connection lost, status headers over the client's limit)
  text       an error message longer than --max-message bytes
  expect     a value family with a known right answer got another (XML with
             a DOCTYPE: INVALID_ARGUMENT; malformed protobuf: INVALID_ARGUMENT;
             a NUL byte after a real name: not OK; ...)
  rss        the server's (or the box libvirtd's) RSS grew by more than
             --rss-step-mib during one request
  box        the box libvirtd died during a request (restarted)
  disconnect the server lost its connection to the box libvirtd because of
             a request (libvirtd dropped it)
  sentinel   an object no request named (the test driver's `test`,
             `default-pool`, `default`; the box's PREFIX-keep*) changed
  leftover   a failed call left an object behind; or anything of the run is
             left at the end, or something that existed before is gone
  load       see load.py

Exit status: 0 without findings (or with --report-only), 1 with findings,
2 when the battery itself could not run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "gen"))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import values  # noqa: E402
import load  # noqa: E402
import mutate  # noqa: E402
import procs  # noqa: E402
import rpc  # noqa: E402

# Messages of statuses the gRPC transport makes (not the server).
TRANSPORT_PATTERNS = ("failed to connect", "Socket closed", "Connection reset", "Broken pipe",
                      "Stream removed", "GOAWAY", "connections to all backends failing",
                      "metadata size", "header", "recvmsg", "Connection refused", "RST_STREAM")


# INTERNAL answers that are the truth, not a caller's mistake: the host
# itself failed. Each entry is (method, a text libvirt reports).
HONEST_INTERNAL = [
    # libvirt's ARP-table reader cannot parse this kernel's netlink answer
    # inside the sandbox ("wrong nlmsg len"): a host failure.
    ("GuestAgentService.GetGuestInterfaceAddresses", "wrong nlmsg len"),
]


def is_honest_internal(method: str, message: str) -> bool:
    return any(method == m and text in message for m, text in HONEST_INTERNAL)


@dataclass
class Finding:
    kind: str
    host: str
    method: str
    path: str
    value: str
    code: str
    message: str

    def line(self) -> str:
        where = f"{self.method} {self.path} = {self.value}" if self.method else self.path
        return f"[{self.kind}] {self.host}: {where} -> {self.code} \"{self.message}\""


def head(text: str, n: int = 160) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[:n] + "..."


class Battery:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        # Per run, even with the same seed (not drawn from the seeded rng).
        self.prefix = args.prefix or "lgb" + os.urandom(3).hex()[:5]
        self.run_dir = args.run_dir or f"/tmp/libvirt-grpc-battery-{self.prefix}"
        self.findings: list[Finding] = []
        self._seen = set()
        self.codes = collections.defaultdict(collections.Counter)  # host -> code -> n
        self.per_method = collections.defaultdict(collections.Counter)  # method -> code -> n
        self.requests = collections.Counter()
        self.timings = {}
        self.slowest = []  # (seconds, host, method, path, value, code)
        self.method_time = {}  # (host, method) -> (seconds, requests)
        self.trace = open(args.trace, "w", buffering=1) if args.trace else None
        self.methods = rpc.load_methods()
        self.server = None
        self.box = None
        self.caller = None
        self.api = None
        self.hosts: dict[str, fixtures.HostCtx] = {}

    # --- output ---------------------------------------------------------

    def log(self, msg: str):
        print(f"battery: {msg}", flush=True)

    def find(self, kind, host, method, path, value, code, message):
        key = (kind, host, method, path, value, code)
        if key in self._seen:
            return
        self._seen.add(key)
        f = Finding(kind, host, method, path, value, code, head(message))
        self.findings.append(f)
        if self.args.verbose:
            self.log("FINDING " + f.line())

    # --- setup ----------------------------------------------------------

    def start(self):
        a = self.args
        os.makedirs(self.run_dir, exist_ok=True)
        # Relative paths a request might carry land in here, never in /.
        cwd = os.path.join(self.run_dir, "cwd", "a", "b", "c")
        port = procs.free_port()
        self.addr = f"127.0.0.1:{port}"
        hosts = [("default", "test:///default")]
        if a.box_name:
            self.box = procs.Box(a.box_script, a.box_name, a.box_port)
            self.box.refresh()
            if not self.box.is_alive():
                raise SystemExit(f"battery: box '{a.box_name}' is not running (scripts/libvirtd-box.sh start)")
            hosts.append(("box", self.box.qemu_uri))
            # The same daemon's test driver: the load phase's domains live
            # there (they vanish with the daemon instead of leaving QEMU
            # processes and libvirt jobs behind).
            hosts.append(("boxtest", self.box.test_uri))
        cfg = os.path.join(self.run_dir, "server.toml")
        with open(cfg, "w") as f:
            f.write(f'listen = "{self.addr}"\nlog_level = "warn"\n')
            # Host paths (pool targets, save images) only under the run
            # directory (and the test driver's own /default-pool): no
            # request can build, write or delete anything elsewhere.
            f.write(f'host_path_roots = ["{self.run_dir}", "/default-pool"]\n')
            for name, uri in hosts:
                f.write(f'\n[[hosts]]\nname = "{name}"\nuri = "{uri}"\n')
        self.server = procs.Server(os.path.abspath(a.server_bin), cfg, cwd, os.path.join(self.run_dir, "server.log"),
                                   int(a.server_as_limit_gib * 1024**3))
        self.caller = rpc.Caller(self.addr)
        self.api = rpc.Api(self.caller, self.methods)
        self.start_server()
        for name, uri in hosts:
            driver = "test" if uri.startswith("test") else "qemu"
            ctx = fixtures.HostCtx(self.api, name, driver, self.prefix, self.run_dir, self.log)
            ctx.entity_uses = a.entity_uses
            self.hosts[name] = ctx

    def start_server(self):
        self.server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.server.is_alive():
                raise SystemExit(f"battery: server exited at start: {self.server.log_tail()}")
            out = self.api("HostService.ListHosts", {}, timeout=2)
            if out.ok:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("battery: server never answered ListHosts")
        if self.box:
            self.wait_host("box", 30)
            self.wait_host("boxtest", 30)

    def wait_host(self, host: str, seconds: float) -> float | None:
        """Seconds until GetHostInfo on `host` succeeds (None: never)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if self.api("HostService.GetHostInfo", {"host": host}, timeout=5).ok:
                return time.monotonic() - t0
            time.sleep(0.1)
        return None

    def restart_server(self, why: str):
        self.log(f"restarting the server ({why})")
        self.server.stop(5)
        self.start_server()
        # The in-process test driver starts afresh: its fixtures are gone.
        if "default" in self.hosts:
            self.hosts["default"].setup()

    def restart_box(self):
        self.log("restarting the box libvirtd")
        self.box.start()
        if self.wait_host("box", 40) is None:
            self.log("warning: the server does not reach the box again within 40 s")

    # --- fuzz -----------------------------------------------------------

    def plan(self, ctx, methods) -> list:
        """[(method, base, mutations)] for one host: every value with a
        known right answer and the whole-request forms always; of the heavy
        values (1 MiB and more) --heavy-total per host, a seeded choice over
        all methods; of the rest, all on the test driver (or
        --default-samples per field) and --box-samples per field on a real
        host."""
        a = self.args
        k = a.box_samples if ctx.driver != "test" else a.default_samples
        plan, heavy = [], []
        for m in methods:
            base, bases = mutate.base_request(ctx, m)
            muts = mutate.mutations(ctx, m, base, bases)
            keep, groups = [], collections.defaultdict(list)
            for mu in muts:
                lbl = mu.value.label
                if mu.value.expect or lbl.startswith(("base request", "every flag", "existing")):
                    keep.append(mu)
                elif mu.value.heavy:
                    heavy.append(mu)
                else:
                    groups[mu.path].append(mu)
            for path in sorted(groups):
                g = groups[path]
                keep += g if k <= 0 else self.rng.sample(g, min(k, len(g)))
            plan.append((m, base, muts, keep))
        chosen = {id(mu) for mu in self.rng.sample(heavy, min(a.heavy_total, len(heavy)))}
        out = []
        for m, base, muts, keep in plan:
            ids = {id(mu) for mu in keep} | chosen
            sel = [mu for mu in muts if id(mu) in ids]
            if ctx.driver != "test" and a.box_max_per_method and len(sel) > a.box_max_per_method:
                # Real guests make state changes cost ~1 s (a QEMU start):
                # at most this many requests per method, known-answer
                # values first, the rest a seeded sample.
                def rank(mu):
                    lbl = mu.value.label
                    if lbl.startswith(("base request", "every flag", "existing")):
                        return 0
                    if mu.value.expect == values.INVALID:
                        return 1  # XML attacks, malformed protobuf
                    return 2
                first = sorted((mu for mu in sel if rank(mu) < 2 or mu.value.expect),
                               key=rank)[: a.box_max_per_method]
                rest = [mu for mu in sel if mu not in first]
                pick = {id(mu) for mu in first + self.rng.sample(rest, max(0, a.box_max_per_method - len(first)))}
                sel = [mu for mu in sel if id(mu) in pick]
            out.append((m, base, sel))
        return out

    def safe_on_real_host(self, ctx, m, mu) -> bool:
        """Values that would make a real host allocate real storage are sent
        to the test driver only: allocation above 64 MiB."""
        if ctx.driver == "test":
            return True
        v = mu.value.value
        if mu.path.endswith("allocation_bytes") and isinstance(v, int) and v > 64 * 1024 * 1024:
            return False
        return True

    def fuzz_host(self, ctx):
        a = self.args
        t0 = time.monotonic()
        ctx.setup()
        only = re.compile(a.only) if a.only else None
        methods = [m for m in self.methods if not only or only.search(m.full)]
        n = 0
        last = time.monotonic()
        for m, base, muts in self.plan(ctx, methods):
            tm = time.monotonic()
            if a.verbose or tm - last > 20:
                self.log(f"fuzz {ctx.h}: {m.full} ({len(muts)} requests; {n} done)")
                last = tm
            for mu in muts:
                if not self.safe_on_real_host(ctx, m, mu):
                    continue
                if a.budget_seconds and time.monotonic() - self.t_start > a.budget_seconds:
                    self.log(f"time budget of {a.budget_seconds}s spent; stopping the fuzz phase")
                    return n
                self.one(ctx, m, base, mu)
                n += 1
            self.after_method(m)
            self.method_time[(ctx.h, m.full)] = (time.monotonic() - tm, len(muts))
        self.timings[f"fuzz {ctx.h}"] = time.monotonic() - t0
        self.log(f"fuzz {ctx.h}: {n} requests in {time.monotonic() - t0:.0f}s")
        return n

    def build(self, m, base, mu):
        if mu.raw is not None:
            return mu.raw, True
        if mu.stream is not None:
            return mu.stream, False
        first = base[0] if m.client_streaming else base
        req = first.__class__()
        req.CopyFrom(first)
        mu.apply(req)
        if m.client_streaming:
            return [req] + list(base[1:]), False
        return req, False

    def one(self, ctx, m, base, mu):
        a = self.args
        host = ctx.h
        label = mu.value.label
        try:
            ctx.ensure(m.service)
        except Exception as e:  # noqa: BLE001 - bookkeeping must not stop the run
            self.log(f"ensure failed: {e!r}")
        try:
            req, raw = self.build(m, base, mu)
        except (TypeError, ValueError, OverflowError) as e:
            # The Python runtime refuses the value (cannot be sent).
            self.requests["unsendable"] += 1
            if a.verbose:
                self.log(f"unsendable {m.full} {mu.path}={label}: {e}")
            return
        # Peak memory during the request: reset the peak to the current RSS
        # now, read it afterwards.
        rss0 = self.server.rss()
        procs.reset_peak(self.server.pid)
        watch_box = self.box is not None and host == "box"
        box_rss0 = self.box.rss() if watch_box else 0
        if watch_box:
            procs.reset_peak(self.box.pid)
        timeout = a.call_timeout
        out = self.caller.call(m, req, timeout, raw=raw, max_responses=1 if m.name == "WatchEvents" else 64)
        self.requests[host] += 1
        if self.trace:
            self.trace.write(f"{time.monotonic() - self.t_start:8.2f} {host} {m.full} {mu.path} = {label} -> "
                             f"{out.code} {out.elapsed:.3f}s {out.head(100)}\n")
        self.slowest.append((out.elapsed, host, m.full, mu.path, label, out.code))
        if len(self.slowest) > 200:
            self.slowest = sorted(self.slowest, reverse=True)[:10]
        self.codes[host][out.code] += 1
        self.per_method[m.full][out.code] += 1
        path = mu.path

        # 1. The server process.
        if not self.server.is_alive():
            st = self.server.exited()
            self.find("crash", host, m.full, path, label, out.code,
                      f"server exited with status {st}: {self.server.log_tail(3)}")
            self.restart_server("it died")
            return
        # 2. Classify the answer.
        msg = out.message
        transport = not out.has_details and any(p.lower() in msg.lower() for p in TRANSPORT_PATTERNS)
        if out.code in ("INTERNAL", "UNKNOWN") and is_honest_internal(m.full, msg):
            self.per_method[m.full]["INTERNAL (known host failure)"] += 1
        elif out.code in ("INTERNAL", "UNKNOWN"):
            self.find("code", host, m.full, path, label, out.code, msg)
        elif out.code == "DEADLINE_EXCEEDED":
            self.find("hang", host, m.full, path, label, out.code, f"no answer within {timeout}s: {msg}")
        elif out.code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED") and transport:
            self.find("transport", host, m.full, path, label, out.code, msg)
        elif len(msg.encode()) > a.max_message:
            self.find("text", host, m.full, path, label, out.code,
                      f"{len(msg.encode())}-byte message: {msg}")
        elif mu.value.expect is not None and out.code not in mu.value.expect:
            self.find("expect", host, m.full, path, label, out.code, f"{mu.value.why}: {msg}")
        # 3. Still answering?
        if out.code in ("DEADLINE_EXCEEDED", "UNAVAILABLE", "CANCELLED", "UNKNOWN"):
            if not self.api("HostService.ListHosts", {}, timeout=5).ok:
                self.find("hang", host, m.full, path, label, out.code, "the server stopped answering ListHosts")
                self.restart_server("it stopped answering")
                return
        # 3b. On a real host, UNAVAILABLE may mean the server lost its
        # connection to libvirtd (libvirtd closes a connection it cannot
        # answer on, e.g. an error message beyond its 4 MiB string limit).
        if ctx.driver != "test" and out.code == "UNAVAILABLE" and not transport:
            if not self.api("HostService.GetHostInfo", {"host": host}, timeout=10).ok:
                self.find("disconnect", host, m.full, path, label, out.code,
                          f"the server lost its connection to the host's libvirtd: {msg}")
                if self.box is not None and not self.box.is_alive():
                    pass  # handled below as a dead box
                elif self.wait_host(host, 30) is None:
                    self.log(f"{host} still unreachable after 30 s")
        # 4. Memory: the peak during the request, and what stays.
        peak = (procs.peak_kib(self.server.pid) - rss0) / 1024
        kept = (self.server.rss() - rss0) / 1024
        if peak > a.rss_step_mib:
            self.find("rss", host, m.full, path, label, out.code,
                      f"server RSS rose by {peak:.0f} MiB during the request ({kept:+.0f} MiB after it)")
        if watch_box:
            if not self.box.is_alive():
                self.find("box", host, m.full, path, label, out.code,
                          f"the box libvirtd (pid {self.box.pid}) died during this request")
                self.restart_box()
            else:
                bpeak = (procs.peak_kib(self.box.pid) - box_rss0) / 1024
                bkept = (self.box.rss() - box_rss0) / 1024
                if bpeak > a.rss_step_mib:
                    self.find("rss", host, m.full, path, label, out.code,
                              f"box libvirtd RSS rose by {bpeak:.0f} MiB during the request ({bkept:+.0f} MiB after it)")
        # 5. Changes: sentinels, leftovers. A field the server refused
        # before calling libvirt changed nothing; a read changes nothing;
        # NOT_FOUND for a call that creates nothing changed nothing.
        unchanged = out.refused_field or (out.code == "NOT_FOUND" and not m.creates)
        if not m.reads_only and not unchanged:
            touches_hosts = path.endswith("host") or path.endswith("hosts")
            touched = [c for c in self.hosts.values() if c.ready] if touches_hosts else [ctx]
            kinds = fixtures.METHOD_KINDS.get(m.full) or fixtures.SERVICE_KINDS.get(m.service, fixtures.ALL_KINDS)
            for c in touched:
                c.dirty |= set(c.names)
                for change in c.check_sentinels(kinds):
                    self.find("sentinel", c.h, m.full, path, label, out.code, f"{change} (answer: {head(msg, 80)})")
                found = c.sweep(kinds)
                if found and not out.ok and out.code != "DEADLINE_EXCEEDED":
                    self.find("leftover", c.h, m.full, path, label, out.code,
                              f"failed call left {', '.join(found)} behind: {head(msg, 80)}")
                for st in c.verify_sweep(found, kinds):
                    self.find("leftover", c.h, m.full, path, label, out.code, f"cannot remove {st} (created here)")

    def after_method(self, m):
        """After all requests of a method: every sentinel and a full sweep of
        every host (damage outside the method's own kinds)."""
        if m.reads_only:
            return
        for c in self.hosts.values():
            if not c.ready:
                continue
            for change in c.check_sentinels():
                self.find("sentinel", c.h, m.full, "(one of its requests)", "", "", change)
            found = c.sweep()
            if found:
                self.find("leftover", c.h, m.full, "(one of its requests)", "", "",
                          f"left {', '.join(found)} behind")
            for st in c.verify_sweep(found):
                self.find("leftover", c.h, m.full, "(one of its requests)", "", "", f"cannot remove {st}")
            c.dirty |= set(c.names)

    # --- teardown -------------------------------------------------------

    def teardown(self):
        for ctx in self.hosts.values():
            if not ctx.ready:
                continue  # never set up: nothing of ours, and no inventory to keep
            try:
                for problem in ctx.teardown():
                    self.find("leftover", ctx.h, "", "end of run", "", "", problem)
            except Exception as e:  # noqa: BLE001
                self.find("leftover", ctx.h, "", "end of run", "", "", f"cleanup failed: {e!r}")
        if self.box and self.box.is_alive():
            # A QEMU (or dnsmasq) the box libvirtd no longer knows about.
            for pid in self.lingering_box_processes():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
                except OSError:
                    cmd = "?"
                self.find("leftover", "box", "", "end of run", "", "",
                          f"process {pid} still runs in the box: {cmd}")

    def lingering_box_processes(self, wait: float = 15.0) -> list[str]:
        """The box's processes besides its daemon that still run `wait`
        seconds after teardown. A QEMU whose daemon was killed and restarted
        is no child of the new daemon: once destroyed it stays a zombie
        until PID 1 reaps it, which on these machines takes seconds. A
        zombie has ended; only live processes count."""
        deadline = time.monotonic() + wait
        while True:
            live = [pid for pid in self.box.other_processes() if not procs.is_zombie(pid)]
            if not live or time.monotonic() >= deadline:
                return live
            time.sleep(0.5)

    def stop_server(self):
        if not self.server or not self.server.is_alive():
            return
        t0 = time.monotonic()
        st = self.server.stop(self.args.shutdown_timeout)
        took = time.monotonic() - t0
        if st is None:
            self.find("hang", "", "", "SIGTERM", "", "", f"the server did not exit within "
                      f"{self.args.shutdown_timeout}s of SIGTERM (killed)")
        self.log(f"server stopped in {took:.1f}s (status {st}); {self.server.starts} start(s)")

    # --- report ---------------------------------------------------------

    def report(self):
        a = self.args
        print()
        print(f"== battery report: seed {a.seed}, prefix {self.prefix}, {time.monotonic() - self.t_start:.0f}s")
        for k, v in self.timings.items():
            print(f"   {k}: {v:.0f}s")
        for host, codes in self.codes.items():
            total = sum(codes.values())
            print(f"-- {host}: {total} requests: " + ", ".join(f"{c} {n}" for c, n in codes.most_common()))
        print("-- slowest methods:")
        for (host, meth), (t, n) in sorted(self.method_time.items(), key=lambda x: -x[1][0])[:12]:
            print(f"   {t:6.1f}s {host}: {meth} ({n} requests)")
        print("-- slowest requests:")
        for t, host, meth, path, value, code in sorted(self.slowest, reverse=True)[:8]:
            print(f"   {t:6.2f}s {host}: {meth} {path} = {value} -> {code}")
        if self.requests.get("unsendable"):
            print(f"   ({self.requests['unsendable']} values the Python runtime cannot send were skipped)")
        print("-- per method (all hosts):")
        for meth in sorted(self.per_method):
            c = self.per_method[meth]
            print(f"   {meth}: " + ", ".join(f"{k} {n}" for k, n in c.most_common()))
        if self.load_result:
            print("-- load phase:")
            for line in self.load_result.get("lines", []):
                print("   " + line)
        print(f"-- findings: {len(self.findings)}")
        by_kind = collections.Counter(f.kind for f in self.findings)
        if by_kind:
            print("   by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.most_common()))
        for group, items in self.grouped():
            print(group)
            for it in items:
                print(it)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"seed": a.seed, "prefix": self.prefix, "codes": self.codes,
                           "per_method": self.per_method, "load": self.load_result,
                           "findings": [asdict(x) for x in self.findings]}, f, indent=1, default=dict)
            print(f"(full list as JSON: {a.json})")
        print(f"RESULT: {len(self.findings)} finding(s)")

    KIND_ORDER = ["battery", "crash", "hang", "box", "disconnect", "sentinel", "leftover", "rss", "load",
                  "code", "transport", "text", "expect"]

    def grouped(self):
        """Findings grouped by (kind, code, message shape): one title line,
        then every field path with the methods and values it was seen with,
        and the hosts. The full list is in the JSON report (--json)."""
        def shape(msg: str) -> str:
            s = re.sub(re.escape(self.prefix) + r"[-\w.]*", "<name>", msg)
            s = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", s)
            s = re.sub(r"'[^']*'", "'..'", s)
            s = re.sub(r"\b\w+(Request|Target|Spec|Ref)\b(\.\w+)*", "<msg>", s)
            s = re.sub(r"\d+", "N", s)
            return s[:70]
        order = {k: i for i, k in enumerate(self.KIND_ORDER)}
        groups = collections.OrderedDict()
        for f in sorted(self.findings, key=lambda f: (order.get(f.kind, 99), f.code, shape(f.message), f.path)):
            groups.setdefault((f.kind, f.code, shape(f.message)), []).append(f)
        all_methods = {m.full for m in self.methods}
        for (kind, code, _), fs in groups.items():
            hosts = sorted({f.host for f in fs if f.host})
            title = f"  [{kind}] {code or '-'}: \"{fs[0].message}\""
            items = []
            by_path = collections.OrderedDict()
            for f in fs:
                e = by_path.setdefault(f.path, (set(), []))
                if f.method:
                    e[0].add(f.method)
                if f.value and f.value not in e[1]:
                    e[1].append(f.value)
            for path, (methods, vals) in by_path.items():
                if len(methods) > 1 and methods == all_methods:
                    mtext = f"every method ({len(methods)})"
                else:
                    mtext = ", ".join(sorted(methods))
                vtext = f" = {' | '.join(vals)}" if vals else ""
                items.append(f"      {path}{vtext}" + (f"  in {mtext}" if mtext else ""))
            items.append(f"      hosts: {', '.join(hosts) or '-'}; {len(fs)} finding(s)")
            yield title, items

    # --- main -----------------------------------------------------------

    def run(self) -> int:
        a = self.args
        self.t_start = time.monotonic()
        self.load_result = None
        self.log(f"seed {a.seed}, prefix {self.prefix}, run directory {self.run_dir}")
        could_not_run = False
        try:
            self.start()
            phases = a.phases.split(",")
            if "fuzz" in phases:
                for ctx in self.hosts.values():
                    if ctx.h == "boxtest":
                        continue  # the test driver is fuzzed in process (default)
                    if a.fuzz_hosts and ctx.h not in a.fuzz_hosts.split(","):
                        continue
                    self.fuzz_host(ctx)
            if "load" in phases and self.box:
                t0 = time.monotonic()
                self.load_result = load.run(self, a)
                self.timings["load"] = time.monotonic() - t0
        except SystemExit as e:  # the battery itself could not run
            print(e, file=sys.stderr)
            could_not_run = True
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            self.find("battery", "", "", "battery error", "", "", traceback.format_exc().splitlines()[-1])
        finally:
            if self.server and self.server.is_alive():
                self.teardown()
            self.stop_server()
            if self.caller:
                self.caller.close()
            self.report()
            if not a.keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            else:
                print(f"(run directory kept: {self.run_dir})")
        if could_not_run:
            return 2
        return 1 if self.findings and not a.report_only else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-bin", default="target/debug/libvirt-grpcd")
    p.add_argument("--box-name", default="", help="box of scripts/libvirtd-box.sh (empty: no box host)")
    p.add_argument("--box-port", type=int, default=0)
    p.add_argument("--box-script", default="scripts/libvirtd-box.sh")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    p.add_argument("--prefix", default=None, help="object name prefix (default: random per run)")
    p.add_argument("--phases", default="fuzz,load")
    p.add_argument("--fuzz-hosts", default="", help="hosts to fuzz, comma-separated (default: all)")
    p.add_argument("--only", default="", help="regex on Service.Method (debugging)")
    p.add_argument("--default-samples", type=int, default=0,
                   help="values per field on the test driver (0: all)")
    p.add_argument("--box-samples", type=int, default=1, help="values per field on the box (0: all)")
    p.add_argument("--box-max-per-method", type=int, default=20,
                   help="requests per method on the box at most (0: no limit)")
    p.add_argument("--heavy-total", type=int, default=24,
                   help="1 MiB values sent per host (a seeded choice of methods and fields)")
    p.add_argument("--entity-uses", type=int, default=8,
                   help="how often the 1 MiB entity is used in an object's name (a stored name of N MiB)")
    p.add_argument("--call-timeout", type=float, default=20.0)
    p.add_argument("--max-message", type=int, default=4096, help="longest acceptable status message, bytes")
    p.add_argument("--rss-step-mib", type=float, default=64.0)
    p.add_argument("--server-as-limit-gib", type=float, default=6.0)
    p.add_argument("--shutdown-timeout", type=float, default=15.0)
    p.add_argument("--budget-seconds", type=float, default=0, help="stop fuzzing after this long (0: none)")
    p.add_argument("--load-seconds", type=float, default=40.0)
    p.add_argument("--load-clients", type=int, default=16)
    p.add_argument("--load-kills", type=int, default=2)
    p.add_argument("--load-recovery-seconds", type=float, default=20.0)
    p.add_argument("--load-rss-mib", type=float, default=64.0)
    p.add_argument("--load-qemu-guests", action="store_true",
                   help="run the load phase's domain lifecycle on real QEMU guests (box) instead of boxtest")
    p.add_argument("--load-grace", type=float, default=2.0,
                   help="seconds after the server reaches the box again that still count as outage")
    p.add_argument("--run-dir", default="")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("--json", default="", help="write the report as JSON here")
    p.add_argument("--trace", default="", help="write one line per request here")
    p.add_argument("--report-only", action="store_true", help="exit 0 even with findings")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    if a.seed is None:
        a.seed = int(time.time()) % 1000000
    sys.exit(Battery(a).run())


if __name__ == "__main__":
    main()
