"""Starts the on-demand answers of an agent: the gate, the responder, the listener.

Why it exists: the agent's wiring (:mod:`fleet.actors.agent.app`) adds them with one
call, in order: the responder actor (so that nothing is handed to an actor not yet
started), then the subscriptions on the device's request subjects. The supervisor stops
them in reverse: the subscriptions first, then the responder, which closes every log
reader it holds.

What it must never do: block the loop in the request handler (the gate decides there,
then it only ``tell``\\ s), or start listening before the responder is ready.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import pykka

from fleet.contracts import DeviceId
from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.timers import LoopTimers
from fleet.runtime.nats.device_requests import DeviceRequest, DeviceRequests
from fleet.runtime.nats.transport import Transport
from fleet.runtime.podman.port import ContainerRuntime, LogSource

from .book import SelfReports
from .gate import Gate
from .responder import Asked, OnDemandResponder, refusal

logger = logging.getLogger(__name__)


def start_ondemand(
    *,
    device_id: DeviceId,
    instance_id: str,
    runtime: ContainerRuntime,
    reports: SelfReports,
    transport: Transport,
    loop: EventLoopThread,
    supervisor: Supervisor,
    gate: Gate | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DeviceRequests:
    """Start it (see the module docstring); returns the listener."""
    gate = gate or Gate()
    logs = runtime if isinstance(runtime, LogSource) else None
    holder: dict[str, DeviceRequests] = {}

    def answer(reply: str, data: bytes) -> None:
        holder["requests"].answer(reply, data)

    responder = supervisor.start(
        "on-demand responder",
        lambda: OnDemandResponder.start(
            device_id=device_id, instance_id=instance_id, runtime=runtime,
            logs=logs, book=reports.snapshot, answer=answer, done=gate.done,
            timers=LoopTimers(loop),
        ),
    )  # fmt: skip

    def hand(request: DeviceRequest) -> None:  # on the loop: decide, then tell
        now = clock()
        verdict = gate.admit(request.requester, now=now)
        if verdict == "admit":
            _tell(responder, Asked(request=request), gate)
            return
        if gate.answer_refusal(now=now):
            why = ("too many requests: ask again in a moment" if verdict == "rate-limited"
                   else "busy answering other requests: ask again in a moment")  # fmt: skip
            requests.answer(request.reply, refusal(
                device_id=device_id, kind=request.kind, code=verdict, message=why,
                now=dt.datetime.now(dt.UTC)))  # fmt: skip

    requests = DeviceRequests(device_id=device_id, transport=transport, loop=loop, on_request=hand)
    holder["requests"] = requests

    async def listen() -> None:
        requests.start()

    loop.run(listen(), timeout=5)
    supervisor.add_cleanup("device requests", lambda: loop.run(requests.stop(), timeout=5))
    return requests


def _tell(ref: pykka.ActorRef[Any], message: Asked, gate: Gate) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        gate.done()
        logger.debug("a device request dropped: the agent is stopping")
