"""A container spec's optional parts as podman's libpod ``SpecGenerator`` fields.

Why it exists: the create body of :mod:`.adapter` maps the score's name, image, command,
env, ports and restart policy; the optional parts of issue 14 (volumes, devices, host
network, user, working dir, entrypoint, labels, capabilities, health check, limits) map
here, each only when the score sets it, so a container of an older score is created
exactly as before.

The health check is written with podman's interval set to ``disable`` (no systemd timer):
the agent runs each check itself at the score's interval (``GET .../healthcheck``), so
health works alike on devices with and without systemd, and is never run twice.

What it must never do: let a score's labels replace the agent's owner labels, or write
a field the score did not ask for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fleet.contracts import ContainerSpec
from fleet.runtime.podman.port import DEPLOYMENT_LABEL, DEVICE_LABEL, volume_name

_NS: Final = 1_000_000_000
CPU_PERIOD: Final = 100_000
"""The CFS period (µs) CPU quotas are written against (podman's own default)."""


def extra_fields(spec: ContainerSpec, labels: Mapping[str, str]) -> dict[str, Any]:
    """The specgen fields for what ``spec`` sets beyond the basics; ``labels`` are the
    agent's (they name the device and deployment, so the volumes' podman names)."""
    body: dict[str, Any] = {}
    if spec.labels:
        body["labels"] = {**spec.labels, **labels}  # the agent's win (and are checked)
    named = [(v, v.name) for v in spec.volumes or () if v.name is not None]
    if named:
        device, deployment = labels[DEVICE_LABEL], labels[DEPLOYMENT_LABEL]
        body["volumes"] = [
            {
                "Name": volume_name(device, deployment, name),
                "Dest": v.path,
                "Options": ["ro"] if v.read_only else [],
            }
            for v, name in named
        ]
    binds = [v for v in spec.volumes or () if v.host_path is not None]
    if binds:  # host paths (privileged; checked by the agent before it gets here)
        body["mounts"] = [
            {"Type": "bind", "Source": v.host_path, "Destination": v.path,
             "Options": ["rbind", "ro"] if v.read_only else ["rbind"]}
            for v in binds
        ]  # fmt: skip
    if spec.devices:
        body["devices"] = [{"path": path} for path in spec.devices]
    if spec.host_network:
        body["netns"] = {"nsmode": "host"}
    if spec.privileged:
        body["privileged"] = True
    if spec.cap_add:
        body["cap_add"] = list(spec.cap_add)
    if spec.user is not None:
        body["user"] = spec.user
    if spec.working_dir is not None:
        body["work_dir"] = spec.working_dir
    if spec.entrypoint is not None:
        body["entrypoint"] = list(spec.entrypoint)
    body.update(_health_and_limits(spec))
    return body


def _health_and_limits(spec: ContainerSpec) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if spec.healthcheck is not None:
        check = spec.healthcheck
        body["healthconfig"] = {
            "Test": ["CMD", *check.command],
            "Interval": 0,  # no podman timer: the agent runs it (module doc)
            "Timeout": check.timeout_s * _NS,
            "Retries": check.retries,
            "StartPeriod": check.start_period_s * _NS,
        }
    limits: dict[str, Any] = {}
    memory = spec.memory_bytes
    if memory is not None:
        limits["memory"] = {"limit": memory}
    if spec.cpus is not None:
        limits["cpu"] = {"quota": max(1000, round(spec.cpus * CPU_PERIOD)), "period": CPU_PERIOD}
    if limits:
        body["resource_limits"] = limits
    return body
