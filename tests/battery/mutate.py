"""Valid base requests and their mutations.

`base_request` builds, for any method, a request that would succeed (or at
least be well formed) on a host: refs name the run's fixtures, specs carry
plausible values, everything the request might create is named PREFIX-n<k>.
The values come from a table keyed by field name (and by message for the
few names that mean different things); the fields themselves come from the
descriptors, so a field added to a .proto is fuzzed without a change here.

`mutations` walks the request's descriptor recursively (into messages,
oneofs and repeated elements) and yields, for every field, requests that
differ from the base in that one field: the bad values of values.py by
field type, absent/empty messages, unknown enum numbers, repeated fields
with no, one bad, or many elements. Then a few whole-request mutations:
every boolean set at once, the XML of an existing object with every flag
set, malformed wire bytes, and for client streams empty, repeated and long
streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from google.protobuf.descriptor import FieldDescriptor as FD

import values as V
from values import Value

# Many elements for repeated fields; each request stays a few MB at most.
MANY = 10000
MANY_MESSAGES = 1000

# Which member of a oneof the base request sets (by oneof name).
# A oneof name may serve several messages: the members any of them prefers.
ONEOF_PREFERENCE = {"key": ("name",), "source": ("spec",), "item": ("xml", "target"), "msg": ("target",)}


@dataclass
class Mutation:
    path: str  # e.g. "spec.disks[0].source_path", "<request>", "<wire>"
    value: Value
    apply: Callable  # (request copy) -> None; or None for raw/stream forms
    raw: object = None  # bytes (or list of bytes) for wire-level forms
    stream: list | None = None  # a whole message list for stream forms


def _is_msg(f) -> bool:
    return f.type == FD.TYPE_MESSAGE


class Bases:
    """Base values for one host context and one method."""

    def __init__(self, ctx, method):
        self.ctx = ctx
        self.m = method
        self.new = ctx.new_name()  # what this method's requests create

    # Scalars, by (message, field) first, then by field name.
    def scalar(self, msg: str, f) -> object:
        c, n = self.ctx, f.name
        files = c.files
        specific = {
            ("DefineDomainRequest", "xml"): lambda: c.domain_xml(self.new),
            ("CreateDomainRequest", "xml"): lambda: c.domain_xml(self.new),
            ("AttachDomainDeviceRequest", "xml"): lambda: device_xml(files),
            ("DetachDomainDeviceRequest", "xml"): lambda: device_xml(files),
            ("UpdateDomainDeviceRequest", "xml"): lambda: device_xml(files),
            ("DefineStoragePoolRequest", "xml"): lambda: c.pool_xml(self.new),
            ("CreateStorageVolumeRequest", "xml"): lambda: c.vol_xml(self.new),
            ("DefineNetworkRequest", "xml"): lambda: c.net_xml(self.new, c.bridge_name()),
            ("CreateNetworkRequest", "xml"): lambda: c.net_xml(self.new, c.bridge_name()),
            ("UpdateNetworkRequest", "xml"): lambda: (
                f"<host mac='52:54:00:00:00:02' name='{c.prefix}-h2' ip='192.168.250.12'/>"),
            ("CreateSnapshotRequest", "xml"): lambda: c.snapshot_xml(self.new),
            ("FindStoragePoolSourcesRequest", "source_xml"): lambda: "<source/>",
            ("SetDomainMetadataRequest", "value"): lambda: "<info>battery</info>",
            ("SetDomainMetadataRequest", "key"): lambda: "lgb",
            ("DhcpHost", "name"): lambda: f"{c.prefix}-h1",
            ("NetworkSpec", "bridge"): lambda: c.bridge_name(),
            ("NetworkSpec", "ip_address"): lambda: "192.168.250.1" if c.driver == "test" else "",
            ("NetworkSpec", "prefix"): lambda: 24 if c.driver == "test" else 0,
            ("SaveDomainRequest", "path"): lambda: f"{files}/save.img",
            ("RestoreDomainRequest", "path"): lambda: f"{files}/missing-save.img",
            ("ExecGuestCommandRequest", "path"): lambda: "/bin/true",
            ("ReadGuestFileRequest", "path"): lambda: "/etc/hostname",
            ("WriteGuestFileTarget", "path"): lambda: "/tmp/lgb-battery",
            ("DiskSpec", "source_path"): lambda: f"{files}/disk.img",
            ("DiskSpec", "target_dev"): lambda: "vdb",
            ("NicSpec", "network"): lambda: (c.names["net"] if c.driver == "test" else f"{c.prefix}-nonet"),
            ("GraphicsSpec", "type"): lambda: "GRAPHICS_TYPE_VNC",
            ("GraphicsSpec", "listen"): lambda: "127.0.0.1",
            ("GraphicsSpec", "autoport"): lambda: True,
            ("LifecycleActions", "on_poweroff"): lambda: "LIFECYCLE_ACTION_DESTROY",
            ("ResizeStorageVolumeRequest", "capacity_bytes"): lambda: 2 * V.MIB,
            ("UploadTarget", "length"): lambda: 4,
            ("UpdateNetworkRequest", "parent_index"): lambda: -1,
            ("GetDomainCapabilitiesRequest", "virt_type"): lambda: "" if c.driver == "test" else "qemu",
            ("GetDomainCapabilitiesRequest", "arch"): lambda: "" if c.driver == "test" else "x86_64",
            ("ListDomainsRequest", "name_prefix"): lambda: c.prefix,
            # The agent's raw command timeout (a Duration): 5 s.
            ("Duration", "seconds"): lambda: 5,
        }
        if (msg, n) in specific:
            return specific[(msg, n)]()
        by_name = {
            "host": c.h,
            "name": self.new,
            "memory_bytes": 64 << 20,
            "vcpus": 1 if not f.is_repeated else [0],
            "count": 1,
            "capacity_bytes": V.MIB,
            "command_json": '{"execute":"guest-ping"}',
            "args": ["-x"],
            "env": ["A=b"],
            "data": b"battery",
            "chunk": b"abcd",
            "mountpoints": ["/"],
            "mountpoint": "/",
            "user": "lgbuser",
            "password": "battery-pw",
            "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATTERYBATTERYBATTERYBATTERYBATTERYBATTER lgb"],
            "seconds": int(time.time()),
            "keycodes": [30],
            "cpus": [0],
            "kinds": [],
            "hosts": [c.h] if msg == "WatchEventsRequest" else None,
            "uri": "http://example.org/lgb-battery",
            "mac": "52:54:00:00:00:01" if msg == "DhcpHost" else "",
            "ip": "192.168.250.11",
            "start": "192.168.250.10" if msg == "DhcpRange" else None,
            "end": "192.168.250.20",
            "bus": "virtio" if f.type == FD.TYPE_STRING else "DISK_BUS_VIRTIO",
            "format": "raw" if f.type == FD.TYPE_STRING else (
                "DISK_FORMAT_RAW" if msg == "DiskSpec" else None),
            "device": "disk" if f.type == FD.TYPE_STRING else "DISK_DEVICE_DISK",
            "model": "virtio" if f.type == FD.TYPE_STRING else "NIC_MODEL_VIRTIO",
            "description": "battery",
            "title": "battery",
            "machine": "" if c.driver == "test" else "pc",
        }
        v = by_name.get(n)
        if msg == "StoragePoolSpec" and n == "target_path":
            v = f"{c.pools_dir}/{self.new}"
        return v

    def enum(self, msg: str, f) -> int | None:
        specific = {
            ("StoragePoolSpec", "type"): "STORAGE_POOL_TYPE_DIR",
            ("StorageVolumeSpec", "format"): "STORAGE_VOLUME_FORMAT_RAW",
            ("ListStoragePoolsRequest", "types"): "STORAGE_POOL_TYPE_DIR",
            # On a real host: DIR (no discovery, no external tool such as
            # LVM's pvs, no NFS probe to another machine).
            ("FindStoragePoolSourcesRequest", "type"): (
                "STORAGE_POOL_TYPE_LOGICAL" if self.ctx.driver == "test" else "STORAGE_POOL_TYPE_DIR"),
            ("SetDomainMetadataRequest", "kind"): "METADATA_KIND_ELEMENT",
            ("GetDomainMetadataRequest", "kind"): "METADATA_KIND_ELEMENT",
            ("UpdateNetworkRequest", "command"): "NETWORK_UPDATE_COMMAND_ADD_LAST",
            ("UpdateNetworkRequest", "section"): "NETWORK_SECTION_IP_DHCP_HOST",
            ("SendDomainKeyRequest", "codeset"): "KEY_CODE_SET_LINUX",
            ("GetGuestInfoRequest", "kinds"): "GUEST_INFO_KIND_OS",
            ("SetGuestVcpusRequest", "state"): "GUEST_VCPU_STATE_ONLINE",
        }
        name = specific.get((msg, f.name))
        if name is None:
            return None
        return f.enum_type.values_by_name[name].number

    def ref(self, msg_name: str) -> dict | None:
        c = self.ctx
        which = "dom_off" if (self.m.name in USES_DOM_OFF_METHODS or self.m.service == "SnapshotService") else "dom_run"
        return {
            "DomainRef": c.dom_ref(which),
            "StoragePoolRef": c.pool_ref(),
            "StorageVolumeRef": c.vol_ref(),
            "NetworkRef": c.net_ref(),
            "SnapshotRef": {"domain": c.dom_ref("dom_off"), "name": c.names["snap"]},
        }.get(msg_name)

    def uuid_for(self, msg_name: str) -> str:
        """The UUID odd forms are made of: the object the ref's base names,
        so that a server accepting the form would reach the fixture."""
        c = self.ctx
        key = {"DomainRef": "dom_run", "StoragePoolRef": "pool", "NetworkRef": "net"}.get(msg_name)
        if self.m.name in USES_DOM_OFF_METHODS or self.m.service == "SnapshotService":
            key = "dom_off" if key == "dom_run" else key
        return c.uuids.get(key) or V.some_uuid(f"{c.prefix}-{msg_name}")

    # Building messages.
    def build(self, cls_or_msg, depth: int = 0):
        """Fills a message of the given class (or instance) with base
        values, recursively."""
        msg = cls_or_msg() if isinstance(cls_or_msg, type) else cls_or_msg
        d = msg.DESCRIPTOR
        ref = self.ref(d.name)
        if ref is not None:
            from google.protobuf import json_format
            json_format.ParseDict(ref, msg)
            return msg
        for f in d.fields:
            oneof = f.containing_oneof
            if oneof is not None and not oneof.name.startswith("_"):
                if f.name not in ONEOF_PREFERENCE.get(oneof.name, ()):
                    continue
            elif oneof is not None:
                continue  # proto3 `optional`: left unset
            if _is_msg(f):
                if f.is_repeated:
                    continue  # repeated messages start empty
                if depth < 6 and self.wants_message(d.name, f):
                    self.build(getattr(msg, f.name), depth + 1)
                    if not msg.HasField(f.name):
                        getattr(msg, f.name).SetInParent()
                continue
            if f.type == FD.TYPE_ENUM:
                v = self.enum(d.name, f)
                if v is not None:
                    if f.is_repeated:
                        getattr(msg, f.name).append(v)
                    else:
                        setattr(msg, f.name, v)
                continue
            v = self.scalar(d.name, f)
            if v is None or (f.type == FD.TYPE_BOOL and not f.is_repeated and v is not True):
                continue
            if f.is_repeated:
                if isinstance(v, list):
                    getattr(msg, f.name).extend(v)
            elif not isinstance(v, list):
                try:
                    setattr(msg, f.name, v)
                except (TypeError, ValueError):
                    pass
        return msg

    def wants_message(self, parent: str, f) -> bool:
        """Whether the base sets an (optional) sub-message."""
        # Boot settings, lifecycle actions and the DHCP range are optional;
        # the DHCP range only means something with an address (test driver).
        if f.message_type.name in ("BootSpec", "LifecycleActions", "UploadTarget"):
            return f.message_type.name == "UploadTarget"
        if f.message_type.name == "DhcpRange":
            return self.ctx.driver == "test"
        if parent == "UploadTarget" and f.name == "create":
            return False
        return True



# Methods whose DomainRef names the shut-off fixture (all others the running
# one; snapshot methods the shut-off domain that owns the fixture snapshot).
USES_DOM_OFF_METHODS = {"StartDomain"}

def device_xml(files: str) -> str:
    """The device of Attach/Detach/UpdateDomainDevice: a USB disk on a 1 MiB
    file of the run. USB hot-plug and unplug need no help from the guest
    (a PCI device such as virtio-rng makes every detach wait 5 s for a
    guest that never answers)."""
    return (f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{files}/disk.img'/><target dev='sdb' bus='usb'/></disk>")


def _class_of(desc):
    from google.protobuf.message_factory import GetMessageClass
    return GetMessageClass(desc)


def base_request(ctx, method) -> tuple[object, Bases]:
    """(base, bases): a message, or for client streams a list of messages:
    the first built as any request, then one continuation message carrying
    only the bytes fields."""
    b = Bases(ctx, method)
    first = b.build(method.request)
    if not method.client_streaming:
        return first, b
    cont = method.request()
    for f in cont.DESCRIPTOR.fields:
        if f.type == FD.TYPE_BYTES and not f.is_repeated:
            setattr(cont, f.name, b"more")
    return [first, cont], b


# --- mutations ------------------------------------------------------------

def _string_values(b: Bases, msg_name: str, f, base: str) -> list[Value]:
    name_like = b.ctx.prefix if ("name" in f.name or f.name == "bridge") else None
    out = V.string_values(base, b.uuid_for(msg_name), name_like)
    if f.name == "path" or f.name.endswith("_path") or f.name in ("kernel", "initrd"):
        out += [
            Value("existing directory", b.ctx.existing_dir),
            Value("missing absolute path", f"{b.ctx.files}/no/such/dir/x"),
            Value("/dev/null", "/dev/null"),
        ]
    if base.startswith("<"):
        out += V.xml_attacks(base, b.ctx.entity_uses)
    return out


def _scalar_values(b: Bases, msg_name: str, f, base) -> list[Value]:
    t = f.type
    if t == FD.TYPE_BOOL:
        return [Value(f"{not base}", not base)]
    if t == FD.TYPE_STRING:
        xml_base = base
        if not xml_base and "xml" in f.name:
            # A oneof member the base does not set: its base XML anyway.
            xml_base = b.scalar(msg_name, f) or ""
        return _string_values(b, msg_name, f, xml_base or "")
    if t == FD.TYPE_BYTES:
        return V.bytes_values()
    if t == FD.TYPE_ENUM:
        return V.enum_values(f.enum_type, base or 0)
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return [Value(str(x), x) for x in (0.0, -1.0, float("inf"), float("nan"), 1e308)]
    if f.name == "id" and msg_name.endswith("Ref"):
        # Small ids name real objects (the test driver's `test` is id 1):
        # only ids no object has.
        return [Value(str(v), v) for v in (0, 2**31 - 1, 2**32 - 1)]
    return V.int_values(t)


def _many(f, base_list) -> Value:
    t = f.type
    if t == FD.TYPE_STRING:
        elem = base_list[0] if base_list else "lgb-x"
        return Value(f"{MANY} elements", [elem] * MANY)
    if t == FD.TYPE_BYTES:
        return Value(f"{MANY} elements", [b"x"] * MANY)
    if t == FD.TYPE_ENUM:
        return Value(f"{MANY} elements", [1] * MANY)
    if t == FD.TYPE_BOOL:
        return Value(f"{MANY} elements", [True] * MANY)
    elem = base_list[0] if base_list else 1
    return Value(f"{MANY} elements", [elem] * MANY)


def _field_mutations(b: Bases, msg, path: str, depth: int = 0):
    """Yields (path, Value, apply) for every field of `msg` (a base
    instance): apply(m) changes that field of a copy of `msg`."""
    d = msg.DESCRIPTOR
    for f in d.fields:
        p = f"{path}.{f.name}" if path else f.name
        name = f.name
        if _is_msg(f) and f.is_repeated:
            elem = b.build(_class_of(f.message_type))
            yield p, Value("[] (no elements)", None), (lambda m, n=name: m.ClearField(n))
            yield p, Value(f"{MANY_MESSAGES} base elements", None), (
                lambda m, n=name, e=elem: (m.ClearField(n), getattr(m, n).extend([e] * MANY_MESSAGES)))
            if depth < 6:
                for sp, val, fn in _field_mutations(b, elem, p + "[0]", depth + 1):
                    def apply(m, n=name, e=elem, fn=fn):
                        m.ClearField(n)
                        x = getattr(m, n).add()
                        x.CopyFrom(e)
                        fn(x)
                    yield sp, val, apply
        elif _is_msg(f):
            sub = getattr(msg, name) if msg.HasField(name) else b.build(_class_of(f.message_type))
            yield p, Value("absent", None), (lambda m, n=name: m.ClearField(n))
            yield p, Value("empty message", None), (
                lambda m, n=name: (m.ClearField(n), getattr(m, n).SetInParent()))
            if depth < 6:
                for sp, val, fn in _field_mutations(b, sub, p, depth + 1):
                    def apply(m, n=name, s=sub, fn=fn):
                        x = getattr(m, n)
                        if not m.HasField(n):
                            x.CopyFrom(s)
                        fn(x)
                    yield sp, val, apply
        elif f.is_repeated:
            base_list = list(getattr(msg, name))
            if base_list:
                yield p, Value("[] (no elements)", []), (lambda m, n=name: m.ClearField(n))
            many = _many(f, base_list)
            yield p, many, _setter(name, many.value)
            for val in _scalar_values(b, d.name, f, base_list[0] if base_list else _zero(f)):
                yield p, Value(f"[{val.label}]", [val.value], val.expect, val.why, val.heavy), _setter(name, [val.value])
        else:
            base = getattr(msg, name)
            if f.containing_oneof is not None and msg.WhichOneof(f.containing_oneof.name) != name:
                base = _zero(f)
            for val in _scalar_values(b, d.name, f, base):
                yield p, val, _setter(name, val.value)
    # Oneofs: none of the members set.
    for o in d.oneofs:
        if o.name.startswith("_"):
            continue
        yield (f"{path}.{o.name}" if path else o.name), Value("oneof unset", None), (
            lambda m, o=o.name: m.ClearField(o))


def _zero(f):
    if f.type == FD.TYPE_STRING:
        return ""
    if f.type == FD.TYPE_BYTES:
        return b""
    if f.type == FD.TYPE_BOOL:
        return False
    return 0


def _setter(name: str, value):
    """apply() setting scalar (or repeated scalar) field `name` of the
    message it is given."""

    def apply(m):
        if isinstance(value, list):
            m.ClearField(name)
            getattr(m, name).extend(value)
        else:
            setattr(m, name, value)
    return apply


def mutations(ctx, method, base, bases: Bases) -> list[Mutation]:
    """Every mutation of one method's base request."""
    first = base[0] if method.client_streaming else base
    out = [Mutation("<request>", Value("base request", None), lambda m: None)]
    for p, val, fn in _field_mutations(bases, first, ""):
        out.append(Mutation(p, val, fn))
    out += _whole_request(ctx, method, first, bases)
    out += _wire(method, first)
    if method.client_streaming:
        out += _streams(base)
    return out


