"""The runtimes the kit runs against today, each behind :class:`~.kit.RuntimeAdapter`.

* :class:`PodmanAdapter`: the real podman runtime (``PodmanRuntime`` over the private
  podman world of ``tests/fixtures/podman.py``, its local registry and busybox image);
* :class:`SimulatedAdapter`: the simulated runtime of the demo and the load swarm
  (``fleet/devtools/simulated_runtime.py``): the agent's logic over containers in memory.

* :class:`KubernetesAdapter`: the ``kubernetes`` runtime over the Kubernetes API
  emulator (``fleet/devtools/kube_emulator.py``) with its workload controller
  (``fleet/devtools/kube_workloads.py``): a unit is an applied Deployment.

* :class:`KvmAdapter`: the ``kvm`` runtime over the real system libvirtd (plain
  emulation here) with the tiny guest of ``tests/fixtures/kvm.py``: a unit is a domain.

A new runtime adds its adapter here: how to start an agent with it, a valid score and
a bad one of its type, what runs, and how a person breaks it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.actors.agent.runtimes.kube_objects import owner_labels as kube_owner_labels
from fleet.actors.agent.runtimes.kubernetes import KubernetesWorkloads
from fleet.actors.agent.runtimes.kvm import KvmWorkloads
from fleet.actors.agent.runtimes.registry import RuntimeRegistry
from fleet.contracts import DeviceId
from fleet.devtools.kube_emulator import KubeEmulator
from fleet.devtools.kube_workloads import WorkloadController
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.runtime.kube.cluster.client import KubeCluster
from fleet.runtime.kube.cluster.port import Kind
from fleet.runtime.kube.config import make_api_client
from fleet.runtime.libvirt.adapter import LibvirtMachines
from fleet.runtime.libvirt.files import LocalMachineFiles
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.podman.port import owner_labels
from tests.agent.conftest import httpd_score
from tests.fixtures.kvm import Guest
from tests.fixtures.podman import PodmanEnv, free_port

AGENT_OPTIONS: dict[str, Any] = {"max_backoff": 1.0, "event_debounce": 0.1}
BAD_IMAGE = "Not An Image"  # outside the OCI reference grammar


class PodmanAdapter:
    name = "podman"

    def __init__(self, podman: PodmanEnv) -> None:
        self.podman = podman
        self.port = free_port()

    def start_agent(self, config: AgentConfig) -> AgentApp:
        config = msgspec.structs.replace(config, podman_socket=self.podman.socket_url)
        app = AgentApp(
            config,
            runtime=PodmanRuntime(url=self.podman.socket_url),
            loop_factory=uvloop.new_event_loop,
            **AGENT_OPTIONS,
        )
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []
        assert isinstance(app.runtime, PodmanRuntime)
        app.runtime.close()

    def score(self, variant: int) -> dict[str, Any]:
        return httpd_score(image=self.podman.image, port=self.port, env={"V": str(variant)})

    def bad_score(self) -> tuple[dict[str, Any], str]:
        return httpd_score(image=BAD_IMAGE, port=self.port), "containers[0].image"

    def _owned(self, device: DeviceId, deployment: str) -> list[dict[str, Any]]:
        args = ["ps", "-a", "--format", "json"]
        for key, value in owner_labels(device, deployment).items():
            args += ["--filter", f"label={key}={value}"]
        found: list[dict[str, Any]] = msgspec.json.decode(self.podman.podman(*args).stdout or "[]")
        return found

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        return {
            c["Id"]: str(c.get("StartedAt"))
            for c in self._owned(device, deployment)
            if c.get("State") == "running"
        }

    def tamper(self, device: DeviceId, deployment: str) -> None:
        [container, *_] = self._owned(device, deployment)
        self.podman.podman("rm", "-f", "-t", "0", container["Id"])


class SimulatedAdapter:
    name = "simulated"

    def __init__(self) -> None:
        self.runtime = SimulatedRuntime()  # one world for every agent of the test

    def start_agent(self, config: AgentConfig) -> AgentApp:
        app = AgentApp(
            config, runtime=self.runtime, loop_factory=uvloop.new_event_loop, **AGENT_OPTIONS
        )
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []

    def score(self, variant: int) -> dict[str, Any]:
        container = {"name": "web", "image": "registry.local/app:1", "env": {"V": str(variant)}}
        return {"type": "podman", "containers": [container]}

    def bad_score(self) -> tuple[dict[str, Any], str]:
        container = {"name": "web", "image": BAD_IMAGE}
        return {"type": "podman", "containers": [container]}, "containers[0].image"

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        found = self.runtime.list_containers(labels=owner_labels(device, deployment))
        return {c.id: f"{c.state}:{c.restart_count}" for c in found if c.running}

    def tamper(self, device: DeviceId, deployment: str) -> None:
        [container, *_] = self.runtime.list_containers(labels=owner_labels(device, deployment))
        self.runtime.remove(container.id)


DEPLOYMENTS = Kind(api_version="apps/v1", kind="Deployment", plural="deployments", namespaced=True)


def web_deployment(name: str = "web", *, variant: int = 1, replicas: int = 2) -> dict[str, Any]:
    """An apps/v1 Deployment manifest (``variant`` changes its pod template)."""
    container = {"name": "web", "image": "registry.local/web:1",
                 "env": [{"name": "V", "value": str(variant)}]}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


class KubernetesAdapter:
    """The ``kubernetes`` runtime over the API emulator (one cluster for every agent of
    the test); :meth:`close` stops it."""

    name = "kubernetes"
    namespace = "conf-web"

    def __init__(self) -> None:
        self.kube = KubeEmulator()
        self.kube.start()
        self.controller = WorkloadController(self.kube).start()
        self.cluster = KubeCluster(make_api_client(kube_url=self.kube.url))
        self._clusters: dict[int, KubeCluster] = {}

    def close(self) -> None:
        self.cluster.close()
        self.controller.stop()
        self.kube.stop()

    def start_agent(self, config: AgentConfig) -> AgentApp:
        cluster = KubeCluster(make_api_client(kube_url=self.kube.url))
        runtimes = RuntimeRegistry(
            [KubernetesWorkloads(cluster=cluster, device_id=config.device_id)]
        )
        app = AgentApp(
            config, runtime=SimulatedRuntime(), runtimes=runtimes,
            loop_factory=uvloop.new_event_loop, **AGENT_OPTIONS,
        )  # fmt: skip
        self._clusters[id(app)] = cluster
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []
        self._clusters.pop(id(app)).close()

    def score(self, variant: int) -> dict[str, Any]:
        manifests = [web_deployment(variant=variant)]
        return {"type": "kubernetes", "namespace": self.namespace, "manifests": manifests}

    def bad_score(self) -> tuple[dict[str, Any], str]:
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "reader"}, "rules": []}  # fmt: skip
        return {"type": "kubernetes", "namespace": self.namespace, "manifests": [role]}, (
            "manifests[0].kind"
        )

    def _owned(self, device: DeviceId, deployment: str) -> list[dict[str, Any]]:
        labels = kube_owner_labels(device, deployment)
        return self.cluster.list(DEPLOYMENTS, namespace=None, labels=labels)

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        """Applied Deployments: ``uid:generation`` (a new spec is a new rollout) -> when made."""
        return {
            f"{d['metadata']['uid']}:{d['metadata']['generation']}": d["metadata"][
                "creationTimestamp"
            ]
            for d in self._owned(device, deployment)
        }

    def tamper(self, device: DeviceId, deployment: str) -> None:
        [found, *_] = self._owned(device, deployment)
        meta = found["metadata"]
        assert self.cluster.delete(DEPLOYMENTS, meta["name"], namespace=meta["namespace"])


class KvmAdapter:
    """The ``kvm`` runtime over the real libvirtd: every agent of the test shares one
    artifact cache (a restart meets what the last agent left); :meth:`close` removes
    every domain of the test's devices and the cache."""

    name = "kvm"

    def __init__(self, guest: Guest, *, uri: str) -> None:
        import tempfile

        self.guest = guest
        self.uri = uri
        root = Path("/var/tmp/fleet-kvm-test")  # world-traversable: qemu runs as libvirt-qemu
        root.mkdir(mode=0o755, exist_ok=True)
        self.cache = Path(tempfile.mkdtemp(dir=root))
        self.cache.chmod(0o755)
        self.ports = {variant: free_port() for variant in (1, 2)}
        self.devices: set[str] = set()
        self._machines: dict[int, LibvirtMachines] = {}

    def close(self) -> None:
        for device in self.devices:
            for name in self._domains(device, ""):
                virsh(self.uri, "destroy", name, check=False)
                virsh(self.uri, "undefine", name, check=False)
        shutil.rmtree(self.cache, ignore_errors=True)

    def start_agent(self, config: AgentConfig) -> AgentApp:
        self.devices.add(config.device_id)
        machines = LibvirtMachines(uri=self.uri)
        runtimes = RuntimeRegistry(
            [
                KvmWorkloads(
                    machines=machines,
                    files=LocalMachineFiles(
                        self.cache,
                        artifact_dirs=(
                            self.guest.kernel.parent, self.guest.initrd.parent,
                            self.guest.disk.parent,
                        ),
                    ),
                    device_id=config.device_id, max_backoff=1.0,
                )
            ]
        )  # fmt: skip
        app = AgentApp(
            config, runtime=SimulatedRuntime(), runtimes=runtimes,
            loop_factory=uvloop.new_event_loop, **AGENT_OPTIONS,
        )  # fmt: skip
        self._machines[id(app)] = machines
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        assert app.stop(timeout=10) == []
        self._machines.pop(id(app)).close()

    def score(self, variant: int) -> dict[str, Any]:
        """The guest booted from its kernel, with an overlay over the small disk and a
        cloud-init seed; each variant forwards another host port (make before break)."""
        port = self.ports[variant]
        return kvm_score(self.guest, port=port, cmdline=f"console=ttyS0 quiet v={variant}")

    def bad_score(self) -> tuple[dict[str, Any], str]:
        score = kvm_score(self.guest, port=self.ports[1])
        score["boot"]["kernel"]["sha256"] = "0" * 64  # well-formed, but not the kernel's
        return score, "boot.kernel.sha256"

    def _domains(self, device: str, deployment: str) -> list[str]:
        prefix = f"fleet.{device}.{deployment}{'.' if deployment else ''}"
        out = virsh(self.uri, "list", "--all", "--name").stdout
        return [n for n in out.split() if n.startswith(prefix)]

    def units(self, device: DeviceId, deployment: str) -> dict[str, str]:
        """Running domains: uuid -> libvirt's run id (a new one each boot)."""
        found = {}
        for name in self._domains(device, deployment):
            info = dominfo(self.uri, name)
            if info.get("State") == "running":
                found[info["UUID"]] = info["Id"]
        return found

    def tamper(self, device: DeviceId, deployment: str) -> None:
        """Power the domain off and undefine it, as a person with virsh would."""
        [name, *_] = self._domains(device, deployment)
        virsh(self.uri, "destroy", name)
        virsh(self.uri, "undefine", name)


def kvm_score(
    guest: Guest, *, port: int, cmdline: str = "console=ttyS0 quiet", name: str = "vm"
) -> dict[str, Any]:
    return {
        "type": "kvm",
        "name": name,
        "boot": {
            "kernel": {"url": str(guest.kernel), "sha256": guest.sha256(guest.kernel)},
            "initrd": {"url": str(guest.initrd)},
            "cmdline": cmdline,
        },
        "disk": {"url": str(guest.disk)},
        "memory_mib": 96,
        "cloud_init": {"user_data": "#cloud-config\n"},
        "ports": [{"host_port": port, "guest_port": guest.http_port}],
        "health_port": port,
    }


def virsh(uri: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["virsh", "-c", uri, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
    return done


def dominfo(uri: str, name: str) -> dict[str, str]:
    """``virsh dominfo`` as a dict ({} if the domain is gone meanwhile)."""
    done = virsh(uri, "dominfo", name, check=False)
    pairs = (line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs} if done.returncode == 0 else {}
