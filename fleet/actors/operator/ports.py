"""The small ports the operator's actors use; the runtime implements them.

Each method returns at once with a :class:`concurrent.futures.Future`; actors turn its
outcome into a message with :func:`fleet.runtime.aiokit.loop.tell_when_done` and never wait.
Tests may pass fakes with the same shape.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import WriteResult


class KvWriterPort(Protocol):
    def put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes]]
    ) -> concurrent.futures.Future[list[WriteResult]]: ...

    def delete_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[WriteResult]]: ...

    def get_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[KvEntry | BaseException | None]]: ...


class KeyDeleterPort(Protocol):
    def delete_unchanged(
        self, groups: Sequence[Sequence[tuple[str, str, int]]]
    ) -> concurrent.futures.Future[list[str]]:
        """Delete each group's ``(bucket, key, revision)`` in order, each only if still at
        that revision; a group stops at its first changed key. One result per group:
        ``"deleted"``, ``"changed"`` or ``"failed: <why>"``."""
        ...


class DeploymentApiPort(Protocol):
    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]: ...

    def set_deployment_finalizer(
        self, *, namespace: str, name: str, present: bool
    ) -> concurrent.futures.Future[bool]: ...


class DeviceApiPort(Protocol):
    def list_device_names(self) -> concurrent.futures.Future[list[str]]: ...

    def write_device(
        self,
        *,
        name: str,
        labels: Mapping[str, str | None] | None,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        create: bool,
    ) -> concurrent.futures.Future[None]: ...

    def delete_device(self, *, name: str) -> concurrent.futures.Future[None]: ...
