"""Keep an enrolled device's credentials valid: enroll once, renew before expiry, recover.

Why it exists: an agent with enrollment configured connects with the user JWT the
operator signed for its own key (``state_dir/device.creds``), and that JWT expires
(docs/security.md). One guarded task on the loop does, in order:

1. **Enroll** if there is no credential for the device's key, or it has expired: over
   the bootstrap credential (a connection of its own, inbox prefix
   :data:`subjects.BOOTSTRAP_INBOX_PREFIX`), ask until ``approved`` (``pending``, no answer
   and malformed replies are asked again at the pace of
   :class:`~fleet.runtime.nats.enrollment_timing.RetryPace`; ``denied``/``refused`` slowly),
   write ``device.creds`` and close the bootstrap connection.
2. **Start the bus**, which connects with that file.
3. **Renew** at about 2/3 of the credential's lifetime (with jitter) over the device's own
   connection, on ``subjects.renew(<device>)``; once ``approved``, write the new file and
   make the bus connect again with it (a live connection keeps the JWT it connected
   with). ``refused``/``denied`` stops renewing (logged at ERROR).
4. **Expired** (renewal refused, the operator away for a third of the lifetime, or the
   device offline): nothing can connect with an expired JWT, so the device falls back
   to step 1 with the **same key** (the operator answers an already approved key with a
   fresh JWT, and a revoked one with ``refused``), then makes the bus connect again.

The device's containers run meanwhile from its persisted desired state: nothing here
blocks the agent's start or its reconciling.

What it must never do: make a new key (:mod:`fleet.runtime.nats.device_key` owns the
key), block the loop (files are written on a worker thread), or die of a reply: a task
death stops the agent (exit 70).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from fleet.contracts import DeviceId, Inventory
from fleet.errors import BusUnavailable, ContractError
from fleet.runtime.aiokit.tasks import cancel_and_wait, create_guarded_task
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus, Connection
from fleet.runtime.nats.device_key import DeviceKey, DeviceKeyStore
from fleet.runtime.nats.enroll_client import EnrollmentClient, jwt_times
from fleet.runtime.nats.enrollment_timing import (
    DEFAULT_RENEW_AFTER,
    SLOW_RETRY,
    RetryPace,
    renew_at,
)

logger = logging.getLogger(__name__)


class CredentialKeeper:
    """The task that enrolls, starts ``bus`` and renews (see the module docstring)."""

    def __init__(
        self,
        *,
        device_id: DeviceId,
        bus: Bus,
        store: DeviceKeyStore,
        key: DeviceKey,
        client: EnrollmentClient,
        bootstrap: Callable[[], Connection],
        labels: Callable[[], Mapping[str, str]],
        inventory: Callable[[], Inventory],
        renew_after: float = DEFAULT_RENEW_AFTER,
        slow_retry: float = SLOW_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._device = device_id
        self._bus = bus
        self._store = store
        self._key = key
        self._client = client
        self._bootstrap = bootstrap
        self._labels = labels
        self._inventory = inventory
        self._renew_after = renew_after
        self._slow = slow_retry
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.enrollments = 0  # approved enrollments of this run (tests and logs)
        self.renewals = 0

    def start(self) -> None:
        """Start the task (on the loop)."""
        if self._task is None:
            self._task = create_guarded_task(
                self._run(), name=f"credentials-{self._device}", finishable=True
            )

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            await cancel_and_wait(self._task)

    async def _run(self) -> None:
        jwt = await asyncio.to_thread(self._store.read_jwt, self._key)
        if jwt is not None and self._expired(jwt):
            logger.warning(
                "the credential of %s expired while the agent was away: asking again over "
                "the bootstrap credential, with the same key %s", self._device,
                self._key.public_key,
            )  # fmt: skip
            jwt = None
        if jwt is None:
            jwt = await self._enroll()
        await self._bus.start()
        while True:
            times = jwt_times(jwt)
            if times is None:
                logger.info("the credential of %s never expires: no renewal", self._device)
                return
            issued, expires = times
            due = renew_at(issued_at=issued, expires_at=expires, fraction=self._renew_after)
            await asyncio.sleep(max(0.0, due - self._clock()))
            jwt = await self._renew(expires)

    def _expired(self, jwt: str) -> bool:
        times = jwt_times(jwt)
        return times is not None and times[1] <= self._clock()

    async def _enroll(self) -> str:
        """Ask over the bootstrap credential until approved; write ``device.creds``."""
        transport = self._bootstrap()
        await transport.start()
        pace = RetryPace(slow=self._slow)
        try:
            while True:
                reply = None
                try:
                    await transport.wait_connected(timeout=10.0)
                    inventory = await asyncio.to_thread(self._inventory)
                    request = self._client.enrollment_request(
                        labels=self._labels(), inventory=inventory
                    )
                    reply = await self._client.ask(
                        transport, subjects.ENROLL, request, what="enrollment"
                    )
                except BusUnavailable as exc:
                    logger.info("enrollment of %s: NATS not reachable yet (%s)", self._device, exc)
                except ContractError as exc:  # the device's own labels or inventory
                    logger.error("enrollment of %s: cannot ask: %s", self._device, exc)  # noqa: TRY400
                if reply is not None and reply.status == "approved" and reply.jwt is not None:
                    await asyncio.to_thread(self._store.save_credentials, self._key, jwt=reply.jwt)
                    self.enrollments += 1
                    logger.info("enrolled %s: wrote %s", self._device, self._store.credentials_path)
                    return reply.jwt
                await asyncio.sleep(pace.after(reply))
        finally:
            await transport.close()

    async def _renew(self, expires: float) -> str:
        """Renew over the device's own connection; past ``expires``, enroll again."""
        pace = RetryPace(slow=self._slow)
        refused = False
        while True:
            left = expires - self._clock()
            if left <= 0:
                logger.warning(
                    "the credential of %s has expired: asking again over the bootstrap "
                    "credential, with the same key %s", self._device, self._key.public_key,
                )  # fmt: skip
                jwt = await self._enroll()
                await self._bus.reconnect()
                return jwt
            if refused:  # renewing stopped: wait for the expiry, then ask as a new device
                await asyncio.sleep(left)
                continue
            if not self._bus.connected:
                with contextlib.suppress(BusUnavailable):
                    await self._bus.wait_connected(timeout=left)
                continue
            reply = await self._client.ask(
                self._bus.transport, subjects.renew(self._device),
                self._client.renewal_request(), what="renewal",
            )  # fmt: skip
            if reply is not None and reply.status == "approved" and reply.jwt is not None:
                await asyncio.to_thread(self._store.save_credentials, self._key, jwt=reply.jwt)
                self.renewals += 1
                await self._bus.reconnect()
                return reply.jwt
            if reply is not None and reply.status in ("denied", "refused"):
                refused = True
                continue
            await asyncio.sleep(min(pace.after(reply), max(left, 0.1)))
