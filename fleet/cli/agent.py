"""``fleet-agent``: the program every device runs.

Usage: ``fleet-agent --config /etc/fleet-agent.toml`` (or ``FLEET_AGENT_CONFIG``).
A missing or invalid config exits with code 2 and one line naming the file, the key
and what was wrong. SIGHUP re-reads the config and republishes the device's info if
its labels changed; SIGTERM/SIGINT stop the agent and leave the containers running.

uvloop is chosen here, at the entry point, and nowhere else.

What it must never do: stop the device's containers when the agent stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig, load_config
from fleet.errors import ConfigError
from fleet.runtime.actorkit import failfast
from fleet.runtime.aiokit.loop import hush_tls_eof_warning

logger = logging.getLogger("fleet.agent")

ENV_CONFIG = "FLEET_AGENT_CONFIG"
EXIT_CONFIG = 2


def _config_path(argv: list[str] | None) -> Path:
    parser = argparse.ArgumentParser(prog="fleet-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help=f"config file (default: ${ENV_CONFIG})")
    args = parser.parse_args(argv)
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get(ENV_CONFIG)
    if not env:
        raise ConfigError(f"no config file: pass --config PATH or set {ENV_CONFIG}")
    return Path(env)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("FLEET_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    hush_tls_eof_warning()
    try:
        path = _config_path(argv)
        config = load_config(path)
    except ConfigError as exc:
        print(f"fleet-agent: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    import uvloop

    from fleet.runtime.podman.adapter import PodmanRuntime

    runtime = PodmanRuntime(url=config.podman_socket)
    app = AgentApp(config, runtime=runtime, loop_factory=uvloop.new_event_loop)
    if config.metrics_address is not None:
        try:
            _serve_metrics(app, config.metrics_address)
        except ConfigError as exc:
            print(f"fleet-agent: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    def reload(signum: int, frame: FrameType | None) -> None:
        try:
            fresh: AgentConfig = load_config(path)
        except ConfigError as exc:
            logger.error("SIGHUP: keeping the running config: %s", exc)  # noqa: TRY400
            return
        logger.info("SIGHUP: labels now %s", fresh.labels)
        app.reload_labels(fresh.labels)

    signal.signal(signal.SIGHUP, reload)
    failfast.install(app.supervisor.fail)  # an actor that dies stops the agent: exit 70
    app.supervisor.catch_signals()  # its actors work as they start: a SIGTERM then is a stop
    try:
        app.start()
    except Exception:
        logger.exception("fleet-agent could not start")
        app.stop()
        return 1
    code = app.supervisor.run_until_signal()
    runtime.close()
    return code


def _serve_metrics(app: AgentApp, address: tuple[str, int]) -> None:
    """``[metrics] address``: the agent's /metrics, /healthz and /readyz (ready: connected
    to NATS; the agent runs its workloads either way)."""
    from fleet.runtime.prometheus.agent_metrics import AgentMetrics
    from fleet.runtime.prometheus.endpoint import HttpEndpoint

    def connected() -> bool:
        return app.bus is not None and app.bus.connected

    metrics = AgentMetrics(health=app.tally.health, connected=connected)
    app.tally.observe(metrics)
    host, port = address
    endpoint = HttpEndpoint(
        host=host, port=port, registry=metrics.registry, alive=lambda: None,
        ready=lambda: None if connected() else "not connected to NATS",
    )  # fmt: skip
    try:
        endpoint.start()
    except OSError as exc:
        raise ConfigError(f"metrics.address {host}:{port}: {exc.strerror or exc}") from exc
    app.supervisor.add_cleanup("http endpoint", endpoint.stop)
    shown = f"[{host}]" if ":" in host else host
    logger.info(
        "serving /metrics, /healthz and /readyz on http://%s:%d", shown, endpoint.address[1]
    )


if __name__ == "__main__":
    sys.exit(main())
