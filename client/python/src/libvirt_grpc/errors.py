"""The error details every failed libvirt-grpc call carries.

Each failed status holds a ``google.rpc.Status`` in its
``grpc-status-details-bin`` trailer with one ``google.rpc.ErrorInfo``
(``domain`` "libvirt.org" for libvirt's errors, "libvirt-grpc" for the
server's own; ``reason``; ``metadata`` such as ``host`` and
``libvirt_code``), a ``google.rpc.BadRequest`` naming every bad request
field, and a ``google.rpc.RetryInfo`` on UNAVAILABLE. The README's
"Errors" section is the whole contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class FieldViolation:
    """One bad request field."""

    field: str
    description: str


@dataclass
class ErrorDetails:
    """A failed call, decoded."""

    code: grpc.StatusCode
    message: str
    #: ``ErrorInfo.reason``: libvirt's error code name (``NO_DOMAIN``) or the
    #: server's own (``INVALID_ARGUMENT``, ``HOST_UNAVAILABLE``); empty when
    #: the status carried none (a failure before the server answered).
    reason: str = ""
    #: ``ErrorInfo.domain``: "libvirt.org" or "libvirt-grpc".
    domain: str = ""
    metadata: Dict[str, str] = field(default_factory=dict)
    violations: List[FieldViolation] = field(default_factory=list)
    #: Seconds to wait before retrying (``RetryInfo``), if the server said.
    retry_delay: Optional[float] = None

    @property
    def from_libvirt(self) -> bool:
        return self.domain == "libvirt.org"


def details(e: grpc.RpcError) -> ErrorDetails:
    """Decodes the status details of a failed call."""
    out = ErrorDetails(code=e.code(), message=e.details() or "")
    status = rpc_status.from_call(e) if hasattr(e, "trailing_metadata") else None
    if status is None:
        return out
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            d.Unpack(bad)
            out.violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            d.Unpack(retry)
            out.retry_delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return out
