"""One deployment's reports: each change of phase sent once, with the revisions it is about.

Why it exists: a reconcile pass says the same thing many times (every resync finds the
deployment still Running); the operator and the bucket should see a report only when
something changed: the phase, its message, the desired revision, or the revision that
actually runs. Messages are cut to the wire's bound here, and every report is logged.

What it must never do: send two equal reports in a row, or a message over its bound.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from fleet.contracts import DeploymentName, DeploymentState, DeviceId, Phase
from fleet.contracts.limits import truncate_message
from fleet.contracts.state import Health

logger = logging.getLogger("fleet.actors.agent.reconciler")  # where these lines always were


class PhaseReports:
    """Builds and sends one deployment's :class:`DeploymentState` reports, deduplicated."""

    def __init__(
        self,
        *,
        device: DeviceId,
        deployment: DeploymentName,
        send: Callable[[DeploymentState], None],
    ) -> None:
        self._device = device
        self._deployment = deployment
        self._send = send
        self._last: tuple[Phase, str | None, int, int | None, Health | None, int | None] | None
        self._last = None

    @property
    def phase(self) -> Phase | None:
        """The last phase reported (None before the first report)."""
        return self._last[0] if self._last is not None else None

    def report(
        self,
        phase: Phase,
        message: str | None,
        *,
        revision: int,
        running: int | None,
        health: Health | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Send ``phase`` for desired ``revision`` (``running``: what runs instead; the
        containers' ``health`` and ``exit_code``, when they say), unless it is what was
        sent last. Only Failed and Pulling carry a message."""
        if phase is not Phase.FAILED and phase is not Phase.PULLING:
            message = None
        if phase is not Phase.RUNNING and phase is not Phase.FAILED:
            health, exit_code = None, None
        message = truncate_message(message)
        key = (phase, message, revision, running, health, exit_code)
        if key == self._last:
            return
        self._last = key
        logger.info(
            "%s/%s: %s (revision %d%s)%s",
            self._device,
            self._deployment,
            phase.value,
            revision,
            f", revision {running} runs" if running is not None else "",
            (f", {health}" if health else "")
            + (f", exit code {exit_code}" if exit_code is not None else "")
            + (f": {message}" if message else ""),
        )
        self._send(
            DeploymentState(
                device_id=self._device,
                deployment=self._deployment,
                phase=phase,
                desired_revision=revision,
                message=message,
                updated_at=dt.datetime.now(dt.UTC),
                running_revision=running,
                health=health,
                exit_code=exit_code,
            )
        )
