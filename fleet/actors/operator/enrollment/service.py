"""Starts the operator's enrollment service: the desk, its subscriptions, its watches.

Why it exists: with ``--auth-dir`` the operator answers enrollment and renewal requests
and revokes keys (docs/security.md); :func:`start_enrollment` adds those parts to the
operator's supervisor, in order: a system-account connection (account updates), the
revocations rebuilt from Kubernetes and pushed (before any request is answered), the
desk, its own connection (the enrollment identity: it hears requests and answers each
once; the operator's main connection has no response permission, which nats-server
would pay for on every delivery) with the subscriptions on ``fleet.enroll`` and
``fleet.renew.*``, and the watches of
Device resources (a deletion revokes) and EnrollmentRequests (``decision: Revoked``).
Without ``--auth-dir`` none of it runs, and the operator is what it always was.

What it must never do: answer a request before the revocations are pushed, or leave a
connection, a subscription or a watch behind after the supervisor stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pykka

from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.fencing import OPEN, WriteFence
from fleet.runtime.kube.client import DEVICES, ENROLLMENT_REQUESTS, KubeClient, KubeObject
from fleet.runtime.kube.enrollment_store import KubeEnrollmentStore
from fleet.runtime.kube.watch import ResourceWatcher
from fleet.runtime.nats import subjects
from fleet.runtime.nats.fenced import FencedTransport
from fleet.runtime.nats.identity import Authority
from fleet.runtime.nats.natspy import NatsPyTransport
from fleet.runtime.nats.permissions import enrollment_permissions
from fleet.runtime.nats.signer import DeviceSigner
from fleet.runtime.nats.transport import Message, Transport

from ..approvals import approval
from ..messages import LabelsApproved
from ..mirror import device_resource_name
from .desk import Asked, DeviceDeleted, DevicesListed, EnrollmentDesk, RevokeDecided
from .revocation import Revocations
from .rules import DAY, PENDING_RETRY_S, EnrollmentRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EnrollmentSetup:
    """What the enrollment service needs (built by ``fleet-operator`` from its flags)."""

    authority: Authority
    auth_dir: Path | None  # where revocations are kept
    system_credentials: Path  # a system-account user's .creds (pushes account updates)
    enrollment_credentials: Path  # the desk's own .creds (hears requests, answers them)
    nats_urls: tuple[str, ...]
    tls_ca: Path | None = None
    credential_ttl: float = DAY
    max_pending: int = 10_000
    pending_retry: float = PENDING_RETRY_S
    workers: int = 4
    fence: WriteFence = OPEN  # the leader Lease: no revocation or push once it is lost


class _Spec(msgspec.Struct, rename="camel"):
    public_key: str = ""
    decision: str = ""
    device_id: str = ""


def _spec(obj: KubeObject) -> _Spec:
    try:
        return msgspec.json.decode(obj.spec, type=_Spec)
    except msgspec.DecodeError:
        return _Spec()


def start_enrollment(
    *,
    setup: EnrollmentSetup,
    supervisor: Supervisor,
    loop: EventLoopThread,
    kube: KubeClient,
    watch_timeout: int = 60,
    read_timeout: float = 75.0,
    index: pykka.ActorRef[Any] | None = None,
    keys: DeviceKeysPort | None = None,
) -> pykka.ActorRef[Any]:
    """Start it (see the module docstring); returns the desk. ``keys`` hears every
    Device's public key (Secrets are sealed to it)."""
    raw_system = NatsPyTransport(
        urls=setup.nats_urls, name="fleet-operator-system", credentials=setup.system_credentials,
        tls_ca=setup.tls_ca, inbox_prefix="_INBOX_system", buffer_while_away=False,
    )  # fmt: skip
    raw_transport = NatsPyTransport(
        urls=setup.nats_urls, name="fleet-operator-enrollment",
        credentials=setup.enrollment_credentials, tls_ca=setup.tls_ca,
        inbox_prefix=enrollment_permissions().inbox_prefix,
    )  # fmt: skip
    # fenced like the operator's bus: an account push (revocations) is a write
    system = FencedTransport(raw_system, setup.fence, also=frozenset({subjects.CLAIMS_UPDATE}))
    transport = FencedTransport(raw_transport, setup.fence)

    async def connect() -> None:
        for connection in (raw_system, raw_transport):
            await connection.start()
            await connection.wait_connected(timeout=30)

    try:
        loop.run(connect(), timeout=70)
    finally:  # registered even if connecting failed: the supervisor's stop closes them
        supervisor.add_cleanup(
            "system connection", lambda: loop.run(raw_system.close(), timeout=10)
        )
        supervisor.add_cleanup(
            "enrollment connection", lambda: loop.run(raw_transport.close(), timeout=10)
        )
    store = KubeEnrollmentStore(kube)
    signer = DeviceSigner(authority=setup.authority, directory=setup.auth_dir, system=system,
                          loop=loop, fence=setup.fence)  # fmt: skip
    revocations = Revocations(store=store, signer=signer)
    revocations.rebuild()  # before any answer: a revoked device is refused from the start
    rules = EnrollmentRules(store=store, signer=signer, credential_ttl=setup.credential_ttl,
                            max_pending=setup.max_pending,
                            pending_retry=setup.pending_retry)  # fmt: skip
    desk = supervisor.start(
        "enrollment desk",
        lambda: EnrollmentDesk.start(
            rules=rules, revocations=revocations, publish=_publisher(loop, transport),
            workers=setup.workers,
        ),
    )  # fmt: skip

    def hand(msg: Message) -> None:
        desk.tell(Asked(subject=msg.subject, reply=msg.reply, data=msg.data))

    async def subscribe() -> list[Any]:
        subs = [await transport.subscribe(s, hand) for s in (subjects.ENROLL, subjects.renew_all())]
        await transport.flush(timeout=10)
        return subs

    subscriptions = loop.run(subscribe(), timeout=20)

    async def unsubscribe() -> None:
        for sub in subscriptions:
            await sub.unsubscribe()

    supervisor.add_cleanup("enrollment subscriptions", lambda: loop.run(unsubscribe(), timeout=10))
    watchers = (
        ResourceWatcher(
            client=kube, resource=DEVICES, namespace=None,
            on_listed=_devices_listed(desk, index, keys), on_event=_device_event(desk, index, keys),
            timeout_seconds=watch_timeout,
            read_timeout=read_timeout,
        ),
        ResourceWatcher(
            client=kube, resource=ENROLLMENT_REQUESTS, namespace=None,
            on_listed=lambda _s, _o: None, on_event=_request_event(desk),
            timeout_seconds=watch_timeout, read_timeout=read_timeout,
        ),
    )  # fmt: skip
    for watcher, plural in zip(watchers, ("devices", "enrollmentrequests"), strict=True):
        watcher.start()
        supervisor.add_cleanup(
            f"{plural} watch (enrollment)",
            functools.partial(watcher.stop, timeout=10.0),
        )
    logger.info("enrollment on: answering %s and %s", subjects.ENROLL, subjects.renew_all())
    return desk


