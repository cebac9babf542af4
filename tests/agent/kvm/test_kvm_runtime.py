"""The ``kvm`` runtime against the real libvirtd, beyond the conformance kit: what the
device's info says, health through the port forward, autostart, a guest powered off by
hand, make before break and break before make, and artifacts that cannot be had (each
``Failed`` or retried naming the score's field)."""

from __future__ import annotations

import logging
import time
import urllib.request
from typing import Any

import pytest

from fleet.contracts import BUCKET_DEVICE_INFO, decode_info, device_info_key
from tests.agent.conformance.adapters import KvmAdapter, dominfo, kvm_score, virsh
from tests.agent.conformance.kit import TIMEOUT, Bench, is_phase
from tests.fixtures.podman import free_port

KVM_LOGGER = "fleet.actors.agent.runtimes.kvm"


def guest_page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return str(response.read().decode())


def test_running_means_the_guest_answers_and_the_info_says_emulation(
    bench: Bench, kvm_adapter: KvmAdapter
) -> None:
    bench.start_agent()
    score = kvm_adapter.score(1)
    score["autostart"] = False
    revision = bench.put("web", score)
    bench.wait_report("web", is_phase("Running", revision), what="Running")
    # Running only once the guest's httpd answers through the user-mode forward
    assert "fleet kvm guest" in guest_page(kvm_adapter.ports[1])
    [name] = kvm_adapter._domains(bench.device, "web")
    info = dominfo(kvm_adapter.uri, name)
    assert info["Autostart"] == "disable"
    assert info["Persistent"] == "yes"
    entry = bench.loop.run(
        bench.bus.get(BUCKET_DEVICE_INFO, device_info_key(bench.device)), timeout=10
    )
    assert entry is not None
    device = decode_info(entry.value)
    assert device.runtimes == ["kvm"]
    assert device.inventory.runtime_name == "libvirt"
    assert "emulation" in device.inventory.runtime_version or "KVM" in (
        device.inventory.runtime_version
    )
    # said per runtime too, whichever is the device's main one (podman's, on most devices)
    assert device.runtime_versions == {"kvm": f"libvirt {device.inventory.runtime_version}"}


def test_a_guest_powered_off_by_hand_is_booted_again(bench: Bench, kvm_adapter: KvmAdapter) -> None:
    bench.start_agent()
    revision = bench.put("web", kvm_adapter.score(1))
    bench.wait_report("web", is_phase("Running", revision), what="Running")
    [(uuid, run_id)] = kvm_adapter.units(bench.device, "web").items()
    [name] = kvm_adapter._domains(bench.device, "web")
    mark = len(bench.seen("web"))
    virsh(kvm_adapter.uri, "destroy", name)  # the definition stays: the same domain boots
    after = bench.wait_units(
        "web", lambda u: set(u) == {uuid} and u[uuid] != run_id, what="booted again"
    )
    assert after[uuid] != run_id
    bench.wait_report("web", is_phase("Running", revision), since=mark, what="Running again")


def _replace(
    bench: Bench, kvm_adapter: KvmAdapter, first: dict[str, Any], second: dict[str, Any]
) -> tuple[int, int]:
    """Deploy ``first``, then ``second``; returns (the most units seen running at once
    during the replacement, the units after)."""
    bench.start_agent()
    revision = bench.put("web", first)
    bench.wait_report("web", is_phase("Running", revision), what="Running")
    revision = bench.put("web", second)
    most, deadline = 1, time.monotonic() + TIMEOUT
    while not any(is_phase("Running", revision)(s) for s in bench.seen("web")):
        most = max(most, len(kvm_adapter.units(bench.device, "web")))
        assert time.monotonic() < deadline, bench.seen("web")
        time.sleep(0.1)
    return most, len(kvm_adapter.units(bench.device, "web"))


def test_a_changed_spec_is_made_before_the_old_guest_is_removed(
    bench: Bench, kvm_adapter: KvmAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=KVM_LOGGER)
    most, after = _replace(bench, kvm_adapter, kvm_adapter.score(1), kvm_adapter.score(2))
    assert most == 2, "the old guest ran until the new one answered"
    assert after == 1
    assert "break before make" not in caplog.text


def test_a_changed_spec_on_the_same_host_port_breaks_before_make(
    bench: Bench, kvm_adapter: KvmAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=KVM_LOGGER)
    port = kvm_adapter.ports[1]
    first = kvm_score(kvm_adapter.guest, port=port, cmdline="console=ttyS0 quiet a")
    second = kvm_score(kvm_adapter.guest, port=port, cmdline="console=ttyS0 quiet b")
    most, after = _replace(bench, kvm_adapter, first, second)
    assert (most, after) == (1, 1)
    assert "break before make" in caplog.text
    assert "fleet kvm guest" in guest_page(port)


def _failed(bench: Bench, score: dict[str, Any], phase: str = "Failed") -> str:
    bench.start_agent()
    revision = bench.put("web", score)
    report = bench.wait_report("web", is_phase(phase, revision), what=phase)
    assert report.message is not None
    return report.message


def test_a_disk_whose_checksum_differs_is_failed_naming_disk_sha256(
    bench: Bench, kvm_adapter: KvmAdapter
) -> None:
    score = kvm_adapter.score(1)
    score["disk"]["sha256"] = "f" * 64
    message = _failed(bench, score)
    assert "disk.sha256" in message, message
    assert kvm_adapter.units(bench.device, "web") == {}
    assert kvm_adapter._domains(bench.device, "web") == []


def test_a_missing_local_file_is_failed_naming_its_url(
    bench: Bench, kvm_adapter: KvmAdapter
) -> None:
    score = kvm_adapter.score(1)
    score["disk"] = {"url": "/nonexistent/fleet/disk.qcow2"}
    message = _failed(bench, score)
    assert "disk.url" in message, message
    assert "/nonexistent/fleet/disk.qcow2" in message, message
    assert kvm_adapter._domains(bench.device, "web") == []


def test_an_unreachable_url_is_retried_naming_its_url(
    bench: Bench, kvm_adapter: KvmAdapter
) -> None:
    score = kvm_adapter.score(1)
    url = f"http://127.0.0.1:{free_port()}/vmlinuz"  # nothing listens there
    score["boot"]["kernel"] = {"url": url}
    bench.start_agent()
    revision = bench.put("web", score)
    report = bench.wait_report(
        "web",
        lambda s: s.desired_revision == revision and "retrying" in (s.message or ""),
        what="a retry",
    )
    assert report.phase.value == "Pulling"
    assert report.message is not None
    assert "boot.kernel.url" in report.message, report.message
    assert url in report.message, report.message
    assert kvm_adapter._domains(bench.device, "web") == []
