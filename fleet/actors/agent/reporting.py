"""What the device writes about itself: each deployment's state, its info, its heartbeat.

Why it exists: the device actor and every reconciler thread report through here, so the
wire's bounds are kept in one place. :class:`DeviceEntries` builds each ``(key, value)``
with the contracts' builders (:mod:`fleet.contracts.entries`); the simulated device of the
load swarm, the operator tests and the benchmarks builds its entries with the same class,
so what they write is what the agent writes. A report's message is cut to
:data:`~fleet.contracts.limits.MAX_MESSAGE_LENGTH` characters by the builder; here a
report whose *encoded* form is still over the device-state bound (a message of 4,096
characters that each encode to six bytes, like the control characters a container can
print) is cut further rather than dropped. Every heartbeat names this run of the agent
(``instance_id``, random at start), so two processes beating under one device id show.

What it must never do: raise on a reconciler's thread (a report that cannot be encoded
is logged and shortened, never an exception), block (the publisher only schedules), or
do I/O in :class:`DeviceEntries` (it only builds values).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence

from fleet import __version__
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    AgentHealth,
    DeploymentName,
    DeploymentState,
    DeviceId,
    Inventory,
    Phase,
    heartbeat_entry,
    info_entry,
    report_entry,
)
from fleet.contracts.info import DEFAULT_RUNTIMES
from fleet.contracts.limits import truncate_message
from fleet.contracts.state import Health
from fleet.errors import ContractError
from fleet.runtime.host.inventory import read_inventory
from fleet.runtime.nats.publisher import PublisherPort

logger = logging.getLogger(__name__)

_TRIES = (None, 1024, 256, 0)  # the message as it is, then cut to these lengths

Entry = tuple[str, bytes]
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def malformed_message(deployment: str, exc: ContractError) -> str:
    """The ``Failed`` message for a desired entry that is not a valid score: it names the
    deployment and, through ``exc``, the offending field."""
    text = f"the desired state of '{deployment}' is malformed: {exc}"
    return truncate_message(text) or text


class DeviceEntries:
    """The entries one run of one device writes about itself, as ``(key, value)``.

    ``heartbeat`` counts (``seq`` from 0), so one instance serves one thread; ``info``
    and ``report`` keep no state. ``at`` defaults to ``clock()``.
    """

    __slots__ = ("_clock", "_seq", "device_id", "instance_id")

    def __init__(
        self, *, device_id: DeviceId, instance_id: str | None, clock: Clock = utc_now
    ) -> None:
        self.device_id = device_id
        self.instance_id = instance_id
        self._clock = clock
        self._seq = 0

    def info(
        self,
        *,
        labels: Mapping[str, str],
        inventory: Inventory,
        agent_version: str = __version__,
        at: dt.datetime | None = None,
        runtimes: Sequence[str] | None = None,
        runtime_versions: Mapping[str, str] | None = None,
    ) -> Entry:
        """``runtimes``: the score types the device runs (None: left out, as an older
        agent leaves it out); ``runtime_versions``: what each drives, in words."""
        return info_entry(
            device=self.device_id,
            labels=labels,
            inventory=inventory,
            agent_version=agent_version,
            at=self._clock() if at is None else at,
            runtimes=runtimes,
            runtime_versions=runtime_versions,
        )

    def heartbeat(
        self, *, at: dt.datetime | None = None, health: AgentHealth | None = None
    ) -> Entry:
        seq, self._seq = self._seq, self._seq + 1
        return heartbeat_entry(
            device=self.device_id,
            at=self._clock() if at is None else at,
            seq=seq,
            instance_id=self.instance_id,
            health=health,
        )

    def report(
        self,
        *,
        deployment: DeploymentName,
        phase: Phase,
        desired_revision: int,
        message: str | None = None,
        running_revision: int | None = None,
        at: dt.datetime | None = None,
        health: Health | None = None,
        exit_code: int | None = None,
    ) -> Entry | None:
        """A report; one too large encoded has its message shortened, or is ``None``."""
        when = self._clock() if at is None else at
        error: ContractError | None = None
        # One call site and no closure: a closure per report (a function and its cells for
        # the collector) made the load swarm spend a fifth more CPU on its reports.
        for length in _TRIES:
            try:
                return report_entry(
                    device=self.device_id,
                    deployment=deployment,
                    phase=phase,
                    desired_revision=desired_revision,
                    at=when,
                    message=message if length is None else _shortened(message, length),
                    running_revision=running_revision,
                    health=health,
                    exit_code=exit_code,
                )
            except ContractError as exc:
                if error is None:
                    error = exc
                    logger.warning(
                        "%s/%s: report too large (%s); shortening its message",
                        self.device_id,
                        deployment,
                        exc,
                    )
        logger.error("%s/%s: report dropped: %s", self.device_id, deployment, error)
        return None


def _shortened(message: str | None, length: int) -> str | None:
    return (message or "")[:length].encode("ascii", "replace").decode() if length else None


class DeviceReporter:
    """Thread-safe: ``publish_state`` is called on reconciler threads."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        instance_id: str,
        publisher: PublisherPort,
        clock: Clock = utc_now,
    ) -> None:
        self._entries = DeviceEntries(device_id=device_id, instance_id=instance_id, clock=clock)
        self.instance_id = instance_id
        self._publisher = publisher

    def publish_state(self, state: DeploymentState) -> None:
        entry = self._entries.report(
            deployment=state.deployment,
            phase=state.phase,
            desired_revision=state.desired_revision,
            message=state.message,
            running_revision=state.running_revision,
            at=state.updated_at,
            health=state.health,
            exit_code=state.exit_code,
        )
        if entry is not None:
            self._publisher.publish(BUCKET_DEVICE_STATE, *entry)

    def publish_info(
        self,
        *,
        labels: Mapping[str, str],
        runtime_name: str,
        runtime_version: str,
        runtimes: Sequence[str] = DEFAULT_RUNTIMES,
        runtime_versions: Mapping[str, str] | None = None,
    ) -> None:
        """``runtimes``: the score types the device runs (the device actor says which),
        ``runtime_versions`` what each drives, in words."""
        inventory = read_inventory(runtime_name=runtime_name, runtime_version=runtime_version)
        entry = self._entries.info(
            labels=labels, inventory=inventory, runtimes=runtimes,
            runtime_versions=runtime_versions,
        )  # fmt: skip
        self._publisher.publish(BUCKET_DEVICE_INFO, *entry)

    def heartbeat(self, *, health: AgentHealth | None = None) -> None:
        entry = self._entries.heartbeat(health=health)
        self._publisher.publish(BUCKET_DEVICE_HEARTBEAT, *entry, replay=False)
