"""Benchmark (not a test; pytest does not collect it): domain reads from a
Python client through libvirt-grpcd (grpcio, stubs generated from proto/)
against libvirt-python on the same libvirtd. Run by scripts/bench.sh:

    PYTHONPATH=<generated stubs> python tests/python/bench_domain.py \
        --addr 127.0.0.1:50051 --host n1000 --uri test+unix:///tmp/x/n1000.xml

Prints p50/p99 per call of each side and the ratio service / direct:
GetDomain (BASIC, FULL) against lookupByName(n).info(), and ListDomains of
every domain (pages of 1000; BASIC, FULL) against one getAllDomainStats
(state|balloon|vcpu) and against the naive loop (listAllDomains, info()
per domain). Variants run in interleaved rounds so that noise falls on all
of them alike; each GetDomain reads a different domain than the last.
"""

import argparse
import math
import os
import sys
import time

import grpc

from libvirt_grpc.v1 import common_pb2, domain_pb2, domain_pb2_grpc, host_pb2, host_pb2_grpc

# libvirt-python comes from Debian's python3-libvirt (built for the system
# Python 3.11, the same ABI as this venv's). Only its directory is appended,
# after the venv's own packages, so nothing there shadows the venv's.
try:
    import libvirt
except ImportError:
    sys.path.append(os.environ.get("LIBVIRT_PYTHON_DIR", "/usr/lib/python3/dist-packages"))
    import libvirt


def pct(samples, p):
    v = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(v)))
    return v[min(rank, len(v)) - 1]


def batch(budget_s, minimum, out, f):
    start = time.perf_counter()
    n = 0
    while n < minimum or time.perf_counter() - start < budget_s:
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e6)
        n += 1


def fmt(us):
    return f"{us:7.0f}us" if us < 10_000 else f"{us / 1000:7.1f}ms"


def row(what, direct, service, target=""):
    d50, d99, s50, s99 = pct(direct, 50), pct(direct, 99), pct(service, 50), pct(service, 99)
    n = min(len(direct), len(service))
    print(f"  {what:<44} {fmt(d50)} {fmt(d99)} {fmt(s50)} {fmt(s99)} {s50 / d50:6.2f}x {s99 / d99:6.2f}x  {n:>5}  {target}")


def header(title):
    print(f"\n{title}")
    print(f"  {'service vs direct':<44} {'dir p50':>9} {'dir p99':>9} {'svc p50':>9} {'svc p99':>9} {'x p50':>7} {'x p99':>7}  {'n':>5}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--iters", type=int, default=2000, help="GetDomain calls per variant")
    a = ap.parse_args()

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(a.uri)
    names = sorted(d.name() for d in conn.listAllDomains(0))
    channel = grpc.insecure_channel(a.addr)
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = domain_pb2_grpc.DomainServiceStub(channel)
    host_stub = host_pb2_grpc.HostServiceStub(channel)
    basic, full = domain_pb2.DOMAIN_VIEW_BASIC, domain_pb2.DOMAIN_VIEW_FULL

    def get(name, view):
        return stub.GetDomain(
            domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(host=a.host, name=name), view=view),
            timeout=30,
        )

    def list_all(view):
        token, n = "", 0
        while True:
            page = stub.ListDomains(
                domain_pb2.ListDomainsRequest(host=a.host, page_size=1000, page_token=token, view=view), timeout=120
            )
            n += len(page.domains)
            token = page.next_page_token
            if not token:
                return n

    assert list_all(basic) == len(names), "the server's host and the URI hold different domains"
    v = libvirt.getVersion()
    pyver = f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"
    print(f"\n== Python client (grpcio {grpc.__version__}, libvirt-python {pyver}), host {a.host}: {len(names)} domains")

    counter = [0]

    def next_name():
        counter[0] += 1
        return names[counter[0] % len(names)]

    rounds = 5
    per_round = max(1, a.iters // rounds)
    li, gb, gf, floor = [], [], [], []
    for _ in range(rounds):
        for out, f in (
            (li, lambda: conn.lookupByName(next_name()).info()),
            (gb, lambda: get(next_name(), basic)),
            (gf, lambda: get(next_name(), full)),
            # The service's floor: answered from the server's memory (its
            # configured hosts), no libvirt call at all.
            (floor, lambda: host_stub.ListHosts(host_pb2.ListHostsRequest(), timeout=30)),
        ):
            for _ in range(per_round):
                t = time.perf_counter()
                f()
                out.append((time.perf_counter() - t) * 1e6)
    header("P1. GetDomain from Python, concurrency 1")
    row("floor: ListHosts (no libvirt call) vs info()", li, floor)
    row("GetDomain BASIC vs lookupByName().info()", li, gb)
    row("GetDomain FULL vs lookupByName().info()", li, gf, "target <= 1.25x")

    groups = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
    n = len(names)
    bulk, naive, lb, lf = [], [], [], []
    budget = 0.4 if a.iters >= 1000 else 0.06

    def naive_loop():
        doms = conn.listAllDomains(0)
        for d in doms:
            d.info()
        assert len(doms) == n

    def bulk_call():
        assert len(conn.getAllDomainStats(groups)) == n

    def listing(view):
        def f():
            assert list_all(view) == n

        return f

    for _ in range(3):
        batch(budget, 3, bulk, bulk_call)
        batch(budget, 2, naive, naive_loop)
        batch(budget, 2, lb, listing(basic))
        batch(budget, 2, lf, listing(full))
    header(f"P2. ListDomains of all {n} from Python (page_size 1000)")
    row("ListDomains BASIC vs getAllDomainStats", bulk, lb)
    row("ListDomains FULL vs getAllDomainStats", bulk, lf, "target <= 1.5x")
    row("ListDomains BASIC vs list + info() each", naive, lb)
    row("ListDomains FULL vs list + info() each", naive, lf)
    channel.close()
    conn.close()


if __name__ == "__main__":
    main()
