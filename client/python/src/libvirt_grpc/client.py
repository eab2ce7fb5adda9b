"""Connecting to a libvirt-grpc server."""

from __future__ import annotations

import os
from typing import Optional

import grpc

from .v1 import (
    domain_pb2_grpc,
    events_pb2_grpc,
    guest_agent_pb2_grpc,
    host_pb2_grpc,
    network_pb2_grpc,
    snapshot_pb2_grpc,
    storage_pb2_grpc,
)

#: Where :func:`connect` goes when neither an argument nor
#: ``LIBVIRT_GRPC_SERVER`` names a server (the server's default listen
#: address).
DEFAULT_TARGET = "127.0.0.1:50051"

#: The server's message limit (``max_message_bytes``), set on the channel in
#: both directions so that large answers (XML, screenshots) are not refused
#: by the client's 4 MiB default.
MAX_MESSAGE_BYTES = 64 << 20


class Client:
    """A channel and one stub per service. Close it (or use ``with``) when
    done."""

    def __init__(self, channel: grpc.Channel, target: str):
        self.channel = channel
        #: The address connected to.
        self.target = target
        self.domains = domain_pb2_grpc.DomainServiceStub(channel)
        self.hosts = host_pb2_grpc.HostServiceStub(channel)
        self.events = events_pb2_grpc.EventServiceStub(channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(channel)
        self.snapshots = snapshot_pb2_grpc.SnapshotServiceStub(channel)
        self.networks = network_pb2_grpc.NetworkServiceStub(channel)
        self.agent = guest_agent_pb2_grpc.GuestAgentServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call (a plain-text
    channel cannot carry gRPC call credentials)."""

    def __init__(self, token: str):
        self._md = ("authorization", f"Bearer {token}")

    def _details(self, d):
        md = list(d.metadata or []) + [self._md]
        return d._replace(metadata=md) if hasattr(d, "_replace") else _Details(d, md)

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_stream_unary(self, cont, d, reqs):
        return cont(self._details(d), reqs)

    def intercept_stream_stream(self, cont, d, reqs):
        return cont(self._details(d), reqs)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def connect(
    target: Optional[str] = None,
    *,
    token: Optional[str] = None,
    ca: Optional[str] = None,
    cert: Optional[str] = None,
    key: Optional[str] = None,
    ready_timeout: Optional[float] = 10.0,
) -> Client:
    """Connects to a server and waits (up to ``ready_timeout`` seconds; None:
    not at all) until the channel is ready.

    Each argument left out comes from the environment: ``LIBVIRT_GRPC_SERVER``
    (else :data:`DEFAULT_TARGET`), ``LIBVIRT_GRPC_TOKEN`` (a bearer token),
    ``LIBVIRT_GRPC_CA`` (the CA that signed the server's certificate: TLS),
    ``LIBVIRT_GRPC_CERT`` / ``LIBVIRT_GRPC_KEY`` (a client certificate for
    mutual TLS). Without a CA or certificate the channel is plain text.

    Raises :class:`ConnectionError` (with the address and gRPC's reason)
    when the server cannot be reached in time.
    """
    target = target or os.environ.get("LIBVIRT_GRPC_SERVER") or DEFAULT_TARGET
    token = token or os.environ.get("LIBVIRT_GRPC_TOKEN")
    ca = ca or os.environ.get("LIBVIRT_GRPC_CA")
    cert = cert or os.environ.get("LIBVIRT_GRPC_CERT")
    key = key or os.environ.get("LIBVIRT_GRPC_KEY")
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    if ca or cert:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert)
        )
        if token:
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(token)
            )
        channel = grpc.secure_channel(target, creds, options)
    else:
        channel = grpc.insecure_channel(target, options)
        if token:
            channel = grpc.intercept_channel(channel, _Bearer(token))
    if ready_timeout is not None:
        try:
            grpc.channel_ready_future(channel).result(timeout=ready_timeout)
        except grpc.FutureTimeoutError as e:
            channel.close()
            raise ConnectionError(
                f"libvirt-grpc server {target} not reachable within {ready_timeout} s"
            ) from e
    return Client(channel, target)
