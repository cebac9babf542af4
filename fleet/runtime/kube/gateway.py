"""The operator's Kubernetes calls as futures, on small thread pools of their own.

Why it exists: actors never block on the API. :class:`KubeGateway` runs the blocking
client calls on its own threads and hands back :class:`concurrent.futures.Future`
objects (actors turn them into messages with
:func:`fleet.runtime.aiokit.loop.tell_when_done`). Two pools, so thousands of Device
writes never delay a Deployment's status or finalizer.

What it must never do: run a call on the caller's thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fleet.contracts import CRD_GROUP, CRD_VERSION
from fleet.runtime.kube.client import DEPLOYMENTS, DEVICES, KubeClient
from fleet.runtime.kube.errors import KubeConflict
from fleet.runtime.kube.revisions import Listed, RevisionStore

__all__ = ["KubeGateway", "namespaces_or_all"]

logger = logging.getLogger(__name__)


class KubeGateway:
    """:class:`KubeClient` calls run on small thread pools; results come back as futures.

    Two pools, so that thousands of Device writes never delay a Deployment's status or
    finalizer: ``deployments`` (2 threads) and ``devices`` (``device_workers`` threads).
    """

    def __init__(self, client: KubeClient, *, device_workers: int = 4) -> None:
        self.client = client
        self.revisions = RevisionStore(client)
        self._deployments = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="kube-deployments"
        )
        self._devices = concurrent.futures.ThreadPoolExecutor(
            max_workers=device_workers, thread_name_prefix="kube-devices"
        )

    def shutdown(self) -> None:
        self._deployments.shutdown(wait=True, cancel_futures=True)
        self._devices.shutdown(wait=True, cancel_futures=True)

    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]:
        return self._deployments.submit(
            self.client.patch,
            DEPLOYMENTS,
            namespace=namespace,
            name=name,
            body={"status": status},
            status=True,
        )

    def set_deployment_finalizer(
        self, *, namespace: str, name: str, present: bool
    ) -> concurrent.futures.Future[bool]:
        return self._deployments.submit(
            self.client.set_finalizer, DEPLOYMENTS, namespace=namespace, name=name, present=present
        )

    def list_revisions(
        self, *, namespace: str, deployment: str, uid: str
    ) -> concurrent.futures.Future[Listed]:
        return self._deployments.submit(
            self.revisions.list, namespace=namespace, deployment=deployment, uid=uid
        )

    def create_revision(
        self, *, namespace: str, deployment: str, uid: str, number: int, desired: bytes,
        outcome: str | None,
    ) -> concurrent.futures.Future[None]:  # fmt: skip
        return self._deployments.submit(
            self.revisions.create, namespace=namespace, deployment=deployment, uid=uid,
            number=number, desired=desired, outcome=outcome,
        )  # fmt: skip

    def record_outcome(
        self, *, namespace: str, name: str, outcome: str, reason: str
    ) -> concurrent.futures.Future[None]:
        return self._deployments.submit(
            self.revisions.record_outcome, namespace=namespace, name=name, outcome=outcome,
            reason=reason,
        )  # fmt: skip

    def delete_revision(self, *, namespace: str, name: str) -> concurrent.futures.Future[None]:
        return self._deployments.submit(self.revisions.delete, namespace=namespace, name=name)

    def list_device_names(self) -> concurrent.futures.Future[list[str]]:
        def run() -> list[str]:
            listed = self.client.list_objects(DEVICES, namespace=None)
            for problem in listed.problems:
                logger.warning("skipping an unusable Device resource: %s", problem)
            return [obj.name for obj in listed.objects]

        return self._devices.submit(run)

    def write_device(
        self,
        *,
        name: str,
        labels: Mapping[str, str | None] | None,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        create: bool,
    ) -> concurrent.futures.Future[None]:
        """Create the Device if ``create`` (409 is fine), then merge ``labels``/``status``.

        ``labels`` is a merge patch of ``metadata.labels`` (``None`` values remove a label).
        A Device created here carries its labels already: two calls, not three (the
        status subresource cannot be set on create).
        """

        def run() -> None:
            created = False
            if create:
                set_labels = {k: v for k, v in (labels or {}).items() if v is not None}
                body = {
                    "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
                    "kind": "Device",
                    "metadata": {"name": name, "labels": set_labels},
                    "spec": dict(spec),
                }
                with contextlib.suppress(KubeConflict):
                    self.client.create(DEVICES, body=body)
                    created = True
            if labels and not created:
                self.client.patch(
                    DEVICES, namespace=None, name=name, body={"metadata": {"labels": dict(labels)}}
                )
            self.client.patch(
                DEVICES, namespace=None, name=name, body={"status": dict(status)}, status=True
            )

        return self._devices.submit(run)

    def delete_device(self, *, name: str) -> concurrent.futures.Future[None]:
        return self._devices.submit(self.client.delete, DEVICES, namespace=None, name=name)


def namespaces_or_all(namespaces: Sequence[str]) -> list[str | None]:
    """The watch scopes for ``--namespace`` values: each one, or the whole cluster."""
    return list(dict.fromkeys(namespaces)) if namespaces else [None]
