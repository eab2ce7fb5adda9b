"""A Python client generated from proto/ by grpcio-tools, against a running
libvirt-grpcd on test:///default (address in LIBVIRT_GRPC_ADDR)."""

import os
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from libvirt_grpc.v1 import common_pb2, domain_pb2, domain_pb2_grpc, host_pb2, host_pb2_grpc

ADDR = os.environ["LIBVIRT_GRPC_ADDR"]
PREFIX = f"lvgtpy{os.getpid()}-"


@pytest.fixture(scope="module")
def channel():
    with grpc.insecure_channel(ADDR) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture
def domains(channel):
    stub = domain_pb2_grpc.DomainServiceStub(channel)
    yield stub
    # Remove whatever this run created, even when a test failed.
    for d in stub.ListDomains(domain_pb2.ListDomainsRequest(name_prefix=PREFIX), timeout=10).domains:
        ref = common_pb2.DomainRef(name=d.name)
        if d.state == common_pb2.DOMAIN_STATE_RUNNING:
            stub.StopDomain(domain_pb2.StopDomainRequest(domain=ref), timeout=10)
        stub.UndefineDomain(domain_pb2.UndefineDomainRequest(domain=ref), timeout=10)


def test_lists_builtin_domain(domains):
    names = [d.name for d in domains.ListDomains(domain_pb2.ListDomainsRequest(), timeout=10).domains]
    assert "test" in names


def test_define_start_destroy(domains):
    name = PREFIX + uuid.uuid4().hex[:8]
    spec = domain_pb2.DomainSpec(name=name, memory_bytes=128 << 20, vcpus=1, description="<py & 'quotes'>")
    d = domains.DefineDomain(domain_pb2.DefineDomainRequest(spec=spec), timeout=10).domain
    assert d.name == name and d.state == common_pb2.DOMAIN_STATE_SHUTOFF
    ref = common_pb2.DomainRef(name=name)
    d = domains.StartDomain(domain_pb2.StartDomainRequest(domain=ref), timeout=10).domain
    assert d.state == common_pb2.DOMAIN_STATE_RUNNING
    md = domains.GetDomainMetadata(
        domain_pb2.GetDomainMetadataRequest(domain=ref, kind=domain_pb2.METADATA_KIND_DESCRIPTION), timeout=10
    )
    assert md.value == "<py & 'quotes'>"
    d = domains.StopDomain(domain_pb2.StopDomainRequest(domain=ref), timeout=10).domain
    assert d.state == common_pb2.DOMAIN_STATE_SHUTOFF


def test_error_codes(domains):
    with pytest.raises(grpc.RpcError) as e:
        domains.GetDomain(domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(name=PREFIX + "missing")), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        domains.GetDomain(domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(uuid="x")), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def error_details(err):
    """The google.rpc.Status of a failed call and its ErrorInfo and BadRequest
    (None when absent), decoded as the README's "Errors" section shows."""
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status details"
    info, bad = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    return status, info, bad


def test_error_details(domains):
    # A libvirt error: libvirt's code name, its error domain by name.
    with pytest.raises(grpc.RpcError) as e:
        domains.GetDomain(domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(name=PREFIX + "missing")), timeout=10)
    status, info, _ = error_details(e.value)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert (info.domain, info.reason) == ("libvirt.org", "NO_DOMAIN")
    assert info.metadata["libvirt_code"] == "42"
    assert info.metadata["libvirt_domain"] == "TEST"
    assert info.metadata["host"] == "default"

    # The server's own error: a bad field, with a BadRequest naming it.
    with pytest.raises(grpc.RpcError) as e:
        domains.GetDomain(domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(uuid="x")), timeout=10)
    _, info, bad = error_details(e.value)
    assert (info.domain, info.reason) == ("libvirt-grpc", "INVALID_ARGUMENT")
    assert bad.field_violations[0].field == "domain.uuid"

    # An unknown host.
    with pytest.raises(grpc.RpcError) as e:
        domains.GetDomain(
            domain_pb2.GetDomainRequest(domain=common_pb2.DomainRef(host="nosuchhost", name="test")), timeout=10
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    _, info, _ = error_details(e.value)
    assert (info.domain, info.reason) == ("libvirt-grpc", "UNKNOWN_HOST")
    assert info.metadata["host"] == "nosuchhost"


def test_host_info(channel):
    hosts = host_pb2_grpc.HostServiceStub(channel)
    info = hosts.GetHostInfo(host_pb2.GetHostInfoRequest(), timeout=10)
    assert info.hypervisor_type == "TEST"
    assert info.node.cpus == 16
    # Node memory is in bytes (libvirt's KiB times 1024).
    assert info.node.memory_bytes > 0 and info.node.memory_bytes % 1024 == 0


def test_long_libvirt_error_is_cut_below_header_limits(domains):
    # libvirt echoes a malformed line into its message; grpc-python refuses
    # status headers over 8 KiB (it would report RESOURCE_EXHAUSTED
    # "Stream removed"), so the server cuts the message to 1 KiB.
    xml = "<domain type='test'><name>" + "n" * 20000 + "</nam>"
    with pytest.raises(grpc.RpcError) as e:
        domains.DefineDomain(domain_pb2.DefineDomainRequest(xml=xml), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    details = e.value.details()
    assert len(details.encode()) <= 1024
    assert details.endswith("more bytes cut; the server log has the whole text]")
