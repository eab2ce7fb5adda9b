"""Generated bad values, by protobuf field type.

Each value comes with a short label (what the report prints) and, for a few
families, the set of codes a correct server answers with (`expect`); a
different answer is a finding even when it is not INTERNAL. Everything else
is judged by the generic rules of battery.py (no INTERNAL, no UNKNOWN, no
crash, no hang, bounded error text).
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import FieldDescriptor as FD

MIB = 1024 * 1024

INT_VALUES = {
    FD.TYPE_INT32: [0, 1, -1, -(2**31), 2**31 - 1],
    FD.TYPE_SINT32: [0, 1, -1, -(2**31), 2**31 - 1],
    FD.TYPE_SFIXED32: [0, 1, -1, -(2**31), 2**31 - 1],
    FD.TYPE_INT64: [0, 1, -1, -(2**63), 2**31 - 1, 2**32, 2**63 - 1],
    FD.TYPE_SINT64: [0, 1, -1, -(2**63), 2**31 - 1, 2**32, 2**63 - 1],
    FD.TYPE_SFIXED64: [0, 1, -1, -(2**63), 2**31 - 1, 2**32, 2**63 - 1],
    FD.TYPE_UINT32: [0, 1, 2**31 - 1, 2**32 - 1],
    FD.TYPE_FIXED32: [0, 1, 2**31 - 1, 2**32 - 1],
    FD.TYPE_UINT64: [0, 1, 2**31 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1],
    FD.TYPE_FIXED64: [0, 1, 2**31 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1],
}

# Enum numbers no .proto defines (proto3 enums are open: they travel).
UNKNOWN_ENUMS = [99, -1, 2**31 - 1, -(2**31)]

# Codes a server may answer a request it must refuse.
REFUSALS = {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "OUT_OF_RANGE",
            "RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "UNIMPLEMENTED", "ALREADY_EXISTS"}
INVALID = {"INVALID_ARGUMENT"}
# Any answer but OK (the generic rules still judge INTERNAL and UNKNOWN).
NOT_OK = {c.name for c in grpc.StatusCode} - {"OK"}


@dataclass
class Value:
    label: str
    value: object
    # Codes a correct server answers with; None: only the generic rules.
    expect: set | None = None
    why: str = ""  # what a violation of `expect` means, for the report
    # A value that costs the server ~0.1-0.5 s to take apart (1 MiB and
    # more): sent to a seeded sample of fields (--heavy-per-method).
    heavy: bool = False


def int_values(ftype: int) -> list[Value]:
    return [Value(f"{v}", v) for v in INT_VALUES.get(ftype, [0, 1])]


def string_values(base: str, some_uuid: str, name_like: str | None) -> list[Value]:
    """Bad strings. `name_like` is the per-run prefix when the field names
    an object (so anything a request might create carries the prefix): the
    value then becomes PREFIX-<bad>."""
    u = some_uuid
    raw = [
        ("empty", ""),
        ("1MiB", "A" * MIB),
        # Over grpc-python's 16 KiB hard limit for status headers: a server
        # that echoes it in the error message breaks the client.
        ("20KiB", "A" * 20 * 1024),
        ("300 chars", "a" * 300),
        ("NUL", "lgb\x00evil"),
        ("'<'", "<"),
        ("'&'", "&"),
        ("']]>'", "]]>"),
        ("markup", "<x a='1'>&amp;&lt;</x>"),
        ("../../etc/passwd", "../../etc/passwd"),
        ("unicode", "\u00fcn\u00efc\u00f8d\u00e9 \u2713 \U0001d11e \u202eRTL\u200b"),
        ("whitespace", " \t\r\n"),
        ("format", "%s%s%n%x%p"),
        ("uuid {..}", "{" + u + "}"),
        ("uuid urn:uuid:", "urn:uuid:" + u),
        ("uuid UPPER no dashes", u.replace("-", "").upper()),
        ("uuid with spaces", " " + u + " "),
    ]
    out = []
    for label, v in raw:
        if name_like and v:
            v = f"{name_like}-{v}"
        out.append(Value(label, v, heavy=len(v) >= MIB))
    if base:
        # The base value (a real object's name, a path the battery owns)
        # with a NUL and more after it: a server that passes it to C
        # unchecked would act on the real object. Must be refused.
        out.append(Value("base+NUL+suffix", base + "\x00x", expect=NOT_OK,
                         why="a NUL byte in a string was accepted"))
    return out


def bytes_values() -> list[Value]:
    return [
        Value("empty", b""),
        Value("1MiB", bytes(range(256)) * (MIB // 256), heavy=True),
        Value("NULs", b"\x00" * 64),
        Value("not UTF-8", b"\xff\xfe<!DOCTYPE \xc3\x28"),
    ]


def enum_values(enum_desc, base: int) -> list[Value]:
    out = [Value(f"{v.name}", v.number) for v in enum_desc.values if v.number != base]
    out += [Value(f"unknown enum {n}", n) for n in UNKNOWN_ENUMS]
    return out


def some_uuid(seed_text: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, seed_text))


# --- XML attacks --------------------------------------------------------

def _root_of(xml: str) -> str:
    """The root element's name of `xml` (which the battery wrote)."""
    i = xml.index("<")
    j = i + 1
    while j < len(xml) and (xml[j].isalnum() or xml[j] in "_-:."):
        j += 1
    return xml[i + 1 : j]


