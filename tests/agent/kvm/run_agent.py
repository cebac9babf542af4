"""``python -m tests.agent.kvm.run_agent CONFIG``: the agent as ``fleet-agent`` wires it
for a config with ``[kvm]`` (podman's runtime over the simulated one, so no podman is
needed), so that a test can SIGKILL a whole process mid-fetch or mid-boot."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import load_config
from fleet.cli.agent import _add_kvm
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.actorkit import failfast


def main() -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(Path(sys.argv[1]))
    app = AgentApp(
        config, runtime=SimulatedRuntime(), loop_factory=uvloop.new_event_loop, max_backoff=1.0
    )
    _add_kvm(app, config)
    failfast.install(app.supervisor.fail)
    app.start()
    return app.supervisor.run_until_signal()


if __name__ == "__main__":
    sys.exit(main())
