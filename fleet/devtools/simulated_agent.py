"""``python -m fleet.devtools.simulated_agent --config FILE``: fleet-agent on a simulated runtime.

Why it exists: the local demo falls back to it where podman cannot run. It is the real
agent (the same config file, :class:`~fleet.actors.agent.app.AgentApp`, NATS traffic,
phases and heartbeats) with :class:`~fleet.devtools.simulated_runtime.SimulatedRuntime`
instead of the podman adapter, so the operator and ``fleetctl`` see a real device.

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
from fleet.errors import ConfigError

from .simulated_runtime import SimulatedRuntime

logger = logging.getLogger("fleet.agent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fleet-simulated-agent", description="fleet-agent on a simulated container runtime"
    )
    parser.add_argument("--config", type=Path, required=True, help="the agent's config file")
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
    app = AgentApp(config, runtime=SimulatedRuntime(), loop_factory=uvloop.new_event_loop)
    try:
        app.start()
    except Exception:
        logger.exception("simulated fleet-agent could not start")
        app.stop()
        return 1
    return app.supervisor.run_until_signal()


if __name__ == "__main__":
    sys.exit(main())
