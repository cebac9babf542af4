"""Every time budget a test asserts against, in one place.

A test waits for conditions, never for a fixed time; but some behaviours *are* about
time (a status change shows within a second, a stop is prompt, a refused request fails
at once instead of waiting for its timeout), and those tests assert a budget. They read
it from here, so that a loaded machine is handled in one place: ``FLEET_TEST_SLOWDOWN``
(default 1) multiplies every budget. Each budget is well above what an idle 2-core
machine measures, and stays green with two busy processes beside the suite (the check
the CI guidance asks for).
"""

from __future__ import annotations

import os
from typing import Final

SLOWDOWN: Final = float(os.environ.get("FLEET_TEST_SLOWDOWN", "1"))


def budget(seconds: float) -> float:
    """``seconds`` scaled for this machine's load (``FLEET_TEST_SLOWDOWN``)."""
    return seconds * SLOWDOWN


STATUS_AFTER_QUIET_S: Final = budget(1.0)
"""The first change after a quiet spell shows in a Deployment's status (status_delay
0.05 s plus a patch)."""

AGENT_STOP_S: Final = budget(5.0)
"""SIGTERM to a real fleet-agent process exiting (stop_timeout_s 2 plus teardown)."""

EVENT_STREAM_CLOSE_S: Final = budget(1.0)
"""Closing a podman event stream returns (its socket is shut down, not waited out)."""

UNREACHABLE_REPORTED_S: Final = budget(10.0)
"""fleetctl says NATS is unreachable (its connect timeout is 1 s)."""

NO_RESPONDERS_S: Final = budget(2.0)
"""A request nobody listens to fails with NoResponders, not its 10 s timeout."""

CLOSED_FAILS_WAITERS_S: Final = budget(5.0)
"""A lost connection fails every pending request of the lean client."""

UNTIL_SETTLED_RUN_S: Final = budget(90.0)
"""loadtest/run --until-settled stops once settled, well before its --duration of 120 s."""

CONVERGE_S: Final = budget(90.0)
"""A fleet of real processes, one of them just restarted after SIGKILL, converges."""
