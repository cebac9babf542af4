"""The VM pool's libvirt side: a dir storage pool, its volumes, and the pool's domains.

Why it exists: ``fleetctl vm`` (:mod:`fleet.provisioning.pool`) makes test devices as
libvirt domains whose disks are volumes of one dir pool (``harmony-fleet``): a
copy-on-write qcow2 over a cached guest image, and a NoCloud seed uploaded as a raw
volume. It reuses the kvm runtime's worker thread, timeouts and error translation
(:class:`~.adapter.LibvirtMachines`) and its domain XML (:func:`.domain_xml.render_domain`):
direct kernel boot, user-mode networking with forwards bound to 127.0.0.1 only.

A domain is the pool's when its metadata element (:data:`VM_NS`) names the pool; it
records the SSH port forwarded to the guest, the labels (for device setup) and whether
``create`` finished (``ready``): a domain not ready is what a crashed ``create`` left.

What it must never do: touch a domain that lacks the pool's metadata, or a volume
outside the pool it was given.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

import libvirt
import msgspec

from . import domain_xml
from .adapter import _STATES, DEFAULT_URI, LibvirtMachines
from .port import DomainFailed, DomainState, Forward, MachineShape

VM_NS: Final = "https://fleet.nationtech.io/vm/v1"
VM_PREFIX: Final = "fleetvm"
MAX_VM_METADATA: Final = 8192
MAX_LABELS: Final = 64
UPLOAD_CHUNK: Final = 1 << 20


class PoolVm(msgspec.Struct, frozen=True, kw_only=True):
    """One of the pool's domains, as libvirt reports it."""

    name: str
    state: DomainState
    pool: str
    ssh_port: int
    labels: dict[str, str]
    ready: bool
    forwards: tuple[Forward, ...] = ()


class VmMarks(msgspec.Struct, frozen=True, kw_only=True):
    """What a pool domain's metadata element says."""

    pool: str
    ssh_port: int
    labels: dict[str, str]
    ready: bool = False
    forwards: tuple[Forward, ...] = ()  # besides SSH: 127.0.0.1 ports to the guest's


def render_marks(marks: VmMarks, *, namespaced: bool = True) -> ET.Element:
    """The metadata element; ``namespaced=False`` for ``setMetadata``, which adds the
    namespace itself (and refuses an element that declares one)."""
    ns = f"{{{VM_NS}}}" if namespaced else ""
    if namespaced:
        ET.register_namespace(VM_PREFIX, VM_NS)
    vm = ET.Element(
        f"{ns}vm",
        {"pool": marks.pool, "ssh-port": str(marks.ssh_port), "ready": str(marks.ready).lower()},
    )
    for key, value in sorted(marks.labels.items()):
        label = ET.SubElement(vm, f"{ns}label", {"key": key})
        label.text = value
    for fwd in marks.forwards:
        ET.SubElement(
            vm, f"{ns}forward", {"host": str(fwd.host_port), "guest": str(fwd.guest_port)}
        )
    return vm


def _port(text: str | None) -> int:
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise ValueError(f"metadata port {text!r} is not a number")
    if not 0 < int(text) < 65536:
        raise ValueError(f"metadata port {text} is out of range")
    return int(text)


def read_vm_marks(text: str) -> VmMarks:
    """The marks in a metadata element; :class:`ValueError` unless it parses whole."""
    if not isinstance(text, str) or len(text) > MAX_VM_METADATA:
        raise ValueError("metadata too long")
    try:
        element = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"metadata is not XML: {exc}") from exc
    pool, port, ready = (element.get(k) for k in ("pool", "ssh-port", "ready"))
    if not pool or port is None or not (port.isascii() and port.isdigit()) or len(port) > 5:
        raise ValueError("metadata lacks the pool or the SSH port")
    if not 0 < int(port) < 65536:
        raise ValueError(f"metadata SSH port {port} is out of range")
    labels: dict[str, str] = {}
    forwards: list[Forward] = []
    children = list(element)
    if len(children) > MAX_LABELS:
        raise ValueError("metadata has too many labels and forwards")
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "forward":
            host, guest = _port(child.get("host")), _port(child.get("guest"))
            forwards.append(Forward(protocol="tcp", host_port=host, guest_port=guest))
            continue
        key = child.get("key")
        if tag != "label" or not key:
            raise ValueError("metadata has an element that is not a label or a forward")
        labels[key] = child.text or ""
    return VmMarks(
        pool=pool, ssh_port=int(port), labels=labels, ready=ready == "true",
        forwards=tuple(forwards),
    )  # fmt: skip