def follow_devices(
    *,
    supervisor: Supervisor,
    kube: KubeClient,
    index: pykka.ActorRef[Any],
    keys: DeviceKeysPort | None,
    watch_timeout: int = 60,
    read_timeout: float = 75.0,
) -> None:
    """Only the watch of Device resources, for an operator shard that does not answer
    enrollment (shard 0 does: :mod:`fleet.actors.operator.shards`): its Deployments still
    target devices by their approved labels and seal Secrets to their keys."""
    watcher = ResourceWatcher(
        client=kube, resource=DEVICES, namespace=None,
        on_listed=_devices_listed(None, index, keys), on_event=_device_event(None, index, keys),
        timeout_seconds=watch_timeout, read_timeout=read_timeout,
    )  # fmt: skip
    watcher.start()
    supervisor.add_cleanup(
        "devices watch (approved labels)", functools.partial(watcher.stop, timeout=10.0)
    )


def _devices_listed(
    desk: pykka.ActorRef[Any] | None,
    index: pykka.ActorRef[Any] | None,
    keys: DeviceKeysPort | None,
) -> Any:
    def listed(_scope: str | None, objects: list[KubeObject]) -> None:
        if desk is not None:
            desk.tell(DevicesListed(names=tuple(o.name for o in objects)))
        if keys is not None:
            found_keys = (_device_key(o) for o in objects)
            keys.set_keys(dict(k for k in found_keys if k is not None), listed=True)
        if index is not None:
            found = (approval(o) for o in objects)
            index.tell(LabelsApproved(approvals=tuple(a for a in found if a), listed=True))

    return listed


def _device_event(
    desk: pykka.ActorRef[Any] | None,
    index: pykka.ActorRef[Any] | None,
    keys: DeviceKeysPort | None,
) -> Any:
    def event(kind: str, obj: KubeObject) -> None:
        if keys is not None:
            bound = _device_key(obj)
            device, key = bound if bound is not None else (obj.name, "")
            keys.set_keys({device: "" if kind == "DELETED" else key})
        if kind == "DELETED" and desk is not None:
            desk.tell(DeviceDeleted(name=obj.name, public_key=_spec(obj).public_key))
        seen = approval(obj, deleted=kind == "DELETED")
        if index is not None and seen is not None:
            index.tell(LabelsApproved(approvals=(seen,)))

    return event


class DeviceKeysPort(Protocol):
    """Who keeps the devices' enrollment keys (to seal Secrets to: docs/contracts.md)."""

    def set_keys(self, keys: Mapping[str, str], *, listed: bool = False) -> None: ...


def _device_key(obj: KubeObject) -> tuple[str, str] | None:
    """(device id, public key) of a Device resource bound at enrollment ("" when it has no
    key); None for one whose name is not its ``spec.deviceId``'s resource name (as the
    operator names the Devices it binds): a Device made or edited to carry another
    device's id never has Secrets sealed to its key for that device."""
    spec = _spec(obj)
    if not spec.device_id or device_resource_name(spec.device_id) != obj.name:
        return None
    return spec.device_id, spec.public_key


def _request_event(desk: pykka.ActorRef[Any]) -> Any:
    def event(kind: str, obj: KubeObject) -> None:
        if kind in ("ADDED", "MODIFIED") and _spec(obj).decision == "Revoked":
            desk.tell(RevokeDecided(name=obj.name))

    return event


def _publisher(loop: EventLoopThread, transport: Transport) -> Any:
    def publish(subject: str, data: bytes) -> None:
        future = loop.submit(transport.publish(subject, data))
        future.add_done_callback(_log_failure)

    return publish


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None and not isinstance(exc, asyncio.CancelledError):
        logger.warning("an enrollment answer was not sent: %s", exc)
