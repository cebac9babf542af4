"""Valid wire values, as Python structs and as the JSON dicts other languages would send."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fleet.contracts import (
    ContainerSpec,
    DeploymentName,
    DeploymentState,
    DeviceId,
    DeviceInfo,
    HeartbeatPayload,
    Inventory,
    Phase,
    PodmanScore,
    PortMapping,
)

AT = dt.datetime(2025, 3, 1, 12, 30, 5, 123000, tzinfo=dt.UTC)
AT_TEXT = "2025-03-01T12:30:05.123000Z"


def score() -> PodmanScore:
    return PodmanScore(
        containers=[
            ContainerSpec(
                name="web",
                image="127.0.0.1:5000/busybox:test",
                command=["httpd", "-f", "-p", "80"],
                env={"GREETING": "hello world", "EMPTY": ""},
                ports=[
                    PortMapping(host_port=8080, container_port=80),
                    PortMapping(host_port=5353, container_port=53, protocol="udp"),
                ],
                restart_policy="on-failure",
            ),
            ContainerSpec(name="sidecar", image="busybox"),
        ]
    )


def score_json() -> dict[str, Any]:
    return {
        "type": "podman",
        "containers": [
            {
                "name": "web",
                "image": "127.0.0.1:5000/busybox:test",
                "command": ["httpd", "-f", "-p", "80"],
                "env": {"GREETING": "hello world", "EMPTY": ""},
                "ports": [
                    {"host_port": 8080, "container_port": 80},
                    {"host_port": 5353, "container_port": 53, "protocol": "udp"},
                ],
                "restart_policy": "on-failure",
            },
            {"name": "sidecar", "image": "busybox"},
        ],
    }


def state() -> DeploymentState:
    return DeploymentState(
        device_id=DeviceId.try_new("pi-01"),
        deployment=DeploymentName.try_new("web"),
        phase=Phase.FAILED,
        desired_revision=42,
        message="image 127.0.0.1:5000/nope:1 not found in the registry",
        updated_at=AT,
    )


def state_json() -> dict[str, Any]:
    return {
        "device_id": "pi-01",
        "deployment": "web",
        "phase": "Failed",
        "desired_revision": 42,
        "message": "image 127.0.0.1:5000/nope:1 not found in the registry",
        "updated_at": AT_TEXT,
    }


def info() -> DeviceInfo:
    return DeviceInfo(
        device_id=DeviceId.try_new("pi-01"),
        labels={"site": "lab", "fleet.nationtech.io/tier": "edge", "empty": ""},
        inventory=Inventory(
            hostname="pi-01.lab",
            arch="aarch64",
            os="Debian GNU/Linux 12 (bookworm)",
            kernel="6.1.0-18-arm64",
            cpus=4,
            memory_bytes=8_000_000_000,
            runtime_name="podman",
            runtime_version="4.3.1",
        ),
        agent_version="0.1.0",
        updated_at=AT,
    )


def info_json() -> dict[str, Any]:
    return {
        "device_id": "pi-01",
        "labels": {"site": "lab", "fleet.nationtech.io/tier": "edge", "empty": ""},
        "inventory": {
            "hostname": "pi-01.lab",
            "arch": "aarch64",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "kernel": "6.1.0-18-arm64",
            "cpus": 4,
            "memory_bytes": 8_000_000_000,
            "runtime_name": "podman",
            "runtime_version": "4.3.1",
        },
        "agent_version": "0.1.0",
        "updated_at": AT_TEXT,
    }


def heartbeat() -> HeartbeatPayload:
    return HeartbeatPayload(device_id=DeviceId.try_new("pi-01"), at=AT, seq=7)


def heartbeat_json() -> dict[str, Any]:
    return {"device_id": "pi-01", "at": AT_TEXT, "seq": 7}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()
