"""Hostile bytes on every bucket, against the real operator and a real agent.

A property test with a real nats-server: each example writes a batch of hostile values
(random bytes, deep nesting, huge numbers, NUL, invalid UTF-8, duplicate keys, wrong
types, long strings, one field replaced) under hostile keys, under made-up devices' keys
and over a healthy device's own keys, on all four buckets. Nothing may kill an actor
(the suite's guard fails the test on any death) and nothing may change a neighbour: the
healthy Deployment stays 2/2 running, the agent keeps beating and keeps its good
deployment Running, and what it persisted stays valid, so a restart starts cleanly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import (
    ALL_BUCKETS,
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    Phase,
    decode_heartbeat,
    decode_score,
    decode_state,
    desired_state_key,
    device_heartbeat_key,
    device_state_key,
)
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.errors import ContractError
from fleet.runtime.actorkit import failfast
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from tests.fixtures.nats import NatsServer
from tests.operator.sim import SCORE, Fleet, eventually

from .hostile import KEY_TEXT, hostile_values, nested

pytestmark = [
    pytest.mark.timeout(600),
    # The hostile values are big on purpose (a 200 KB nesting); hypothesis warns on its repr.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SEL = {"matchLabels": {"role": "edge"}}
_subjects = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)


@st.composite
def batches(draw: st.DrawFn, *, own: list[str]) -> list[tuple[str, str, bytes]]:
    """(bucket, key, value) writes: hostile values under hostile, made-up and own keys."""
    writes = []
    for _ in range(draw(st.integers(min_value=4, max_value=12))):
        bucket = draw(st.sampled_from(ALL_BUCKETS))
        value = draw(hostile_values(bucket))
        key = draw(
            st.one_of(
                st.sampled_from(own),
                _subjects.map(lambda s: f"evil-{s}"),
                _subjects.map(lambda s: f"info.evil-{s}"),
                _subjects.map(lambda s: f"state.evil-{s}.web"),
                _subjects.map(lambda s: f"heartbeat.evil-{s}"),
                KEY_TEXT.filter(_is_subject),
            )
        )
        writes.append((bucket, key, value))
    return writes


def _is_subject(key: str) -> bool:
    """Only what NATS accepts as a KV key can be written at all."""
    parts = key.split(".")
    return bool(key) and all(p and p.isascii() and p.isprintable() and " " not in p
                             and "*" not in p and ">" not in p for p in parts)  # fmt: skip


def _write(
    bus: Bus, loop: EventLoopThread, writes: list[tuple[str, str, bytes]]
) -> dict[tuple[str, str], int]:
    """Write each value; return each (bucket, key)'s last stored revision."""
    revisions: dict[tuple[str, str], int] = {}

    async def go() -> None:
        for bucket, key, value in writes:
            try:
                revisions[bucket, key] = await bus.put(bucket, key, value)
            except Exception:  # the server refused it (too big): nothing to read then
                continue

    loop.run(go(), timeout=60)
    return revisions


def test_the_operator_survives_hostile_bytes_on_every_bucket(
    kube: Any, fleet: Fleet, start_operator: Callable[..., Any]
) -> None:
    fleet.join(["d1", "d2"], {"role": "edge"})
    # Liveness is not what this test is about: with the fixture's 2 s timeout, a loaded
    # machine took longer than that between the good beats and the check (the aggregate
    # then counted the devices unreachable, rightly). Only a deleted heartbeat key makes
    # them so here, and each attack writes a good beat after its batch.
    start_operator(liveness_timeout=600.0)
    kube.create_deployment("ns", "web", selector=SEL, score=SCORE)
    eventually(lambda: set(fleet.desired()) == {"d1.web", "d2.web"})
    fleet.report(["d1", "d2"], "web", Phase.RUNNING)
    eventually(lambda: kube.aggregate("ns", "web").get("running") == 2)
    good = kube.aggregate("ns", "web")
    markers = itertools.count()
    own = ["info.d1", "heartbeat.d1", "state.d1.web", "state.d2.web", "d1.other"]

    @EXAMPLES
    @given(writes=batches(own=own))
    def attack(writes: list[tuple[str, str, bytes]]) -> None:
        _write(fleet.bus, fleet.loop, writes)
        # A good write after the batch, in each bucket the operator reads: once these
        # show, everything before them was read too (one source actor per bucket).
        mark = f"mark-{next(markers)}"
        fleet.join([mark], {"role": "marker"})
        fleet.beat(["d1", "d2"])
        eventually(lambda: marker_mirrored(kube, mark), timeout=20)
        assert failfast.deaths() == []
        assert kube.aggregate("ns", "web") == good

    attack()
    # And the healthy devices still move the aggregate: the pipeline is alive.
    fleet.report(["d2"], "web", Phase.FAILED, message="still listening")
    eventually(lambda: kube.aggregate("ns", "web").get("failed") == 1, timeout=20)