def _pool_xml(name: str, path: Path) -> str:
    pool = ET.Element("pool", {"type": "dir"})
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = str(path)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0755"
    return ET.tostring(pool, encoding="unicode")


def _volume_xml(
    name: str, *, capacity: int, fmt: str, backing: Path | None = None, backing_fmt: str = ""
) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", {"unit": "bytes"}).text = str(capacity)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", {"type": fmt})
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0644"
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = str(backing)
        ET.SubElement(store, "format", {"type": backing_fmt})
    return ET.tostring(vol, encoding="unicode")


def _no(exc: libvirt.libvirtError, *codes: int) -> bool:
    return exc.get_error_code() in codes


def _quiet(_ctx: object, _error: object) -> None:
    """libvirt's default handler prints every error on stderr, even those handled."""


class LibvirtFleetVms(LibvirtMachines):
    """The VM pool over one libvirtd (``uri``); every call bounded by ``timeout``.

    Constructing one silences libvirt's default error printer for the process: each
    error is raised (and said once, in fleet's words) instead."""

    def __init__(self, *, uri: str = DEFAULT_URI, timeout: float = 30.0) -> None:
        libvirt.registerErrorHandler(_quiet, None)
        super().__init__(uri=uri, timeout=timeout)

    # -- the storage pool ---------------------------------------------------------------

    def ensure_pool(self, name: str, path: Path) -> Path:
        """The dir pool ``name`` at ``path``, defined, built, started and autostarted."""

        def ensure(conn: libvirt.virConnect) -> Path:
            try:
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError as exc:
                if not _no(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    raise
                pool = conn.storagePoolDefineXML(_pool_xml(name, path), 0)
            found = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
            if Path(found) != path:
                raise DomainFailed(
                    f"libvirt pool {name} is at {found}, not {path}: set "
                    "HARMONY_FLEET_POOL_NAME to another name, or HARMONY_DATA_DIR to match"
                )
            if not pool.isActive():
                pool.build(0)  # the folder (kept if there)
                pool.create(0)
            if not pool.autostart():
                pool.setAutostart(1)
            return path

        return self._call(f"pool {name}", ensure)

    def remove_pool(self, name: str) -> None:
        """Stop and forget pool ``name`` and remove its (empty) folder; absent is fine."""

        def remove(conn: libvirt.virConnect) -> None:
            try:
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError as exc:
                if _no(exc, libvirt.VIR_ERR_NO_STORAGE_POOL):
                    return
                raise
            if pool.isActive():
                pool.destroy()
            pool.delete(0)
            pool.undefine()

        self._call(f"remove pool {name}", remove)

    def volumes(self, pool: str) -> list[str]:
        def read(conn: libvirt.virConnect) -> list[str]:
            found = conn.storagePoolLookupByName(pool)
            found.refresh(0)
            return sorted(found.listVolumes())

        return self._call(f"volumes of {pool}", read)

    def create_overlay(self, pool: str, name: str, *, backing: Path, capacity: int) -> Path:
        """A qcow2 volume ``name`` over ``backing`` (qcow2), copy-on-write."""
        xml = _volume_xml(
            name, capacity=capacity, fmt="qcow2", backing=backing, backing_fmt="qcow2"
        )

        def create(conn: libvirt.virConnect) -> Path:
            vol = conn.storagePoolLookupByName(pool).createXML(xml, 0)
            return Path(vol.path())

        return self._call(f"volume {name}", create)

    def upload_volume(self, pool: str, name: str, data: bytes) -> Path:
        """A raw volume ``name`` holding ``data`` (a seed ISO)."""
        xml = _volume_xml(name, capacity=len(data), fmt="raw")

        def upload(conn: libvirt.virConnect) -> Path:
            vol = conn.storagePoolLookupByName(pool).createXML(xml, 0)
            stream = conn.newStream(0)
            try:
                vol.upload(stream, 0, len(data), 0)
                for at in range(0, len(data), UPLOAD_CHUNK):
                    chunk = data[at : at + UPLOAD_CHUNK]
                    sent = 0
                    while sent < len(chunk):
                        sent += stream.send(chunk[sent:])
                stream.finish()
            except libvirt.libvirtError:
                stream.abort()
                raise
            return Path(vol.path())

        return self._call(f"upload {name}", upload)

    def delete_volume(self, pool: str, name: str) -> None:
        """Delete volume ``name`` of ``pool``; absent is not an error."""

        def delete(conn: libvirt.virConnect) -> None:
            try:
                vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
            except libvirt.libvirtError as exc:
                if _no(exc, libvirt.VIR_ERR_NO_STORAGE_VOL):
                    return
                raise
            vol.delete(0)

        self._call(f"delete volume {name}", delete)

    # -- the pool's domains -------------------------------------------------------------

    def define_vm(self, shape: MachineShape, marks: VmMarks) -> None:
        metadata = ET.Element("metadata")
        metadata.append(render_marks(marks))

        def define(conn: libvirt.virConnect) -> None:
            conn.defineXML(
                domain_xml.render_domain(shape, domain_type=self._type(conn), metadata=metadata)
            )

        self._call(f"define {shape.name}", define)

    def mark(self, name: str, marks: VmMarks) -> None:
        """Replace domain ``name``'s pool metadata (live and persistent)."""
        xml = ET.tostring(render_marks(marks, namespaced=False), encoding="unicode")

        def mark(conn: libvirt.virConnect) -> None:
            dom = conn.lookupByName(name)
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if dom.isActive():
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, VM_PREFIX, VM_NS, flags)

        self._call(f"mark {name}", mark)

    def domain_exists(self, name: str) -> bool:
        """Whether libvirt knows a domain ``name`` (the pool's or anyone's)."""

        def exists(conn: libvirt.virConnect) -> bool:
            try:
                conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if _no(exc, libvirt.VIR_ERR_NO_DOMAIN):
                    return False
                raise
            return True

        return self._call(f"look up {name}", exists)

    def vm(self, name: str, pool: str) -> PoolVm | None:
        """Domain ``name`` if it is ``pool``'s, else None (absent, or not the pool's)."""

        def read(conn: libvirt.virConnect) -> PoolVm | None:
            try:
                return _pool_vm(conn.lookupByName(name), pool)
            except libvirt.libvirtError as exc:
                if _no(exc, libvirt.VIR_ERR_NO_DOMAIN):
                    return None
                raise

        return self._call(f"look up {name}", read)

    def vms(self, pool: str) -> list[PoolVm]:
        def read(conn: libvirt.virConnect) -> list[PoolVm]:
            found = []
            for dom in conn.listAllDomains(0):
                try:
                    vm = _pool_vm(dom, pool)
                except libvirt.libvirtError as exc:
                    if _no(exc, libvirt.VIR_ERR_NO_DOMAIN):
                        continue  # gone meanwhile
                    raise
                if vm is not None:
                    found.append(vm)
            return sorted(found, key=lambda v: v.name)

        return self._call(f"domains of {pool}", read)

    def domain_kind(self) -> str:
        """``kvm`` or ``qemu`` (plain emulation): what :meth:`define_vm` will use."""
        return self._call("capabilities", self._type)


def _pool_vm(dom: Any, pool: str) -> PoolVm | None:
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, VM_NS, 0)
    except libvirt.libvirtError as exc:
        if _no(exc, libvirt.VIR_ERR_NO_DOMAIN_METADATA):
            return None
        raise
    try:
        marks = read_vm_marks(text)
    except ValueError:
        return None  # not written by us, whole
    if marks.pool != pool:
        return None
    state, _reason = dom.state()
    return PoolVm(
        name=dom.name(), state=_STATES.get(state, "other"), pool=marks.pool,
        ssh_port=marks.ssh_port, labels=marks.labels, ready=marks.ready,
        forwards=marks.forwards,
    )  # fmt: skip
