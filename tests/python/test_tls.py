"""The generated Python client over TLS with a client certificate
(grpc.ssl_channel_credentials), against the mutual-TLS server that
scripts/client-checks.sh starts (address and PEM files in the
environment): the admin certificate is served, a reader token is refused
a change with PERMISSION_DENIED naming the role, and a bad token is
UNAUTHENTICATED."""

import os

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from libvirt_grpc.v1 import common_pb2, domain_pb2, domain_pb2_grpc

ADDR = os.environ["LIBVIRT_GRPC_TLS_ADDR"]
DIR = os.environ["LIBVIRT_GRPC_TLS_DIR"]
READER_TOKEN = os.environ["LIBVIRT_GRPC_READER_TOKEN"]


def read(name):
    with open(os.path.join(DIR, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def stub():
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read("ops.key"),
        certificate_chain=read("ops.pem"),
    )
    with grpc.secure_channel(ADDR, creds) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield domain_pb2_grpc.DomainServiceStub(ch)


def error_info(err):
    status = rpc_status.from_call(err)
    assert status is not None, err
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {status}")


def test_admin_certificate_is_served(stub):
    names = [d.name for d in stub.ListDomains(domain_pb2.ListDomainsRequest(), timeout=10).domains]
    assert "test" in names


def test_reader_token_cannot_stop(stub):
    ref = common_pb2.DomainRef(name="test")
    with pytest.raises(grpc.RpcError) as e:
        stub.StopDomain(
            domain_pb2.StopDomainRequest(domain=ref),
            metadata=[("authorization", f"Bearer {READER_TOKEN}")],
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'operator'" in e.value.details()
    info = error_info(e.value)
    assert info.reason == "ROLE_REQUIRED"
    assert info.metadata["required_role"] == "operator"
    # The reader may still read.
    stub.GetDomain(
        domain_pb2.GetDomainRequest(domain=ref),
        metadata=[("authorization", f"Bearer {READER_TOKEN}")],
        timeout=10,
    )


def test_wrong_token_is_unauthenticated(stub):
    with pytest.raises(grpc.RpcError) as e:
        stub.ListDomains(
            domain_pb2.ListDomainsRequest(),
            metadata=[("authorization", f"Bearer {READER_TOKEN}x")],
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert READER_TOKEN not in e.value.details()
    assert error_info(e.value).reason == "UNAUTHENTICATED"
