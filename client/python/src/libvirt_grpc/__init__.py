"""Python client of libvirt-grpc.

The generated stubs of the v1 API live in ``libvirt_grpc.v1`` (one
``*_pb2`` / ``*_pb2_grpc`` pair per proto file); this package adds what
every caller would otherwise write again: :func:`connect` (address, TLS,
bearer token and message limits, from arguments or the environment) and
:func:`details` (the ``google.rpc`` error details of a failed call)::

    import libvirt_grpc
    from libvirt_grpc.v1 import domain_pb2

    with libvirt_grpc.connect("127.0.0.1:50051") as c:
        for d in c.domains.ListDomains(domain_pb2.ListDomainsRequest()).domains:
            print(d.name)
"""

from .client import DEFAULT_TARGET, MAX_MESSAGE_BYTES, Client, connect
from .errors import ErrorDetails, FieldViolation, details

__all__ = [
    "DEFAULT_TARGET",
    "MAX_MESSAGE_BYTES",
    "Client",
    "ErrorDetails",
    "FieldViolation",
    "connect",
    "details",
]
