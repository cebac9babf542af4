"""The Device mirror: writes each device's picture into its Device resource, rate-limited.

Why it exists: 10,000-100,000 devices change (heartbeats, phases) far faster than any API
server should be written to. Device actors announce a change once (``MirrorDirty``); when
a write slot is free the mirror pulls the picture (``MirrorPull``) and writes it: at most
``qps`` writes per second, at most ``max_inflight`` at a time, never two for the same
device at once, and a burst of changes to one device costs one write. A device's
Device resource is created on its first write (the existing ones are listed at start).

Resource names: a device id that is a valid lowercase DNS-1123 subdomain is used as is;
any other (uppercase, ``_``) is lowercased, ``_`` becomes ``-``, and a short hash of the
id is appended so two ids never share a name. ``spec.deviceId`` always holds the id.

A forgotten device (silent longer than the retention) sends a last, ``final`` picture:
once it is written the mirror drops what it kept for that device. A write the API server
refuses for good (4xx but a conflict) is logged and not retried until the device changes.

What it must never do: block, or let its backlog grow beyond one entry per device.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
from typing import Any, Final, Literal

import msgspec
import pykka

from fleet.contracts import DeviceId
from fleet.errors import TemporaryError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.loop import tell_when_done
from fleet.runtime.aiokit.timers import TimerPort

from . import messages as m
from .ports import DeviceApiPort

logger = logging.getLogger(__name__)

_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def device_resource_name(device: str) -> str:
    """The Device resource name for a device id (see the module docstring)."""
    if len(device) <= 253 and _SUBDOMAIN.fullmatch(device):
        return device
    base = device.lower().replace("_", "-").strip("-")[:200]
    digest = hashlib.sha256(device.encode()).hexdigest()[:8]
    return f"{base}-{digest}" if base else digest


class DeviceMirror(SupervisedActor):
    def __init__(
        self,
        *,
        api: DeviceApiPort,
        timers: TimerPort,
        qps: float = 50.0,
        max_inflight: int = 8,
        tick: float = 0.05,
    ) -> None:
        super().__init__()
        self._api = api
        self._timers = timers
        self._qps = qps
        self._max_inflight = max_inflight
        self._tick = tick
        self._known: set[str] | None = None
        self._dirty: dict[DeviceId, pykka.ActorRef[Any]] = {}
        self._refs: dict[DeviceId, pykka.ActorRef[Any]] = {}
        self._pulled: set[DeviceId] = set()
        self._inflight: set[DeviceId] = set()
        self._labels: dict[str, dict[str, str]] = {}
        self._finals: dict[DeviceId, m.MirrorDevice] = {}  # last pictures not written yet
        self._tokens = 1.0
        self._last = time.monotonic()
        self._armed = False
        self.writes = 0

    def on_start(self) -> None:
        self._list()

    def _list(self) -> None:
        tell_when_done(
            self._api.list_device_names(),
            self.actor_ref,
            on_result=lambda names: m.MirrorKnown(names=tuple(names), error=None),
            on_error=lambda exc: m.MirrorKnown(names=None, error=str(exc)),
        )

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.MirrorDirty):
            self._refs[message.device] = message.ref
            self._dirty[message.device] = message.ref
        elif isinstance(message, m.MirrorDevice):
            self._pulled.discard(message.device)
            self._inflight.add(message.device)
            self._write(message)
        elif isinstance(message, m.Tick):
            self._armed = False
            self._drain()
        elif isinstance(message, m.MirrorWritten):
            self._written(message)
        elif isinstance(message, m.MirrorKnown):
            if message.names is None:
                logger.warning("listing Device resources failed: %s; retrying", message.error)
                self._timers.tell_later(self.actor_ref, _Relist(), delay=1.0)
            else:
                self._known = set(message.names)
        elif isinstance(message, _Relist):
            self._list()
        self._arm()
        return None

    def _written(self, msg: m.MirrorWritten) -> None:
        device = msg.device
        self._inflight.discard(device)
        final = self._finals.pop(device, None)
        if msg.error is None:
            return
        if not msg.temporary:
            logger.warning(
                "Device %s: %s refused: %s; not retried until the device changes",
                device, msg.kind, msg.error,
            )  # fmt: skip
            return
        logger.warning("Device %s: %s failed: %s; retrying", device, msg.kind, msg.error)
        if final is not None:
            self._finals[device] = final
            self._dirty.pop(device, None)
        else:
            ref = self._refs.get(device)
            if ref is not None:
                self._dirty.setdefault(device, ref)

    def _arm(self) -> None:
        if (self._dirty or self._finals) and not self._armed:
            self._armed = True
            self._timers.tell_later(self.actor_ref, m.Tick(), delay=self._tick)

    def _drain(self) -> None:
        if self._known is None:
            return
        now = time.monotonic()
        self._tokens = min(
            self._qps * max(self._tick, 0.2), self._tokens + (now - self._last) * self._qps
        )
        self._last = now
        for device in [d for d in self._finals if d not in self._inflight]:
            if self._tokens < 1 or len(self._inflight) + len(self._pulled) >= self._max_inflight:
                return
            self._tokens -= 1
            self._inflight.add(device)
            self._write(self._finals[device])
        # Look at no more devices than this tick could pull (the backlog may be the fleet).
        scan = int(self._tokens) + len(self._inflight) + len(self._pulled) + 1
        for device in list(itertools.islice(self._dirty, scan)):
            busy = len(self._inflight) + len(self._pulled)
            if self._tokens < 1 or busy >= self._max_inflight:
                break
            if device in self._inflight or device in self._pulled:
                continue
            ref = self._dirty.pop(device)
            self._tokens -= 1
            self._pulled.add(device)
            try:
                ref.tell(m.MirrorPull())
            except pykka.ActorDeadError:
                self._pulled.discard(device)

    def _write(self, msg: m.MirrorDevice) -> None:
        assert self._known is not None
        name = device_resource_name(msg.device)
        self.writes += 1
        kind: Literal["write", "delete"]
        if msg.delete:
            self._known.discard(name)
            self._labels.pop(name, None)
            future = self._api.delete_device(name=name)
            kind = "delete"
        else:
            labels = dict(msg.labels)
            old = self._labels.get(name, {})
            patch: dict[str, str | None] = {k: v for k, v in labels.items() if old.get(k) != v}
            patch.update({k: None for k in old if k not in labels})
            create = name not in self._known
            self._known.add(name)
            if msg.final:  # forgotten: nothing more of it is kept here
                self._finals[msg.device] = msg
                self._labels.pop(name, None)
                self._refs.pop(msg.device, None)
                self._dirty.pop(msg.device, None)
            else:
                self._labels[name] = labels
            future = self._api.write_device(
                name=name,
                labels=patch or None,
                spec={"deviceId": str(msg.device)},
                status=msgspec.json.decode(msg.status),
                create=create,
            )
            kind = "write"
        tell_when_done(
            future,
            self.actor_ref,
            on_result=lambda _r: m.MirrorWritten(device=msg.device, kind=kind, error=None),
            on_error=lambda exc: m.MirrorWritten(
                device=msg.device,
                kind=kind,
                error=str(exc),
                temporary=isinstance(exc, TemporaryError),
            ),
        )


class _Relist(m.Msg, frozen=True, kw_only=True):
    pass
