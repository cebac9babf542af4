"""A simulated device on the wire: what it writes is what fleet-agent writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    Phase,
    convert_score,
    decode_heartbeat,
    decode_info,
    decode_state,
    encode_score,
)
from fleet.devtools.simrollout import told_to_fail
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.watch import Watch
from loadtest.device import DeviceBehaviour, Measurement, SimulatedDevice
from loadtest.litebus import LiteBus
from tests.fixtures.nats import NatsServer

FAST = DeviceBehaviour(pending_s=0.01, pulling_s=0.01, starting_s=0.01, jitter=0.0)
EVERY_PHASE = DeviceBehaviour(pending_s=0.01, pulling_s=0.01, starting_s=0.01, coalesce=False)
ORDER = ["Pending", "Pulling", "Starting", "Running"]
SCORE = encode_score(
    convert_score({"type": "podman", "containers": [{"name": "web", "image": "busybox:1"}]})
)


class Reports:
    """Every device-state entry, in order, as the operator's watch would see them."""

    def __init__(self) -> None:
        self.entries: list[KvEntry] = []
        self._lock = threading.Lock()

    def on_entry(self, entry: KvEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def phases(self, key: str) -> list[tuple[str, int]]:
        with self._lock:
            states = [decode_state(e.value) for e in self.entries if e.key == key]
        return [(s.phase.value, s.desired_revision) for s in states]

    def wait_for(self, check: Callable[[], bool], *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened; reports: {self.entries}")
            time.sleep(0.02)


@pytest.fixture
def reports(bus: Bus, event_loop_thread: EventLoopThread) -> Iterator[Reports]:
    rec = Reports()
    holder: list[Watch] = []

    async def start() -> None:
        holder.append(bus.watch(BUCKET_DEVICE_STATE, ">", name="reports", on_entry=rec.on_entry))

    event_loop_thread.run(start(), timeout=5)
    yield rec
    event_loop_thread.run(holder[0].stop(), timeout=5)


@pytest.fixture(params=["nats-py", "lite"])
def device_bus(
    request: pytest.FixtureRequest,
    bus: Bus,
    nats_server: NatsServer,
    event_loop_thread: EventLoopThread,
) -> Iterator[Bus | LiteBus]:
    """The devices' connection: the agent's nats-py Bus, or the swarm's lean LiteBus."""
    if request.param == "nats-py":
        yield bus
        return
    lite = LiteBus(urls=[nats_server.url], name="device-wire")

    async def up() -> None:
        await lite.start()
        await lite.wait_connected(timeout=10)
        await lite.ensure_buckets()

    event_loop_thread.run(up(), timeout=15)
    yield lite
    event_loop_thread.run(lite.close(), timeout=10)


@pytest.fixture
def make_device(
    device_bus: Bus, event_loop_thread: EventLoopThread
) -> Iterator[Callable[..., SimulatedDevice]]:
    devices: list[SimulatedDevice] = []

    def make(
        device_id: str,
        behaviour: DeviceBehaviour = FAST,
        *,
        on_measure: Callable[[Measurement], None] | None = None,
    ) -> SimulatedDevice:
        device = SimulatedDevice(
            bus=device_bus,
            device_id=device_id,
            labels={"site": "lab"},
            behaviour=behaviour,
            on_measure=on_measure,
        )
        event_loop_thread.run(device.start(), timeout=10)
        devices.append(device)
        return device

    yield make
    for device in devices:
        event_loop_thread.run(device.stop(), timeout=10)


def put(loop: EventLoopThread, bus: Bus, key: str, value: bytes) -> int:
    return loop.run(bus.put(BUCKET_DESIRED_STATE, key, value), timeout=5)


def test_announces_itself_with_its_labels_and_beats_on_its_own(
    bus: Bus, event_loop_thread: EventLoopThread, make_device: Callable[..., SimulatedDevice]
) -> None:
    seen: list[Measurement] = []
    make_device("sim-1", DeviceBehaviour(heartbeat_interval_s=0.05), on_measure=seen.append)

    info = event_loop_thread.run(bus.get(BUCKET_DEVICE_INFO, "info.sim-1"), timeout=5)
    assert info is not None
    assert decode_info(info.value).labels == {"site": "lab"}
    deadline = time.monotonic() + 10
    seq = -1
    while seq < 3 and time.monotonic() < deadline:
        beat = event_loop_thread.run(bus.get(BUCKET_DEVICE_HEARTBEAT, "heartbeat.sim-1"), timeout=5)
        if beat is not None:
            payload = decode_heartbeat(beat.value)
            assert payload.device_id == "sim-1"
            seq = payload.seq
        time.sleep(0.05)
    assert seq >= 3
    assert any(m.name == "heartbeat" and m.error is None for m in seen)


def test_reports_every_phase_up_to_running_with_the_desired_revision(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    seen: list[Measurement] = []
    make_device("sim-2", EVERY_PHASE, on_measure=seen.append)
    revision = put(event_loop_thread, bus, "sim-2.web", SCORE)

    key = "state.sim-2.web"
    reports.wait_for(lambda: ("Running", revision) in reports.phases(key))
    assert reports.phases(key) == [
        ("Pending", revision),
        ("Pulling", revision),
        ("Starting", revision),
        ("Running", revision),
    ]
    assert [m.name for m in seen if m.kind == "device"] == ["desired->Running"]


def test_coalesced_reports_keep_their_order_and_end_running(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    make_device("sim-8", DeviceBehaviour(pending_s=0, pulling_s=0, starting_s=0))
    revision = put(event_loop_thread, bus, "sim-8.web", SCORE)

    key = "state.sim-8.web"
    reports.wait_for(lambda: ("Running", revision) in reports.phases(key))
    phases = [phase for phase, rev in reports.phases(key) if rev == revision]
    assert phases[-1] == "Running"
    assert phases == sorted(phases, key=ORDER.index)  # superseded ones skipped, never reordered


def test_a_new_revision_is_reported_and_a_deleted_entry_is_removed(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    make_device("sim-3")
    first = put(event_loop_thread, bus, "sim-3.web", SCORE)
    reports.wait_for(lambda: ("Running", first) in reports.phases("state.sim-3.web"))
    second = put(event_loop_thread, bus, "sim-3.web", SCORE)
    reports.wait_for(lambda: ("Running", second) in reports.phases("state.sim-3.web"))

    event_loop_thread.run(bus.delete(BUCKET_DESIRED_STATE, "sim-3.web"), timeout=5)
    reports.wait_for(lambda: reports.phases("state.sim-3.web")[-1][0] == "Removed")


def test_failure_rate_one_reports_failed_with_a_message(
    event_loop_thread: EventLoopThread,
    bus: Bus,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    failing = DeviceBehaviour(pending_s=0, pulling_s=0, starting_s=0, failure_rate=1.0)
    make_device("sim-4", failing)
    revision = put(event_loop_thread, bus, "sim-4.web", SCORE)

    reports.wait_for(lambda: ("Failed", revision) in reports.phases("state.sim-4.web"))
    entry = event_loop_thread.run(bus.get(BUCKET_DEVICE_STATE, "state.sim-4.web"), timeout=5)
    assert entry is not None
    state = decode_state(entry.value)
    assert state.phase is Phase.FAILED
    assert state.message is not None
    assert "busybox:1" in state.message


def test_a_malformed_desired_entry_fails_with_the_reason(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    make_device("sim-5")
    revision = put(event_loop_thread, bus, "sim-5.web", b'{"type": "helm"}')

    reports.wait_for(lambda: ("Failed", revision) in reports.phases("state.sim-5.web"))
    entry = event_loop_thread.run(bus.get(BUCKET_DEVICE_STATE, "state.sim-5.web"), timeout=5)
    assert entry is not None
    assert "malformed" in (decode_state(entry.value).message or "")


def test_entries_written_before_start_are_picked_up(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    revision = put(event_loop_thread, bus, "sim-6.web", SCORE)
    make_device("sim-6")
    reports.wait_for(lambda: ("Running", revision) in reports.phases("state.sim-6.web"))


def test_churn_silences_heartbeats_and_relabels(
    bus: Bus, event_loop_thread: EventLoopThread, make_device: Callable[..., SimulatedDevice]
) -> None:
    churn = DeviceBehaviour(
        silent_rate=1.0, relabel_rate=1.0, churn_after_s=0.2, relabel_to=("ring", "moved")
    )
    device = make_device("sim-7", churn)
    assert event_loop_thread.run(device.heartbeat(), timeout=5) is True

    deadline = time.monotonic() + 5
    while not device.silent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert event_loop_thread.run(device.heartbeat(), timeout=5) is False
    info = event_loop_thread.run(bus.get(BUCKET_DEVICE_INFO, "info.sim-7"), timeout=5)
    assert info is not None
    assert decode_info(info.value).labels == {"site": "lab", "ring": "moved"}


def test_rates_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_rate must be within"):
        DeviceBehaviour(failure_rate=1.5)


def test_a_device_told_to_fail_an_image_fails_it_every_time_and_runs_any_other(
    bus: Bus,
    event_loop_thread: EventLoopThread,
    make_device: Callable[..., SimulatedDevice],
    reports: Reports,
) -> None:
    bad = encode_score(
        convert_score({"type": "podman", "containers": [{"name": "web", "image": "busybox:bad"}]})
    )
    fails_bad = DeviceBehaviour(
        pending_s=0, pulling_s=0, starting_s=0, failing_image="busybox:bad", failing_image_rate=1.0
    )
    make_device("sim-9", fails_bad)
    key = "state.sim-9.web"

    first = put(event_loop_thread, bus, "sim-9.web", bad)
    reports.wait_for(lambda: ("Failed", first) in reports.phases(key))
    good = put(event_loop_thread, bus, "sim-9.web", SCORE)
    reports.wait_for(lambda: ("Running", good) in reports.phases(key))
    again = put(event_loop_thread, bus, "sim-9.web", bad)
    reports.wait_for(lambda: ("Failed", again) in reports.phases(key))
    entry = event_loop_thread.run(bus.get(BUCKET_DEVICE_STATE, key), timeout=5)
    assert entry is not None
    assert "busybox:bad" in (decode_state(entry.value).message or "")


def test_which_devices_fail_an_image_is_decided_by_their_ids_alone() -> None:
    ids = [f"dev-{n}" for n in range(2000)]
    failing = [d for d in ids if told_to_fail(d, "app:2", 0.1)]

    assert failing == [d for d in ids if told_to_fail(d, "app:2", 0.1)]  # same answer, always
    assert 140 <= len(failing) <= 260  # a tenth, give or take
    assert not any(told_to_fail(d, "app:2", 0.0) for d in ids)
    assert all(told_to_fail(d, "app:2", 1.0) for d in ids)
    assert failing != [d for d in ids if told_to_fail(d, "app:3", 0.1)]  # per image
