"""One score of each type, as a Deployment's ``spec.score`` says it."""

from __future__ import annotations

from typing import Any

PODMAN: dict[str, Any] = {
    "type": "podman",
    "containers": [{"name": "web", "image": "localhost/busybox:test"}],
}
KVM: dict[str, Any] = {
    "type": "kvm",
    "name": "vm",
    "disk": {"url": "/var/lib/fleet/images/tiny.qcow2"},
    "memory_mib": 64,
    "ports": [{"host_port": 18022, "guest_port": 22}],
}
KUBERNETES: dict[str, Any] = {
    "type": "kubernetes",
    "namespace": "shop",
    "manifests": [{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web"}]}}},
    }],
}  # fmt: skip
BY_TYPE: dict[str, dict[str, Any]] = {"podman": PODMAN, "kvm": KVM, "kubernetes": KUBERNETES}
