"""Reaching NATS and the Kubernetes API for one ``fleetctl`` command.

Why it exists: every command needs one or both, and a user who cannot reach either must
get one clear line naming what was tried (exit code 3), never a traceback or a hang.

What it must never do: write to a bucket, or wait longer than the connect timeout.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import uvloop

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.errors import BusRefused, BusUnavailable, FleetError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import KubeClient, KubeNotFound, KubeUnavailable
from fleet.runtime.kube.config import make_api_client
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.permissions import fleetctl_permissions
from fleet.runtime.nats.transport import Transport

T = TypeVar("T")


class Unreachable(Exception):
    """NATS or the Kubernetes API cannot be reached (the message names the address)."""


class Buckets:
    """A short-lived read-only view of the four buckets (a context manager)."""

    def __init__(
        self,
        *,
        urls: list[str],
        timeout: float,
        credentials: Path | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        self.urls = urls
        self.timeout = timeout
        self.credentials = credentials
        self.tls_ca = tls_ca
        self._loop: EventLoopThread | None = None
        self._bus: Bus | None = None

    def __enter__(self) -> Buckets:
        loop = EventLoopThread(name="fleetctl-loop", loop_factory=uvloop.new_event_loop)
        loop.start()
        self._loop = loop
        bus = Bus(
            urls=self.urls, name="fleetctl", request_timeout=self.timeout,
            credentials=self.credentials, tls_ca=self.tls_ca,
            # with credentials, fleetctl's own inboxes (docs/security.md) and no stream
            # creation: it may only read
            inbox_prefix=fleetctl_permissions().inbox_prefix if self.credentials else "_INBOX",
            create_buckets=self.credentials is None,
        )  # fmt: skip
        self._bus = bus
        try:
            loop.run(bus.start(), timeout=5)
            loop.run(bus.wait_connected(timeout=self.timeout), timeout=self.timeout + 5)
        except (BusUnavailable, TimeoutError) as exc:
            self.close()
            raise Unreachable(
                f"NATS at {', '.join(self.urls)} refused fleetctl's credentials: {exc} "
                "(check --nats-credentials or $FLEET_NATS_CREDENTIALS)"
                if isinstance(exc, BusRefused)
                else f"cannot reach NATS at {', '.join(self.urls)} within {self.timeout:g} s "
                "(set --nats-url or $FLEET_NATS_URL)"
            ) from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        loop, bus = self._loop, self._bus
        self._loop = self._bus = None
        if loop is not None:
            if bus is not None:
                loop.run(bus.close(), timeout=10)
            loop.stop()

    @property
    def kv(self) -> KvStore:
        """The buckets themselves (``fleetctl dashboard`` watches them)."""
        assert self._bus is not None
        return self._bus.kv

    @property
    def loop(self) -> EventLoopThread:
        assert self._loop is not None
        return self._loop

    @property
    def transport(self) -> Transport:
        """The connection itself (``fleetctl logs``/``describe`` ask devices over it)."""
        assert self._bus is not None
        return self._bus.transport

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None) -> T:
        """Run ``coro`` on the connection's loop (``timeout`` None: as long as it takes)."""
        assert self._loop is not None
        future = self._loop.submit(coro)
        try:
            return future.result(timeout)
        finally:
            future.cancel()

    def read(self, bucket: str, key_filter: str = ">") -> dict[str, KvEntry]:
        """Every live entry of ``bucket`` matching ``key_filter``."""
        assert self._loop is not None
        assert self._bus is not None
        bus = self._bus

        async def snapshot() -> dict[str, KvEntry]:
            await bus.ensure_buckets()  # opens them; creates them on a bus nobody set up yet
            return await bus.snapshot(bucket, key_filter, timeout=self.timeout * 4)

        try:
            result: dict[str, KvEntry] = self._loop.run(snapshot(), timeout=self.timeout * 6)
        except (FleetError, TimeoutError) as exc:
            raise Unreachable(
                f"cannot read bucket {bucket!r} at {', '.join(self.urls)}: {exc}"
            ) from exc
        return result

    def devices(self) -> dict[str, dict[str, KvEntry]]:
        """The three device buckets: info, heartbeat and state."""
        return {
            BUCKET_DEVICE_INFO: self.read(BUCKET_DEVICE_INFO),
            BUCKET_DEVICE_HEARTBEAT: self.read(BUCKET_DEVICE_HEARTBEAT),
            BUCKET_DEVICE_STATE: self.read(BUCKET_DEVICE_STATE),
        }

    def deployment(self, name: str) -> tuple[dict[str, KvEntry], dict[str, KvEntry]]:
        """(desired entries ``<device>.<name>``, reports ``state.<device>.<name>``)."""
        return (
            self.read(BUCKET_DESIRED_STATE, f"*.{name}"),
            self.read(BUCKET_DEVICE_STATE, f"state.*.{name}"),
        )


def kube_client(
    *, kube_url: str | None, kubeconfig: str | None, context: str | None, timeout: float
) -> KubeClient:
    """A client for the API; :class:`ConfigError` when no configuration is found."""
    api_client = make_api_client(kube_url=kube_url, kubeconfig=kubeconfig, context=context)
    return KubeClient(api_client, timeout=timeout)


def where(client: KubeClient) -> str:
    return str(client.api_client.configuration.host)


@contextmanager
def kube_errors(client: KubeClient) -> Iterator[None]:
    """Turn "cannot connect" and "no such resource type" into :class:`Unreachable`."""
    try:
        yield
    except KubeUnavailable as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else str(exc)[:300]
        raise Unreachable(
            f"cannot reach the Kubernetes API at {where(client)} ({reason}); "
            "set --kube-url, --kubeconfig or $KUBECONFIG"
        ) from exc
    except KubeNotFound as exc:
        if "list" in str(exc):
            raise Unreachable(
                f"the Kubernetes API at {where(client)} does not serve fleet's CRDs "
                f"(kubectl apply -f deploy/crds/): {exc}"
            ) from exc
        raise
