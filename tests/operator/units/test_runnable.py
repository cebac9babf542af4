"""Which targets run a score's type (:mod:`fleet.actors.operator.runnable`), plainly."""

from __future__ import annotations

from fleet.actors.operator.runnable import UNRUNNABLE_MAX, Runnability, score_type
from fleet.contracts import DeviceId, convert_score, encode_score

PODMAN = encode_score(convert_score(
    {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
))  # fmt: skip
KVM = encode_score(convert_score({"type": "kvm", "disk": {"url": "/images/tiny.qcow2"}}))
A, B, C = DeviceId("a"), DeviceId("b"), DeviceId("c")


def test_the_type_is_read_from_the_bytes_and_garbage_reads_as_none() -> None:
    assert score_type(PODMAN) == "podman"
    assert score_type(KVM) == "kvm"
    assert score_type(b"not json") is None
    assert score_type(b'{"type": 7}') is None
    assert score_type(b"[]") is None


def test_a_plain_score_every_target_runs_needs_no_gate() -> None:
    runs = Runnability()
    runs.targets({A: ("podman",), B: ("podman", "kvm")})
    runs.seed(PODMAN)
    assert runs.gate(None, PODMAN) is None
    assert runs.unrunnable() == []
    assert runs.unrunnable_count == 0


def test_a_target_without_the_runtime_gets_none_and_is_listed() -> None:
    runs = Runnability()
    runs.targets({A: ("podman",), B: ("podman", "kvm")})
    runs.seed(KVM)
    gate = runs.gate(None, KVM)
    assert gate is not None
    assert gate(A, None) is None
    assert gate(B, None) is KVM
    assert runs.unrunnable() == [
        {"device": "a", "reason": "its device-info lists no 'kvm' runtime (it runs: podman)"}
    ]
    # a device whose runtimes are unknown reads as podman only
    assert gate(C, None) is None


def test_gaining_the_runtime_unlists_and_losing_it_lists_again() -> None:
    runs = Runnability()
    runs.targets({A: ("podman",)})
    runs.seed(KVM)
    assert runs.targets({A: ("podman", "kvm")}) == [A]
    assert runs.unrunnable_count == 0
    assert runs.gate(None, KVM) is None
    assert runs.targets({A: ("podman", "kvm")}) == []  # unchanged: nothing to do
    runs.targets({A: ("kubernetes",)})
    assert [u["device"] for u in runs.unrunnable()] == ["a"]
    runs.targets({}, removed=[A])
    assert runs.unrunnable_count == 0


def test_a_rollout_value_of_another_type_is_gated_too() -> None:
    runs = Runnability()
    runs.targets({A: ("podman",)})
    runs.seed(PODMAN)  # the new revision: podman; the rule still gives the old kvm one
    gate = runs.gate(lambda _device, _entry: KVM, PODMAN)
    assert gate is not None
    assert gate(A, None) is None
    assert runs.unrunnable_count == 1
    later = runs.gate(lambda _device, _entry: PODMAN, PODMAN)
    assert later is not None
    assert later(A, KVM) is PODMAN
    assert runs.unrunnable_count == 0  # given the podman one: no longer listed


def test_the_list_is_bounded_and_sorted() -> None:
    runs = Runnability()
    runs.targets({DeviceId(f"d{i:03d}"): ("podman",) for i in range(50)})
    runs.seed(KVM)
    listed = runs.unrunnable()
    assert len(listed) == UNRUNNABLE_MAX
    assert [u["device"] for u in listed] == [f"d{i:03d}" for i in range(UNRUNNABLE_MAX)]
    assert runs.unrunnable_count == 50
