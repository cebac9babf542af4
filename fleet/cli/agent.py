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
    if config.kubernetes is not None:
        try:
            _add_kubernetes(app, config)
        except ConfigError as exc:
            print(f"fleet-agent: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if config.kvm is not None:
        try:
            _add_kvm(app, config)
        except ConfigError as exc:
            print(f"fleet-agent: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
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


def _add_kubernetes(app: AgentApp, config: AgentConfig) -> None:
    """``[kubernetes]``: the device also runs ``kubernetes`` scores, on the cluster of its
    kubeconfig (docs/runtimes.md, "kubernetes"); podman's runtime stays the main one."""
    from fleet.actors.agent.runtimes.kubernetes import KubernetesWorkloads
    from fleet.actors.agent.runtimes.podman import PodmanWorkloads
    from fleet.actors.agent.runtimes.registry import RuntimeRegistry
    from fleet.runtime.host.container_files import device_files
    from fleet.runtime.kube.cluster.client import KubeCluster
    from fleet.runtime.kube.config import make_api_client

    kube = config.kubernetes
    assert kube is not None
    api = make_api_client(kubeconfig=str(kube.kubeconfig), context=kube.context)
    cluster = KubeCluster(api, field_manager=kube.field_manager)
    app.supervisor.add_cleanup("kubernetes client", cluster.close)
    app.runtimes = RuntimeRegistry(
        [
            PodmanWorkloads(
                runtime=app.runtime, device_id=config.device_id,
                stop_timeout=config.stop_timeout_s, tally=app.tally,
                files=device_files(config.state_dir),
            ),
            KubernetesWorkloads(
                cluster=cluster, device_id=config.device_id, allowed=config.allow_privileges
            ),
        ]
    )  # fmt: skip


def _add_kvm(app: AgentApp, config: AgentConfig) -> None:
    """``[kvm]``: the device also runs ``kvm`` scores (virtual machines) through libvirt
    (docs/runtimes.md, "kvm"); it joins the runtimes already there (podman's the main one)."""
    from fleet.actors.agent.runtimes.kvm import KvmWorkloads
    from fleet.actors.agent.runtimes.podman import PodmanWorkloads
    from fleet.actors.agent.runtimes.registry import RuntimeRegistry
    from fleet.runtime.host.container_files import device_files
    from fleet.runtime.libvirt.files import LocalMachineFiles

    try:
        from fleet.runtime.libvirt.adapter import LibvirtMachines
    except ImportError as exc:  # the kvm extra is not installed
        raise ConfigError(
            f"[kvm] needs libvirt's Python binding ({exc}): pip install 'fleet[kvm]' "
            "(it builds against libvirt-dev), or remove the [kvm] table"
        ) from exc

    kvm = config.kvm
    assert kvm is not None
    machines = LibvirtMachines(uri=kvm.uri)
    app.supervisor.add_cleanup("libvirt client", machines.close)
    present = list(app.runtimes) if app.runtimes is not None else [
        PodmanWorkloads(
            runtime=app.runtime, device_id=config.device_id,
            stop_timeout=config.stop_timeout_s, tally=app.tally,
            files=device_files(config.state_dir),
        )
    ]  # fmt: skip
    try:
        files = LocalMachineFiles(kvm.cache(config.state_dir), artifact_dirs=kvm.artifact_dirs)
    except OSError as exc:
        raise ConfigError(f"kvm.cache_dir {kvm.cache(config.state_dir)}: {exc}") from exc
    app.runtimes = RuntimeRegistry(
        [*present, KvmWorkloads(machines=machines, files=files, device_id=config.device_id)]
    )


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