def marker_mirrored(kube: Any, mark: str) -> bool:
    """The marker's Device resource exists: the index read its info, and so everything
    the device-info source delivered before it."""
    return mark in kube.devices()


# -- the agent ---------------------------------------------------------------------------


def _agent(nats: NatsServer, state_dir: Path, device: DeviceId) -> AgentApp:
    config = AgentConfig(
        device_id=device,
        labels={"site": "lab"},
        nats_urls=[nats.url],
        podman_socket="unix:///nonexistent",
        heartbeat_interval_s=0.3,
        state_dir=state_dir,
        resync_interval_s=1.0,
        stop_timeout_s=1.0,
    )
    app = AgentApp(
        config,
        runtime=SimulatedRuntime(),
        loop_factory=uvloop.new_event_loop,
        max_backoff=1.0,
        event_debounce=0.05,
    )
    app.start()
    return app


def test_an_agent_survives_hostile_bytes_on_its_own_keys(
    nats_server: NatsServer, bus: Bus, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    loop = event_loop_thread
    device = DeviceId(f"fz-{secrets.token_hex(3)}")
    state_dir = tmp_path / "state"
    good_key = desired_state_key(device, DeploymentName("good"))
    score = msgspec.json.encode(SCORE)
    revision = loop.run(bus.put(BUCKET_DESIRED_STATE, good_key, score), timeout=10)

    def state(deployment: str) -> Any:
        key = device_state_key(device, DeploymentName(deployment))
        entry = loop.run(bus.get(BUCKET_DEVICE_STATE, key), timeout=10)
        return None if entry is None else decode_state(entry.value)

    def seq() -> int:
        """The agent's last beat (-1 while the key holds a hostile value this test wrote)."""
        entry = loop.run(bus.get(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device)), timeout=10)
        try:
            return -1 if entry is None else decode_heartbeat(entry.value).seq
        except ContractError:
            return -1

    def phase(deployment: str) -> Phase | None:
        report = state(deployment)
        return None if report is None else report.phase

    app = _agent(nats_server, state_dir, device)
    try:
        eventually(lambda: phase("good") is Phase.RUNNING, timeout=20)
        own = [
            desired_state_key(device, DeploymentName("hostile")),
            desired_state_key(device, DeploymentName("other")),
            f"{device}.x",
            device_heartbeat_key(device),
        ]

        @EXAMPLES
        @given(writes=batches(own=own))
        def attack(writes: list[tuple[str, str, bytes]]) -> None:
            writes = [(b, k, v) for b, k, v in writes if b != BUCKET_DESIRED_STATE or k in own]
            writes.append((BUCKET_DESIRED_STATE, own[0], nested(1000)))  # the 2 KB that bricked
            last = _write(bus, loop, writes)[BUCKET_DESIRED_STATE, own[0]]
            before = seq()
            # The hostile deployment's last write is read and reported (Failed, unless the
            # bytes happen to make a valid score).
            eventually(
                lambda: (
                    (report := state("hostile")) is not None and report.desired_revision >= last
                ),
                timeout=20,
            )
            eventually(lambda: seq() >= max(before, 0) + 2, timeout=20)  # still beating
            good = state("good")
            assert good.phase is Phase.RUNNING
            assert good.desired_revision == revision
            assert failfast.deaths() == []

        attack()
    finally:
        assert app.stop(timeout=10) == []
    # Whatever it persisted is valid: a restart starts and converges, no boot loop.
    stored = msgspec.json.decode((state_dir / "desired-state.json").read_bytes())
    for name, entry in stored["entries"].items():
        try:
            decode_score(_b64(entry["value"]))
        except ContractError as exc:
            pytest.fail(f"the agent persisted an invalid desired value for {name}: {exc}")
    restarted = dt.datetime.now(dt.UTC)
    again = _agent(nats_server, state_dir, device)
    try:

        def beating_again() -> bool:
            entry = loop.run(
                bus.get(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(device)), timeout=10
            )
            return entry is not None and decode_heartbeat(entry.value).at > restarted

        eventually(lambda: beating_again() and phase("good") is Phase.RUNNING, timeout=20)
    finally:
        assert again.stop(timeout=10) == []
    asyncio.run(asyncio.sleep(0))  # nothing left pending on a loop of ours


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