def _whole_request(ctx, method, first, bases: Bases) -> list[Mutation]:
    out = []
    d = first.DESCRIPTOR
    bools = [f.name for f in d.fields if f.type == FD.TYPE_BOOL and not f.is_repeated]
    if len(bools) >= 2:
        def all_true(m, bools=bools):
            for n in bools:
                setattr(m, n, True)
        out.append(Mutation("<request>", Value(f"every flag set ({', '.join(bools)})", None), all_true))
    # The XML of an existing object (a sentinel) with every flag set:
    # a failed define/create must not destroy what already existed.
    for f in d.fields:
        if f.type == FD.TYPE_STRING and "xml" in f.name and method.creates:
            base_xml = bases.scalar(d.name, f) or ""
            if not base_xml.startswith("<"):
                continue
            root = V._root_of(base_xml)
            xml, patch = ctx.existing_xml(root)
            if not xml:
                continue

            def existing(m, n=f.name, xml=xml, patch=patch, bools=bools):
                setattr(m, n, xml)
                for b in bools:
                    setattr(m, b, True)
                if patch and "pool" in patch and "pool" in m.DESCRIPTOR.fields_by_name:
                    from google.protobuf import json_format
                    m.ClearField("pool")
                    json_format.ParseDict(patch["pool"], m.pool)
            out.append(Mutation(f.name, Value(f"existing {root}'s XML, every flag set", None), existing))
    return out


