"""``python -m fleet.devtools.simulated_agent --config FILE``: fleet-agent on a simulated runtime.

Why it exists: the local demo falls back to it where podman cannot run. It is the real
agent (the same config file, :class:`~fleet.actors.agent.app.AgentApp`, NATS traffic,
phases and heartbeats) with :class:`~fleet.devtools.simulated_runtime.SimulatedRuntime`
instead of the podman adapter, so the operator and ``fleetctl`` see a real device.
``--runtimes podman,kvm,kubernetes`` makes it a device of other kinds too: each type but
podman runs in memory (:class:`~fleet.devtools.simulated_workloads.SimulatedWorkloads`,
behind the same runtime port), and its device-info lists exactly those types.

What it must never do: be installed on a device (``fleet-agent`` is the shipped entry
point and never imports ``fleet.devtools``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import load_config
from fleet.actors.agent.runtimes.podman import PodmanWorkloads
from fleet.actors.agent.runtimes.registry import RuntimeRegistry
from fleet.contracts import DeviceId
from fleet.errors import ConfigError

from .simulated_runtime import SimulatedRuntime
from .simulated_workloads import SimulatedWorkloads

KINDS = ("podman", "kvm", "kubernetes")


def registry(
    kinds: list[str], *, runtime: SimulatedRuntime, device_id: DeviceId
) -> RuntimeRegistry:
    """One runtime per kind, in the order given (podman's over ``runtime``)."""
    return RuntimeRegistry(
        PodmanWorkloads(runtime=runtime, device_id=device_id)
        if kind == "podman"
        else SimulatedWorkloads(score_type=kind)
        for kind in kinds
    )


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad or len(set(kinds)) != len(kinds):
        raise argparse.ArgumentTypeError(
            f"--runtimes: some of {', '.join(KINDS)}, each once (got {text!r})"
        )
    return kinds


logger = logging.getLogger("fleet.agent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fleet-simulated-agent", description="fleet-agent on a simulated container runtime"
    )
    parser.add_argument("--config", type=Path, required=True, help="the agent's config file")
    parser.add_argument(
        "--runtimes",
        type=parse_kinds,
        default=["podman"],
        help="the score types it runs, comma-separated: podman,kvm,kubernetes (default podman)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("FLEET_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fleet-agent: config error: {exc}", file=sys.stderr)
        return 2
    runtime = SimulatedRuntime()
    app = AgentApp(
        config, runtime=runtime, loop_factory=uvloop.new_event_loop,
        runtimes=registry(args.runtimes, runtime=runtime, device_id=config.device_id),
    )  # fmt: skip
    try:
        app.start()
    except Exception:
        logger.exception("simulated fleet-agent could not start")
        app.stop()
        return 1
    return app.supervisor.run_until_signal()


if __name__ == "__main__":
    sys.exit(main())
