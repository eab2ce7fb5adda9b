"""Per-host state of a battery run: the objects requests act on (fixtures),
the objects nothing may touch (sentinels), the valid base requests the
mutations start from, and the sweeps that remove whatever a request created.

Every object the battery creates is named PREFIX-... (PREFIX is per run).

Fixtures (re-created before each request when a request changed them):
  PREFIX-run   a running persistent domain        (DomainRef of most calls)
  PREFIX-off   a shut-off persistent domain        (StartDomain, snapshots)
  PREFIX-snap  a snapshot of PREFIX-off
  PREFIX-pool  an active dir pool under the run directory
  PREFIX-vol   a 1 MiB raw volume in it
  PREFIX-net   an active network (on real hosts: no <ip>, only a bridge)

Sentinels: objects no base request names, whose state is recorded at the
start and compared after every request that may change something. On the
in-process test driver they are the driver's own `test` domain,
`default-pool` and `default` network (plus a volume PREFIX-keepvol in
default-pool); on a real host the battery makes PREFIX-keep{dom,pool,vol,net}.
They also feed the "existing object's XML" attack: define/create with the
XML of something that exists (and every flag set) must not destroy it.

Everything goes through the server under test (the API is the battery's
only client); `virsh` is never needed.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

from rpc import Api, Outcome

MIB = 1024 * 1024

# Which fixtures the methods of a service act on.
SERVICE_FIXTURES = {
    "DomainService": ("dom_run", "dom_off"),
    "SnapshotService": ("dom_off", "snap", "dom_run"),
    "StorageService": ("pool", "vol"),
    "NetworkService": ("net",),
    "GuestAgentService": ("dom_run",),
}


# Which kinds of objects the methods of a service can create, change or
# remove (sweeps and sentinel checks after a request look at these).
SERVICE_KINDS = {
    "DomainService": {"domain", "snapshot"},
    "SnapshotService": {"snapshot", "domain"},
    "StorageService": {"pool", "volume"},
    "NetworkService": {"network"},
    "GuestAgentService": {"domain"},
}
ALL_KINDS = {"domain", "pool", "network", "volume", "snapshot"}
# Methods that touch more kinds than their service's: a core dump into a
# volume creates the volume.
METHOD_KINDS = {
    "DomainService.CoreDumpDomainToVolume": {"domain", "snapshot", "volume"},
}


@dataclass
class Sentinel:
    kind: str  # domain | pool | volume | network
    ref: dict  # the ref fields (as for the API)
    xml: str = ""  # its XML at the start, to restore it and for attacks
    state: tuple = ()  # what must stay the same


class HostCtx:
    """One configured host of the server under test."""

    def __init__(self, api: Api, host: str, driver: str, prefix: str, run_dir: str, log):
        self.api = api
        self.h = host
        self.driver = driver  # "test" or "qemu"
        self.prefix = prefix
        self.run_dir = run_dir
        self.log = log
        self.counter = 0
        p = prefix
        self.names = {
            "dom_run": f"{p}-run",
            "dom_off": f"{p}-off",
            "snap": f"{p}-snap",
            "pool": f"{p}-pool",
            "vol": f"{p}-vol",
            "net": f"{p}-net",
        }
        self.uuids: dict[str, str] = {}
        # (memory_bytes, max_memory_bytes, vcpus) of each domain fixture as
        # created: a request that changed them gets the fixture re-created.
        self.baseline: dict[str, tuple] = {}
        self.sentinels: list[Sentinel] = []
        self.inventory: dict[str, set] = {}  # kind -> names present at start
        self.files = os.path.join(run_dir, "files")
        self.pools_dir = os.path.join(run_dir, "pools")
        os.makedirs(self.files, exist_ok=True)
        os.makedirs(self.pools_dir, exist_ok=True)
        # An existing directory for path fields, holding nothing: a pool a
        # request points there may list (and a sweep delete) only what the
        # battery never needs (the run directory holds the server's config).
        self.existing_dir = os.path.join(run_dir, "existing-dir")
        os.makedirs(self.existing_dir, exist_ok=True)
        with open(os.path.join(self.files, "disk.img"), "wb") as f:
            f.truncate(MIB)
        self.setup_notes: list[str] = []
        self.ready = False  # set up (inventory recorded)
        # Fixtures a request may have changed since they were last checked.
        self.dirty: set[str] = set(self.names)
        # "kind name" of objects a sweep could not remove: reported once,
        # then tolerated (so one stuck object does not flag every request).
        self.stuck: set[str] = set()

    # --- names and XML ------------------------------------------------------

    def new_name(self) -> str:
        self.counter += 1
        return f"{self.prefix}-n{self.counter}"

    def bridge_name(self, n: int | None = None) -> str:
        """A bridge name: at most 15 characters (IFNAMSIZ), prefixed."""
        if n is None:
            self.counter += 1
            n = self.counter
        return f"{self.prefix}{n:x}"[:15]

    def domain_xml(self, name: str, uuid: str = "", disk: str = "") -> str:
        u = f"<uuid>{uuid}</uuid>" if uuid else ""
        d = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
             f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>") if disk else ""
        if self.driver == "test":
            return (
                f"<domain type='test'><name>{name}</name>{u}"
                "<memory unit='KiB'>131072</memory><currentMemory unit='KiB'>65536</currentMemory>"
                "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
            )
        # A diskless software-emulated guest with no NIC; VNC on loopback
        # only (screenshots need a display).
        return (
            f"<domain type='qemu'><name>{name}</name>{u}"
            "<memory unit='KiB'>131072</memory><currentMemory unit='KiB'>65536</currentMemory>"
            "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>"
            "<features><acpi/></features>"
            f"<devices>{d}<graphics type='vnc' autoport='yes' listen='127.0.0.1'/></devices></domain>"
        )

    def fixture_xml(self, which: str, uuid: str = "") -> str:
        """The domain fixtures' XML. On QEMU the shut-off one has a small
        qcow2 disk: libvirt takes no snapshot of a domain without disks."""
        disk = ""
        if which == "dom_off" and self.driver != "test":
            disk = os.path.join(self.files, f"{self.names[which]}.qcow2")
            if not os.path.exists(disk):
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"], check=True)
        return self.domain_xml(self.names[which], uuid, disk)

    def pool_xml(self, name: str) -> str:
        return (
            f"<pool type='dir'><name>{name}</name>"
            f"<target><path>{self.pools_dir}/{name}</path></target></pool>"
        )

    @staticmethod
    def vol_xml(name: str) -> str:
        return (
            f"<volume><name>{name}</name><capacity unit='bytes'>{MIB}</capacity>"
            "<target><format type='raw'/></target></volume>"
        )

    def net_xml(self, name: str, bridge: str) -> str:
        ip = ""
        if self.driver == "test":
            ip = (
                "<ip address='192.168.250.1' netmask='255.255.255.0'><dhcp>"
                "<range start='192.168.250.10' end='192.168.250.20'/></dhcp></ip>"
            )
        # On a real host: no <ip>, so no addresses, no dnsmasq, no firewall
        # rules: only a bridge with the run's prefix.
        return f"<network><name>{name}</name><bridge name='{bridge}'/>{ip}</network>"

    @staticmethod
    def snapshot_xml(name: str) -> str:
        return f"<domainsnapshot><name>{name}</name><description>battery</description></domainsnapshot>"

    # --- refs -------------------------------------------------------------

    def dom_ref(self, which: str = "dom_run") -> dict:
        return {"host": self.h, "name": self.names[which]}

    def pool_ref(self) -> dict:
        return {"host": self.h, "name": self.names["pool"]}

    def vol_ref(self) -> dict:
        return {"pool": self.pool_ref(), "name": self.names["vol"]}

    def net_ref(self) -> dict:
        return {"host": self.h, "name": self.names["net"]}

    # --- calls ------------------------------------------------------------

    def call(self, method: str, fields: dict, timeout: float = 40.0) -> Outcome:
        return self.api(method, fields, timeout)

    def must(self, method: str, fields: dict, what: str) -> Outcome:
        out = self.call(method, fields)
        if not out.ok:
            note = f"{self.h}: {what}: {method} -> {out.code} {out.head()}"
            if note not in self.setup_notes:
                self.setup_notes.append(note)
                self.log(f"fixture: {note}")
        return out

    # --- fixtures ---------------------------------------------------------

    def attach(self):
        """Records the host's inventory only (no fixtures, no sentinels):
        for a host the battery merely loads and sweeps."""
        self.inventory = self.list_all()
        self.ready = True

    def setup(self):
        """Records the host's inventory, creates fixtures and sentinels."""
        self.inventory = self.list_all()
        # From here on, sweeps and the teardown may act on this host: they
        # only ever remove what is not in this inventory.
        self.ready = True
        if self.driver == "test":
            self.sentinels = [
                Sentinel("domain", {"host": self.h, "name": "test"}),
                Sentinel("pool", {"host": self.h, "name": "default-pool"}),
                Sentinel("network", {"host": self.h, "name": "default"}),
                Sentinel("volume", {"pool": {"host": self.h, "name": "default-pool"}, "name": f"{self.prefix}-keepvol"}),
            ]
            self.must("StorageService.CreateStorageVolume",
                      {"pool": {"host": self.h, "name": "default-pool"}, "xml": self.vol_xml(f"{self.prefix}-keepvol")},
                      "sentinel volume")
        else:
            p = self.prefix
            self.must("DomainService.DefineDomain", {"host": self.h, "xml": self.domain_xml(f"{p}-keepdom")},
                      "sentinel domain")
            self.must("StorageService.DefineStoragePool",
                      {"host": self.h, "xml": self.pool_xml(f"{p}-keeppool"), "build": True, "start": True},
                      "sentinel pool")
            self.must("StorageService.CreateStorageVolume",
                      {"pool": {"host": self.h, "name": f"{p}-keeppool"}, "xml": self.vol_xml(f"{p}-keepvol")},
                      "sentinel volume")
            self.must("NetworkService.DefineNetwork",
                      {"host": self.h, "xml": self.net_xml(f"{p}-keepnet", self.bridge_name(0xFFF)), "start": True},
                      "sentinel network")
            self.sentinels = [
                Sentinel("domain", {"host": self.h, "name": f"{p}-keepdom"}),
                Sentinel("pool", {"host": self.h, "name": f"{p}-keeppool"}),
                Sentinel("network", {"host": self.h, "name": f"{p}-keepnet"}),
                Sentinel("volume", {"pool": {"host": self.h, "name": f"{p}-keeppool"}, "name": f"{p}-keepvol"}),
            ]
        for s in self.sentinels:
            s.xml = self._xml_of(s)
            s.state = self._state_of(s)
        for which in ("dom_run", "dom_off", "snap", "pool", "vol", "net"):
            self.ensure_one(which)
        self.dirty.clear()

    def _xml_of(self, s: Sentinel) -> str:
        m, key = {
            "domain": ("DomainService.GetDomainXml", "domain"),
            "pool": ("StorageService.GetStoragePoolXml", "pool"),
            "network": ("NetworkService.GetNetworkXml", "network"),
            "volume": ("StorageService.GetStorageVolumeXml", "volume"),
        }[s.kind]
        fields = {key: s.ref}
        if s.kind != "volume":
            fields["inactive"] = True
        out = self.call(m, fields)
        if not out.ok:  # the test driver has no "inactive" flag for some kinds
            out = self.call(m, {key: s.ref})
        return out.response.xml if out.ok else ""

    def _state_of(self, s: Sentinel) -> tuple | None:
        """What must not change about a sentinel; ("missing", code) when it
        is not found; None when the host cannot say right now."""
        st = self._state_of_raw(s)
        if st[0] == "missing" and st[1] in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            return None
        return st

    def _state_of_raw(self, s: Sentinel) -> tuple:
        if s.kind == "domain":
            out = self.call("DomainService.GetDomain", {"domain": s.ref})
            if not out.ok:
                return ("missing", out.code)
            d = out.response.domain
            return ("state", d.state, "persistent", d.persistent)
        if s.kind == "pool":
            out = self.call("StorageService.GetStoragePool", {"pool": s.ref})
            if not out.ok:
                return ("missing", out.code)
            p = out.response.pool
            return ("state", p.state, "persistent", p.persistent, "target", p.target_path)
        if s.kind == "network":
            out = self.call("NetworkService.GetNetwork", {"network": s.ref})
            if not out.ok:
                return ("missing", out.code)
            n = out.response.network
            return ("active", n.active, "persistent", n.persistent)
        out = self.call("StorageService.GetStorageVolume", {"volume": s.ref})
        if not out.ok:
            return ("missing", out.code)
        v = out.response.volume
        return ("capacity", v.capacity_bytes)

    def check_sentinels(self, kinds: set = ALL_KINDS) -> list[str]:
        """Compares the sentinels of these kinds with their recorded state;
        restores the ones that changed. Returns what changed."""
        changed = []
        for s in self.sentinels:
            if s.kind not in kinds:
                continue
            now = self._state_of(s)
            if now is not None and now != s.state:
                changed.append(f"{s.kind} {s.ref.get('name')}: {s.state} -> {now}")
                self._restore(s)
                after = self._state_of(s)
                if after is not None and after != s.state:
                    # Not restorable through the API: from now on compare
                    # with what it is, so that one change is reported once.
                    changed.append(f"{s.kind} {s.ref.get('name')}: could not be restored, stays {after}")
                    s.state = after
        return changed

    def _restore(self, s: Sentinel):
        want = dict(zip(s.state[::2], s.state[1::2]))
        if s.kind == "domain":
            self.call("DomainService.DefineDomain", {"host": self.h, "xml": s.xml})
            if want.get("state") == 1 or want.get("state") == 2:  # running
                self.call("DomainService.StartDomain", {"domain": s.ref})
                self.call("DomainService.ResumeDomain", {"domain": s.ref})
            elif want.get("state") == 6:
                self.call("DomainService.StopDomain", {"domain": s.ref})
        elif s.kind == "pool":
            self.call("StorageService.DefineStoragePool", {"host": self.h, "xml": s.xml})
            if want.get("state") == 3:
                if not self.call("StorageService.StartStoragePool", {"pool": s.ref}).ok:
                    self.call("StorageService.StartStoragePool", {"pool": s.ref, "build": True})
        elif s.kind == "network":
            self.call("NetworkService.DefineNetwork", {"host": self.h, "xml": s.xml})
            if want.get("active"):
                self.call("NetworkService.StartNetwork", {"network": s.ref})
        else:
            self.call("StorageService.DeleteStorageVolume", {"volume": s.ref})
            self.call("StorageService.CreateStorageVolume", {"pool": s.ref["pool"], "xml": s.xml})

    def existing_xml(self, root: str):
        """(xml, ref patch) of a sentinel whose XML has this root element."""
        kind = {"domain": "domain", "pool": "pool", "network": "network", "volume": "volume"}.get(root)
        for s in self.sentinels:
            if s.kind == kind and s.xml:
                patch = {"pool": s.ref["pool"]} if kind == "volume" else {}
                return s.xml, patch
        return None, None

    def ensure(self, service: str):
        """Checks (and repairs) the service's fixtures that may have changed."""
        for which in SERVICE_FIXTURES.get(service, ()):
            if which in self.dirty:
                self.ensure_one(which)
                self.dirty.discard(which)

    def ensure_one(self, which: str):
        """Brings one fixture back to its base state (existing, right state,
        base resources); cheap when nothing changed (one read)."""
        n = self.names[which]
        if which in ("dom_run", "dom_off"):
            ref = self.dom_ref(which)
            out = self.call("DomainService.GetDomain", {"domain": ref})
            d = out.response.domain if out.ok else None
            if d is not None and which in self.baseline and \
                    (d.memory_bytes, d.max_memory_bytes, d.vcpus) != self.baseline[which]:
                self.call("DomainService.StopDomain", {"domain": ref})
                self.call("DomainService.UndefineDomain", {"domain": ref, "remove_managed_save": True,
                                                           "remove_snapshots_metadata": True})
                d = None
            if d is None:
                self.baseline.pop(which, None)
                self.must("DomainService.DefineDomain", {"host": self.h, "xml": self.fixture_xml(which)},
                          f"fixture {n}")
                out = self.call("DomainService.GetDomain", {"domain": ref})
                d = out.response.domain if out.ok else None
                if d is None:
                    return
            if not d.persistent:
                # Made transient (undefined while running): define it again,
                # with its own UUID (libvirt refuses a new one for the name).
                self.must("DomainService.DefineDomain", {"host": self.h, "xml": self.fixture_xml(which, d.uuid)},
                          f"fixture {n}")
            if d.autostart:
                self.call("DomainService.SetDomainAutostart", {"domain": ref, "autostart": False})
            state = d.state  # DomainState: 2 running, 3 blocked, 4 paused, 6 shut off
            if which == "dom_run":
                if state == 4:
                    self.must("DomainService.ResumeDomain", {"domain": ref}, f"resume {n}")
                elif state not in (2, 3):
                    if state != 6:
                        self.call("DomainService.StopDomain", {"domain": ref})
                    if d.has_managed_save:
                        self.call("DomainService.RemoveDomainManagedSave", {"domain": ref})
                    self.must("DomainService.StartDomain", {"domain": ref}, f"start {n}")
            else:
                if state != 6:
                    self.must("DomainService.StopDomain", {"domain": ref}, f"destroy {n}")
                if d.has_managed_save:
                    self.call("DomainService.RemoveDomainManagedSave", {"domain": ref})
            self.uuids[which] = d.uuid
            if which not in self.baseline:
                out = self.call("DomainService.GetDomain", {"domain": ref})
                if out.ok:
                    d = out.response.domain
                    self.baseline[which] = (d.memory_bytes, d.max_memory_bytes, d.vcpus)
        elif which == "snap":
            dref = self.dom_ref("dom_off")
            out = self.call("SnapshotService.GetSnapshot", {"snapshot": {"domain": dref, "name": n}})
            if out.code == "NOT_FOUND":
                self.must("SnapshotService.CreateSnapshot", {"domain": dref, "xml": self.snapshot_xml(n)},
                          f"fixture {n}")
        elif which == "pool":
            out = self.call("StorageService.GetStoragePool", {"pool": self.pool_ref()})
            if not out.ok:
                self.must("StorageService.DefineStoragePool",
                          {"host": self.h, "xml": self.pool_xml(n), "build": True, "start": True}, f"fixture {n}")
                out = self.call("StorageService.GetStoragePool", {"pool": self.pool_ref()})
            elif out.response.pool.state != 3:  # not running
                # Its directory may be gone (DeleteStoragePool): build it
                # then; the test driver has no build flag for start.
                if not self.call("StorageService.StartStoragePool", {"pool": self.pool_ref()}).ok:
                    self.must("StorageService.StartStoragePool", {"pool": self.pool_ref(), "build": True},
                              f"start {n}")
            if out.ok:
                self.uuids["pool"] = out.response.pool.uuid
        elif which == "vol":
            out = self.call("StorageService.GetStorageVolume", {"volume": self.vol_ref()})
            if out.ok and out.response.volume.capacity_bytes != MIB:
                self.call("StorageService.DeleteStorageVolume", {"volume": self.vol_ref()})
                out = self.call("StorageService.GetStorageVolume", {"volume": self.vol_ref()})
            if not out.ok:
                self.must("StorageService.CreateStorageVolume", {"pool": self.pool_ref(), "xml": self.vol_xml(n)},
                          f"fixture {n}")
        elif which == "net":
            out = self.call("NetworkService.GetNetwork", {"network": self.net_ref()})
            if not out.ok:
                self.must("NetworkService.DefineNetwork",
                          {"host": self.h, "xml": self.net_xml(n, self.bridge_name(0xFFE)), "start": True},
                          f"fixture {n}")
                out = self.call("NetworkService.GetNetwork", {"network": self.net_ref()})
            elif not out.response.network.active or not out.response.network.persistent:
                if not out.response.network.persistent:
                    self.call("NetworkService.DefineNetwork",
                              {"host": self.h, "xml": self.net_xml(n, self.bridge_name(0xFFE))})
                if not out.response.network.active:
                    self.must("NetworkService.StartNetwork", {"network": self.net_ref()}, f"start {n}")
            if out.ok:
                self.uuids["net"] = out.response.network.uuid

    # --- inventory and sweeps --------------------------------------------

    def _list(self, method: str, fields: dict, items: str) -> list:
        out_items, token = [], ""
        for _ in range(100):
            f = dict(fields, page_size=1000, page_token=token)
            out = self.call(method, f)
            if not out.ok:
                break
            out_items += list(getattr(out.response, items))
            token = out.response.next_page_token
            if not token:
                break
        return out_items

    def list_all(self, kinds: set = ALL_KINDS) -> dict[str, set]:
        """Names of every domain, pool, network; volumes of the pools the
        battery uses ("pool/vol"); snapshots of the fixture and sentinel
        domains ("dom/snap"). Only `kinds` are read (the rest are empty)."""
        doms, pools, nets, vols, snaps = set(), {}, set(), set(), set()
        if kinds & {"domain", "snapshot"}:
            doms = {d.name for d in self._list("DomainService.ListDomains", {"host": self.h}, "domains")}
        if kinds & {"pool", "volume"}:
            pools = {p.name: p for p in self._list("StorageService.ListStoragePools", {"host": self.h}, "pools")}
        if "network" in kinds:
            nets = {n.name for n in self._list("NetworkService.ListNetworks", {"host": self.h}, "networks")}
        if "volume" in kinds:
            for pn in pools:
                if pn.startswith(self.prefix) or pn == "default-pool":
                    for v in self._list("StorageService.ListStorageVolumes",
                                        {"pool": {"host": self.h, "name": pn}}, "volumes"):
                        vols.add(f"{pn}/{v.name}")
        if "snapshot" in kinds:
            for dn in doms:
                if dn.startswith(self.prefix) or dn == "test":
                    for s in self._list("SnapshotService.ListSnapshots",
                                        {"domain": {"host": self.h, "name": dn}}, "snapshots"):
                        snaps.add(f"{dn}/{s.name}")
        return {"domain": doms, "pool": set(pools), "network": nets, "volume": vols, "snapshot": snaps,
                "_pools": pools}

    def allowed(self) -> dict[str, set]:
        """What may exist: the start inventory, fixtures, sentinels."""
        p = self.prefix
        fx = {
            "domain": {self.names["dom_run"], self.names["dom_off"], f"{p}-keepdom"},
            "pool": {self.names["pool"], f"{p}-keeppool"},
            "network": {self.names["net"], f"{p}-keepnet"},
            "volume": {f"{self.names['pool']}/{self.names['vol']}", f"{p}-keeppool/{p}-keepvol",
                       f"default-pool/{p}-keepvol"},
            "snapshot": {f"{self.names['dom_off']}/{self.names['snap']}"},
        }
        return {k: self.inventory.get(k, set()) | fx[k] for k in fx}

    def sweep(self, kinds: set = ALL_KINDS, final: bool = False) -> list[str]:
        """Removes every object of these kinds that is neither in the start
        inventory nor a fixture or sentinel (with `final`, fixtures and
        sentinels too). Returns "kind name" of each object found."""
        now = self.list_all(kinds)
        allowed = {k: set(self.inventory.get(k, set())) for k in ALL_KINDS}
        if not final:
            allowed = self.allowed()
        # Objects a sweep could not remove before are not tried again (each
        # attempt on a domain stuck in a libvirt job costs 30 s); they are
        # reported once, and by leftovers() at the end.
        for st in self.stuck:
            k, name = st.split(" ", 1)
            allowed[k].add(name)
        if not (kinds & {"domain"}):
            now["domain"] = set()
        if not (kinds & {"pool"}):
            now["pool"] = set()
        found = []
        for s in sorted(now["snapshot"] - allowed["snapshot"]):
            dn, sn = s.split("/", 1)
            found.append(f"snapshot {s}")
            ref = {"domain": {"host": self.h, "name": dn}, "name": sn}
            if not self.call("SnapshotService.DeleteSnapshot", {"snapshot": ref}).ok:
                self.call("SnapshotService.DeleteSnapshot", {"snapshot": ref, "metadata_only": True})
        for d in sorted(now["domain"] - allowed["domain"]):
            found.append(f"domain {d}")
            ref = {"host": self.h, "name": d}
            self.call("DomainService.StopDomain", {"domain": ref})
            out = self.call("DomainService.UndefineDomain", {"domain": ref, "remove_managed_save": True,
                                                             "remove_snapshots_metadata": True})
            if not out.ok and out.code != "NOT_FOUND":
                self.call("DomainService.UndefineDomain", {"domain": ref})
        for v in sorted(now["volume"] - allowed["volume"]):
            pn, vn = v.split("/", 1)
            found.append(f"volume {v}")
            self.call("StorageService.DeleteStorageVolume",
                      {"volume": {"pool": {"host": self.h, "name": pn}, "name": vn}})
        for pn in sorted(now["pool"] - allowed["pool"]):
            found.append(f"pool {pn}")
            ref = {"host": self.h, "name": pn}
            p = now["_pools"][pn]
            if p.state == 3:
                for v in self._list("StorageService.ListStorageVolumes", {"pool": ref}, "volumes"):
                    self.call("StorageService.DeleteStorageVolume", {"volume": {"pool": ref, "name": v.name}})
            self.call("StorageService.StopStoragePool", {"pool": ref})
            # Its directory only when the battery made it (under pools/).
            if p.target_path.startswith(self.pools_dir + "/"):
                self.call("StorageService.DeleteStoragePool", {"pool": ref})
            self.call("StorageService.UndefineStoragePool", {"pool": ref})
        for n in sorted(now["network"] - allowed["network"]):
            found.append(f"network {n}")
            ref = {"host": self.h, "name": n}
            self.call("NetworkService.StopNetwork", {"network": ref})
            self.call("NetworkService.UndefineNetwork", {"network": ref})
        if "network" in kinds and self.driver != "test":
            found += self.sweep_bridges()
        return found

    def sweep_bridges(self) -> list[str]:
        """Bridges with the run's prefix that no network of this host uses
        (a real host shares the machine's network namespace: a network
        libvirt failed to create can leave its bridge behind). Deleted."""
        used = {n.bridge for n in self._list("NetworkService.ListNetworks", {"host": self.h}, "networks")}
        found = []
        for dev in sorted(os.listdir("/sys/class/net")):
            if dev.startswith(self.prefix) and dev not in used:
                found.append(f"bridge {dev}")
                subprocess.run(["ip", "link", "delete", dev], capture_output=True)
        return found

    def verify_sweep(self, found: list[str], kinds: set = ALL_KINDS) -> list[str]:
        """Which of `found` are still there after the sweep: they become
        `stuck` (returned, to be reported once)."""
        if not found:
            return []
        now = self.list_all(kinds)
        now["bridge"] = set(os.listdir("/sys/class/net"))
        still = [f for f in found if f.split(" ", 1)[1] in now[f.split(" ", 1)[0]]]
        self.stuck |= set(still)
        return still

    def leftovers(self) -> list[str]:
        """What is still there that was not at the start (after the final
        sweep): must be nothing. Also what of the start inventory vanished."""
        now = self.list_all()
        out = []
        for k in ("domain", "pool", "network", "volume", "snapshot"):
            for extra in sorted(now[k] - self.inventory.get(k, set())):
                out.append(f"left behind: {k} {extra}")
            for gone in sorted(self.inventory.get(k, set()) - now[k]):
                out.append(f"vanished: {k} {gone} (existed before the run)")
        if self.driver != "test":
            for dev in sorted(os.listdir("/sys/class/net")):
                if dev.startswith(self.prefix):
                    out.append(f"left behind: bridge {dev}")
        return out

    def teardown(self) -> list[str]:
        """Removes fixtures, sentinels and anything else of the run."""
        for _ in range(3):
            found = self.sweep(final=True)
            if not found:
                break
            time.sleep(0.2)
        return self.leftovers()
