"""The kvm runtime's pure parts: the domain XML it renders, the marks it reads back
(hostile metadata refused whole), domain names, and the ``[kvm]`` config table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fleet.actors.agent.config import parse_config
from fleet.errors import ConfigError
from fleet.runtime.libvirt.domain_xml import read_marks, render
from fleet.runtime.libvirt.port import DomainSpec, Forward, MachineMarks, domain_name, parse_name

MARKS = MachineMarks(
    device="pi-01", deployment="web", machine="vm", revision=7, spec_hash="ab" * 32
)
BASE = 'device_id = "pi-01"\n[nats]\nurls = ["nats://127.0.0.1:4222"]\n'


def test_the_domain_xml_forwards_only_loopback_and_carries_the_marks() -> None:
    spec = DomainSpec(
        name="fleet.pi-01.web.vm.abababababab", marks=MARKS, memory_mib=96, vcpus=2,
        kernel=Path("/k"), initrd=Path("/i"), cmdline="console=ttyS0 a<b&c",
        disk=Path("/d/disk.qcow2"), seed=Path("/d/seed.iso"),
        forwards=(Forward(protocol="tcp", host_port=8080, guest_port=80),),
    )  # fmt: skip
    xml = render(spec, domain_type="qemu")
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert "hostfwd=tcp:127.0.0.1:8080-:80" in xml
    assert "a&lt;b&amp;c" in xml  # escaped, not injected
    assert '<memory unit="MiB">96</memory>' in xml
    metadata = root.find("metadata")
    assert metadata is not None
    [workload] = list(metadata)
    assert read_marks(ET.tostring(workload, encoding="unicode")) == MARKS


@pytest.mark.parametrize(
    "metadata",
    [
        "",
        "<workload>",
        "<workload><device>pi-01</device></workload>",
        "<workload><device>a</device><deployment>b</deployment><machine>c</machine>"
        "<revision>-1</revision><spec-hash>x</spec-hash></workload>",
        "<workload>" + "<x/>" * 2000 + "</workload>",
    ],
)
def test_metadata_that_is_not_ours_whole_is_refused(metadata: str) -> None:
    with pytest.raises(ValueError, match="metadata"):
        read_marks(metadata)


def test_a_domain_name_says_its_device_and_deployment() -> None:
    name = domain_name(device="pi-01", deployment="web", machine="vm", spec_hash="c" * 64)
    assert name == "fleet.pi-01.web.vm.cccccccccccc"
    assert parse_name(name, "pi-01") == ("web", "vm")
    assert parse_name(name, "pi-02") is None
    assert parse_name("fleet.pi-01.web", "pi-01") is None


def test_the_kvm_table_is_optional_and_validated() -> None:
    assert parse_config(BASE, where="t").kvm is None
    config = parse_config(BASE + '[kvm]\nuri = "qemu:///session"\n', where="t").kvm
    assert config is not None
    assert config.uri == "qemu:///session"
    assert config.cache(Path("/var/lib/fleet-agent")) == Path("/var/lib/fleet-agent/kvm")
    assert parse_config(BASE + "[kvm]\nenabled = false\n", where="t").kvm is None
    for bad, key in [
        ('[kvm]\nuri = "no uri"\n', "kvm.uri"),
        ('[kvm]\ncache_dir = "relative"\n', "kvm.cache_dir"),
        ('[kvm]\nenabled = "yes"\n', "kvm.enabled"),
        ("[kvm]\nspeed = 1\n", "kvm.speed"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_config(BASE + bad, where="t")
    with pytest.raises(ConfigError, match="key `kvm` must be a table"):
        parse_config(BASE.replace("[nats]", 'kvm = "on"\n[nats]'), where="t")