def _inject(xml: str, text: str, where: str = "text") -> str:
    """`xml` with `text` appended to its first text node (for most roots the
    object's name, which libvirt reads, so entities in it are expanded and
    stored; the name keeps the run's prefix), or with where="root" (or
    without a text node) as the root element's first child, text libvirt
    never reads: only a parser that expands entities itself pays."""
    m = re.search(r">([^<]+)<", xml) if where == "text" else None
    if m:
        return xml[: m.end(1)] + text + xml[m.end(1):]
    i = xml.index(">", xml.index("<"))
    if xml[i - 1] == "/":  # <root/> -> <root>text</root>
        root = _root_of(xml)
        return xml[: i - 1] + ">" + text + f"</{root}>" + xml[i + 1 :]
    return xml[: i + 1] + text + xml[i + 1 :]


# How often the 1 MiB entity is used as text libvirt never reads.
IGNORED_ENTITY_USES = 200


def xml_attacks(base_xml: str, entity_uses: int) -> list[Value]:
    """XML attacks built on a valid XML of the right kind. Every one carries
    a DOCTYPE (or something the parser must refuse), so every one must be
    answered INVALID_ARGUMENT (issue 8: raw XML fields refuse <!DOCTYPE).

    The 1 MiB entity comes twice: `entity_uses` times in the object's name
    (expanded and stored: an N MiB object; kept small because a stored
    object of tens of MiB breaks libvirt's 32 MiB RPC messages and every
    later listing), and IGNORED_ENTITY_USES times where libvirt never looks
    (costs only a parser that expands entities eagerly)."""
    r = _root_of(base_xml)
    why = "an XML attack was not refused with INVALID_ARGUMENT"
    lol = "".join(
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' if i else '<!ENTITY lol0 "lol">'
        for i in range(10)
    )
    big = "B" * MIB
    out = [
        ("DOCTYPE internal entity", f'<!DOCTYPE {r} [<!ENTITY lgb "battery">]>' + _inject(base_xml, "&lgb;")),
        ("billion laughs", f"<!DOCTYPE {r} [{lol}]>" + _inject(base_xml, "&lol9;")),
        ("external entity file:///etc/hostname",
         f'<!DOCTYPE {r} [<!ENTITY ext SYSTEM "file:///etc/hostname">]>' + _inject(base_xml, "&ext;")),
        ("external DTD", f'<!DOCTYPE {r} SYSTEM "file:///etc/hostname">' + base_xml),
        ("parameter entity",
         f'<!DOCTYPE {r} [<!ENTITY % pe "<!ENTITY pex \'battery\'>"> %pe;]>' + _inject(base_xml, "&pex;")),
        (f"1MiB entity x{entity_uses} in a name",
         f'<!DOCTYPE {r} [<!ENTITY big "{big}">]>' + _inject(base_xml, "&big;" * entity_uses)),
        (f"1MiB entity x{IGNORED_ENTITY_USES} as ignored text",
         f'<!DOCTYPE {r} [<!ENTITY big "{big}">]>' + _inject(base_xml, "&big;" * IGNORED_ENTITY_USES, "root")),
    ]
    values = [Value(label, v, expect=INVALID, why=why) for label, v in out]
    # Not DOCTYPE, but as hostile: refused by the parser's depth limit.
    values.append(Value("nesting depth 100000", _inject(base_xml, "<a>" * 100000 + "</a>" * 100000),
                        expect=REFUSALS, why="100000 nested elements were accepted"))
    values.append(Value("UTF-16 declared, UTF-8 sent", '<?xml version="1.0" encoding="UTF-16"?>' + base_xml))
    return values
