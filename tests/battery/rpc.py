"""The API as the battery sees it: every service and method read from the
protobuf descriptors generated from proto/ (never a hand-written list), and
one generic way to call any of them and describe the answer.

The generated modules (``libvirt_grpc/v1/*_pb2.py``) must be importable:
scripts/battery.sh generates them into tests/battery/gen with grpcio-tools,
as scripts/client-checks.sh does for the Python client.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass

# The package every project service lives in.
PACKAGE = "libvirt_grpc.v1"

# Verb prefixes of methods that only read (the API names methods verb
# first). Everything else may change something on a host, so the battery
# checks fixtures, sentinels and leftovers after it.
READ_PREFIXES = ("List", "Get", "Watch", "Find", "Download", "Ping", "Read", "Screenshot")

# Methods that create libvirt objects out of a request (by name prefix;
# a dump into a volume creates the volume):
# after them the battery sweeps whatever the request created.
CREATE_PREFIXES = ("Define", "Create", "Clone", "Upload", "Restore", "Revert",
                   "CoreDumpDomainToVolume")

# Options of every channel: big messages both ways (the battery keeps each
# request at a few MB), default metadata limits (what real clients have).
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.enable_retries", 0),
]


@dataclass
class Method:
    """One RPC as the descriptors describe it."""

    service: str  # e.g. "DomainService"
    name: str  # e.g. "GetDomain"
    desc: object  # MethodDescriptor
    request: type  # the request message class
    response: type  # the response message class
    client_streaming: bool
    server_streaming: bool

    @property
    def full(self) -> str:
        return f"{self.service}.{self.name}"

    @property
    def path(self) -> str:
        return f"/{self.desc.containing_service.full_name}/{self.name}"

    @property
    def reads_only(self) -> bool:
        return self.name.startswith(READ_PREFIXES)

    @property
    def creates(self) -> bool:
        return self.name.startswith(CREATE_PREFIXES)


def load_methods() -> list[Method]:
    """Every method of every service in PACKAGE, in file and declaration
    order, from the generated modules' descriptors."""
    pkg = importlib.import_module(PACKAGE)
    methods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.endswith("_pb2"):
            continue
        mod = importlib.import_module(f"{PACKAGE}.{info.name}")
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                methods.append(
                    Method(
                        service=svc.name,
                        name=m.name,
                        desc=m,
                        request=GetMessageClass(m.input_type),
                        response=GetMessageClass(m.output_type),
                        client_streaming=m.client_streaming,
                        server_streaming=m.server_streaming,
                    )
                )
    return methods


@dataclass
class Outcome:
    """What one call answered."""

    code: str  # grpc.StatusCode name, e.g. "OK", "INVALID_ARGUMENT"
    message: str = ""
    # True when the status carried google.rpc.Status details
    # (grpc-status-details-bin): the server itself produced it. Statuses
    # made by the transport (connection refused, metadata too large) have
    # none.
    has_details: bool = False
    # True when the details are a google.rpc.BadRequest: the server refused
    # a field before calling libvirt, so nothing can have changed.
    refused_field: bool = False
    elapsed: float = 0.0
    responses: int = 0
    response: object = None  # the (first) response message, when OK
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    def head(self, n: int = 160) -> str:
        """The start of the message, on one line."""
        m = " ".join(self.message.split())
        return m if len(m) <= n else m[:n] + "..."


def _error_outcome(e: grpc.RpcError, t0: float, responses: int = 0) -> Outcome:
    code = e.code() if hasattr(e, "code") else None
    trailing = {}
    try:
        trailing = dict(e.trailing_metadata() or ())
    except Exception:  # noqa: BLE001 - a broken call may have none
        pass
    details = trailing.get("grpc-status-details-bin", b"")
    return Outcome(
        code=code.name if code else "UNKNOWN",
        message=(e.details() if hasattr(e, "details") else str(e)) or "",
        has_details=bool(details),
        refused_field=b"google.rpc.BadRequest" in details,
        elapsed=time.monotonic() - t0,
        responses=responses,
    )


class Caller:
    """Calls any method on one channel, generically."""

    def __init__(self, addr: str):
        self.addr = addr
        self.channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self._cache: dict = {}

    def close(self):
        self.channel.close()

    def wait_ready(self, timeout: float) -> bool:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
            return True
        except grpc.FutureTimeoutError:
            return False

    def _callable(self, m: Method, raw: bool):
        key = (m.path, raw)
        fn = self._cache.get(key)
        if fn is None:
            ser = (lambda b: b) if raw else m.request.SerializeToString
            de = m.response.FromString
            kind = {
                (False, False): self.channel.unary_unary,
                (False, True): self.channel.unary_stream,
                (True, False): self.channel.stream_unary,
                (True, True): self.channel.stream_stream,
            }[(m.client_streaming, m.server_streaming)]
            fn = kind(m.path, request_serializer=ser, response_deserializer=de)
            self._cache[key] = fn
        return fn

    def call(self, m: Method, request, timeout: float, raw: bool = False, max_responses: int = 64) -> Outcome:
        """Sends `request` (a message; a list of messages for client
        streaming; bytes when raw) and waits at most `timeout` seconds.
        A server stream is read until it ends or `max_responses` arrived,
        then cancelled (an endless stream such as WatchEvents counts as OK
        once its first message came)."""
        fn = self._callable(m, raw)
        t0 = time.monotonic()
        if m.client_streaming:
            request = iter(list(request))
        if not m.server_streaming:
            try:
                resp, _call = fn.with_call(request, timeout=timeout)
            except grpc.RpcError as e:
                return _error_outcome(e, t0)
            return Outcome("OK", elapsed=time.monotonic() - t0, responses=1, response=resp)
        stream = fn(request, timeout=timeout)
        n = 0
        first = None
        try:
            for resp in stream:
                n += 1
                if first is None:
                    first = resp
                if n >= max_responses:
                    stream.cancel()
                    break
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and n >= max_responses:
                pass
            else:
                return _error_outcome(e, t0, n)
        return Outcome("OK", elapsed=time.monotonic() - t0, responses=n, response=first)


class Api:
    """Methods by name and a convenience caller taking dicts, for the
    battery's own bookkeeping (fixtures, sweeps, the load phase)."""

    def __init__(self, caller: Caller, methods: list[Method]):
        self.caller = caller
        self.methods = {m.full: m for m in methods}

    def method(self, full: str) -> Method:
        return self.methods[full]

    def __call__(self, full: str, fields: dict | None = None, timeout: float = 30.0) -> Outcome:
        m = self.methods[full]
        req = m.request()
        json_format.ParseDict(fields or {}, req)
        return self.caller.call(m, req, timeout)