def _wire(method, first) -> list[Mutation]:
    """Malformed protobuf bytes: a server must answer INVALID_ARGUMENT."""
    why = "malformed protobuf was not answered INVALID_ARGUMENT"
    good = first.SerializeToString()
    forms = [
        ("truncated length-delimited field", b"\x0a\x05ab", V.INVALID),
        ("length 2^32-1", b"\x0a\xff\xff\xff\xff\x0f", V.INVALID),
        ("overlong varint", b"\x08" + b"\xff" * 10 + b"\x01", V.INVALID),
        ("end-group without start", b"\x0c", V.INVALID),
        ("unknown field 999 added (must be ignored)", good + b"\xb8\x3e\x01", None),
    ]
    f1 = first.DESCRIPTOR.fields_by_number.get(1)
    if f1 is not None and f1.type == FD.TYPE_STRING:
        forms.append(("invalid UTF-8 in string field 1", b"\x0a\x02\xc3\x28", V.INVALID))
    out = []
    for label, raw, expect in forms:
        payload = [raw, b"\x12\x04more"] if method.client_streaming else raw
        out.append(Mutation("<wire>", Value(label, None, expect, why if expect else ""), None, raw=payload))
    return out


def _streams(base: list) -> list[Mutation]:
    first, cont = base[0], base[1]
    return [
        Mutation("<stream>", Value("no messages", None, V.NOT_OK, "an empty client stream was accepted"),
                 None, stream=[]),
        Mutation("<stream>", Value("first message only", None), None, stream=[first]),
        Mutation("<stream>", Value("first message three times", None), None, stream=[first, first, first]),
        Mutation("<stream>", Value("1000 continuation messages", None), None, stream=[first] + [cont] * 1000),
        Mutation("<stream>", Value("continuation first", None), None, stream=[cont, first]),
    ]
