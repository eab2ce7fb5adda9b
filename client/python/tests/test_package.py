"""The installed libvirt-grpc package (a wheel built from proto/, in a
fresh virtualenv) against a running server on test:///default
(LIBVIRT_GRPC_SERVER): connect, stubs, decoded error details, and the
example run as a program."""

import os
import subprocess
import sys
import time

import grpc
import pytest

import libvirt_grpc
from libvirt_grpc.v1 import common_pb2, domain_pb2

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "list_and_watch.py")


@pytest.fixture(scope="module")
def client():
    with libvirt_grpc.connect() as c:
        yield c


def test_the_package_is_the_installed_one():
    # Not the source tree: the generated stubs exist only in the wheel.
    assert "site-packages" in libvirt_grpc.__file__, libvirt_grpc.__file__


def test_lists_domains(client):
    names = [d.name for d in client.domains.ListDomains(domain_pb2.ListDomainsRequest(), timeout=10).domains]
    assert "test" in names


def test_bad_request_details(client):
    with pytest.raises(grpc.RpcError) as e:
        client.domains.GetDomain(
            domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(uuid="nope")), timeout=10
        )
    d = libvirt_grpc.details(e.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (d.domain, d.reason) == ("libvirt-grpc", "INVALID_ARGUMENT")
    assert [v.field for v in d.violations] == ["domain.uuid"], d.violations


def test_libvirt_error_details(client):
    with pytest.raises(grpc.RpcError) as e:
        client.domains.GetDomain(
            domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(name="no-such-domain-py")), timeout=10
        )
    d = libvirt_grpc.details(e.value)
    assert d.code == grpc.StatusCode.NOT_FOUND
    assert d.from_libvirt and d.reason == "NO_DOMAIN", d
    assert d.metadata.get("host") == "default", d.metadata


def test_unreachable_server_is_a_connection_error():
    with pytest.raises(ConnectionError) as e:
        libvirt_grpc.connect("127.0.0.1:1", ready_timeout=1)
    assert "127.0.0.1:1" in str(e.value)


def test_example_lists_and_follows_events(client):
    ref = common_pb2.DomainRef(name="test")
    p = subprocess.Popen(
        [sys.executable, EXAMPLE, "--events", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for the listing (the example prints it before it watches),
        # then cause two events.
        header = p.stdout.readline()
        assert header.split()[:3] == ["HOST", "NAME", "STATE"], header
        lines = []
        while not any(" test " in f" {line} " for line in lines):
            lines.append(p.stdout.readline())
        time.sleep(0.5)
        client.domains.SuspendDomain(domain_pb2.SuspendDomainRequest(domain=ref), timeout=10)
        client.domains.ResumeDomain(domain_pb2.ResumeDomainRequest(domain=ref), timeout=10)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    events = out.strip().splitlines()
    assert len(events) == 2, out
    assert "LIFECYCLE SUSPENDED" in events[0] and "LIFECYCLE RESUMED" in events[1], out
