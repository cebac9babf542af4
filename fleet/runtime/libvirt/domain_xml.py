"""A :class:`~.port.DomainSpec` as libvirt domain XML, and the agent's marks read back.

Why it exists: the domain XML is libvirt's wire; building it with ElementTree escapes
every value, and reading the metadata element back is total (bounded, every field
checked) because anyone with access to libvirtd can write a domain's metadata.

The domain: direct kernel boot when a kernel is given; the overlay as a virtio disk; the
seed as an IDE CD-ROM labelled ``cidata`` (cloud-init's NoCloud); the serial console to a
file; no memory balloon; user-mode networking with the forwards bound to 127.0.0.1 only,
passed to qemu on its command line (see :mod:`.adapter` for why).

What it must never do: render a forward on another address than 127.0.0.1, or accept
marks that do not parse whole.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from .port import METADATA_NS, METADATA_PREFIX, DomainSpec, MachineMarks, MachineShape

NS: Final = METADATA_NS
QEMU_NS: Final = "http://libvirt.org/schemas/domain/qemu/1.0"
MAX_METADATA: Final = 4096
NET_ID: Final = "fleetnet0"
NET_SLOT: Final = "0x1e"  # past what libvirt assigns to the few devices of a fleet domain
_FIELDS: Final = ("device", "deployment", "machine", "revision", "spec-hash")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def render(spec: DomainSpec, *, domain_type: str) -> str:
    ET.register_namespace(METADATA_PREFIX, NS)
    metadata = ET.Element("metadata")
    workload = _sub(metadata, f"{{{NS}}}workload")
    marks = spec.marks
    values = (marks.device, marks.deployment, marks.machine, str(marks.revision), marks.spec_hash)
    for tag, value in zip(_FIELDS, values, strict=True):
        _sub(workload, f"{{{NS}}}{tag}", value)
    return render_domain(spec, domain_type=domain_type, metadata=metadata)


def render_domain(spec: MachineShape, *, domain_type: str, metadata: ET.Element) -> str:
    """The domain XML of ``spec`` with ``metadata`` (a ``<metadata>`` element) as is:
    the kvm runtime's marks (:func:`render`) or the VM pool's (``.fleet_vms``)."""
    ET.register_namespace("qemu", QEMU_NS)
    domain = ET.Element("domain", {"type": domain_type})
    _sub(domain, "name", spec.name)
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    domain.append(metadata)
    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", arch="x86_64")
    if spec.kernel is not None:
        _sub(os_, "kernel", str(spec.kernel))
        if spec.initrd is not None:
            _sub(os_, "initrd", str(spec.initrd))
        cmdline = spec.cmdline if spec.cmdline is not None else "console=ttyS0"
        _sub(os_, "cmdline", cmdline)
    else:
        _sub(os_, "boot", dev="hd")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")
    if spec.disk is not None:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="qcow2")
        _sub(disk, "source", file=str(spec.disk))
        _sub(disk, "target", dev="vda", bus="virtio")
    if spec.seed is not None:
        seed = _sub(devices, "disk", type="file", device="cdrom")
        _sub(seed, "driver", name="qemu", type="raw")
        _sub(seed, "source", file=str(spec.seed))
        _sub(seed, "target", dev="hdc", bus="ide")
        _sub(seed, "readonly")
    if spec.console_log is not None:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=str(spec.console_log))
        _sub(serial, "target", port="0")
    _sub(devices, "memballoon", model="none")
    netdev = f"user,id={NET_ID}" + "".join(
        f",hostfwd={f.protocol}:127.0.0.1:{f.host_port}-:{f.guest_port}" for f in spec.forwards
    )
    commandline = _sub(domain, f"{{{QEMU_NS}}}commandline")
    device = f"virtio-net-pci,netdev={NET_ID},addr={NET_SLOT}"
    for arg in ("-netdev", netdev, "-device", device):
        _sub(commandline, f"{{{QEMU_NS}}}arg", value=arg)
    return ET.tostring(domain, encoding="unicode")


def read_marks(text: str) -> MachineMarks:
    """The marks in a metadata element; :class:`ValueError` if it is not ours, whole."""
    if not isinstance(text, str) or len(text) > MAX_METADATA:
        raise ValueError("metadata too long")
    try:
        element = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"metadata is not XML: {exc}") from exc
    # libvirt hands the element back with or without its namespace: match local names
    children = {child.tag.rsplit("}", 1)[-1]: child.text for child in element}
    found: dict[str, str] = {}
    for tag in _FIELDS:
        value = children.get(tag)
        if not value or not value.strip():
            raise ValueError(f"metadata lacks {tag}")
        found[tag] = value.strip()
    revision = found["revision"]
    if not (revision.isascii() and revision.isdigit() and len(revision) <= 18):
        raise ValueError(f"metadata revision {revision!r} is not a number")
    return MachineMarks(
        device=found["device"],
        deployment=found["deployment"],
        machine=found["machine"],
        revision=int(revision),
        spec_hash=found["spec-hash"],
    )
