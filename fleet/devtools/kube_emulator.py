"""A Kubernetes API stand-in for the demo, the load swarm and tests (kmock, made more real).

It is a development stand-in for a cluster, never a production component.

kmock 0.8's ``KubernetesEmulator`` stores objects and serves list/get/create/patch/delete/watch
over real HTTP, which is what the real ``kubernetes`` client needs. What it lacks, and this
module adds, because the operator relies on it against a real API server:

* ``metadata.uid``, ``creationTimestamp``, ``generation`` (bumped on spec changes only) and a
  cluster-wide ``resourceVersion``; a list's ``metadata.resourceVersion`` is the current one;
* optimistic concurrency: a patch that carries ``metadata.resourceVersion`` applies only
  while the object is still at that version (409 Conflict otherwise), as the real API
  server does: compare-and-swap writes (a bootstrap token's uses) rely on it;
* the status subresource rule: a patch to ``.../status`` changes only ``status``, a patch to the
  object itself never changes ``status``;
* CRDs from ``deploy/crds/*.yaml`` become served resources, plus the core kinds kubectl
  touches (``namespaces``, ``events``: the operator posts Events, ``kubectl describe`` reads
  them), ``customresourcedefinitions`` and ``coordination.k8s.io`` Leases (the operator
  replicas' leader election);
* answers as ``kubectl`` needs them (tried with the real kubectl, tests/deploy/kubectl):
  lists carry ``kind: <Kind>List`` and ``apiVersion``; discovery, legacy and aggregated
  (``apidiscovery.k8s.io/v2``), lists a subresource only as ``plural/status``
  (``_kube_discovery``); ``Accept: ...;as=Table;g=meta.k8s.io`` gets a Table with the CRD's
  printer columns (``_kube_tables``); label and field selectors filter lists and watches,
  and a malformed one is a 400 naming it (``_kube_selectors``); create answers 201 with the
  object (``generateName`` honoured), a missing object is a 404 ``NotFound``, a strategic
  merge patch on a custom resource a 415; a watch with ``sendInitialEvents=true`` ends its
  replay with the ``initial-events-end`` bookmark; ``/openapi/v3`` (``_kube_openapi``) says
  fields are validated, and ``fieldValidation=Strict`` (kubectl's) refuses unknown fields
  (``_kube_validation``);
* server-side apply (``_kube_apply``: create-if-absent, ``managedFields`` per manager,
  409 on a conflict unless ``force``) and the built-in kinds the agent's ``kubernetes``
  runtime applies (``_kube_builtin``: apps/v1 workloads, ConfigMap, Service, Secret, a
  cluster-scoped ClusterRole); no controller runs them unless a test starts
  :mod:`fleet.devtools.kube_workloads`;
* ``compact()`` ends every open watch and makes older resource versions answer 410 Gone, so
  tests can drive the relist path;
* O(1) lookups by name, and no request or error history (the stock emulator scans every
  object and every past request on every request, which makes thousands of objects crawl);
  a plain JSON list costs what it did: selectors and Tables only cost requests that ask.

Known remaining gaps (kept on purpose: the operator must cope): a watch ignores
``timeoutSeconds`` and ``resourceVersion`` (it replays every object as ADDED, then streams;
only a Table watch, ``kubectl get -w``, skips the replay when nothing changed since its list);
no PUT (replace), server-side apply only as the subset ``_kube_apply`` documents, no dry
run, no schema checks but unknown fields, no ``limit``/``continue`` paging (a list is
always whole), namespaces are required to exist only by an apply and are not cascaded
on delete, a watch by selector never sends DELETED for an
object that stops matching, a delete does not bump ``resourceVersion``.

Run it in a thread (:class:`KubeEmulator`) or as a process: ``python -m
fleet.devtools.kube_emulator --crds deploy/crds`` prints ``READY <port>`` when it serves.
Nothing shipped to a cluster or a device (``fleet.actors``, ``fleet-agent``,
``fleet-operator``) may import it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import sys
import threading

from kmock._internal import apps

from ._kube_api import CRD_DIR, FleetKubeEmulator

__all__ = ["CRD_DIR", "FleetKubeEmulator", "KubeEmulator", "main"]


class KubeEmulator:
    """The emulator served on 127.0.0.1 from its own thread and event loop.

    Off the fleet loop on purpose: the operator's blocking client calls and the server must
    not share a loop. ``url`` is ready once :meth:`start` returns.
    """

    def __init__(self, *, crd_dir: pathlib.Path = CRD_DIR, port: int | None = None) -> None:
        self._crd_dir = crd_dir
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.emulator: FleetKubeEmulator | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"kube emulator did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError("kube emulator failed to start") from self._error

    def stop(self, *, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"kube emulator thread did not stop within {timeout} s")
        self._thread = None

    def write_kubeconfig(self, path: pathlib.Path, *, namespace: str = "default") -> pathlib.Path:
        """A kubeconfig for this emulator (plain HTTP on 127.0.0.1, no credentials): what
        ``kubectl`` and ``fleetctl --kubeconfig`` need to reach it. Returns ``path``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fleet-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "fleet-emulator", "user": {}}],
            "contexts": [
                {
                    "name": "fleet-emulator",
                    "context": {
                        "cluster": "fleet-emulator",
                        "user": "fleet-emulator",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "fleet-emulator",
        }
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML: kubectl reads it
        path.chmod(0o600)
        return path

    def compact(self, *, timeout: float = 5.0) -> None:
        """See :meth:`FleetKubeEmulator.compact`; callable from any thread but the server's."""
        assert self._loop is not None
        assert self.emulator is not None
        asyncio.run_coroutine_threadsafe(self.emulator.compact(), self._loop).result(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        emulator = FleetKubeEmulator()
        emulator.install_crds(self._crd_dir)
        async with emulator, apps.Server(emulator, port=self._port) as server:
            self.emulator = emulator
            self.port = server.port
            self._ready.set()
            await self._stopping.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Kubernetes API emulator.")
    parser.add_argument("--crds", type=pathlib.Path, default=CRD_DIR, help="CRD directory")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    args = parser.parse_args(argv)
    server = KubeEmulator(crd_dir=args.crds, port=args.port or None)
    server.start()
    sys.stdout.write(f"READY {server.port}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # runs until stdin closes (the parent exits or closes the pipe)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
