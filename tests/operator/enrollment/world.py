"""The world of the enrollment tests: a nats-server in auth and TLS mode trusting the
authority kept in an auth dir, the API emulator, the real operator (in-process or as a
process), and devices simulated by a small client that makes its own nkey, signs its
requests and asks over the bootstrap credential, as an agent does.

Everything on 127.0.0.1, every wait bounded.
"""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import nats
import nats.errors
from nats.aio.client import Client

from fleet.actors.agent.reporting import DeviceEntries
from fleet.actors.operator.app import Operator, OperatorConfig
from fleet.actors.operator.enrollment.service import EnrollmentSetup
from fleet.actors.operator.shards import WHOLE, Shard
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    DeploymentName,
    DeviceId,
    EnrollmentReply,
    EnrollmentRequest,
    RenewalRequest,
    decode_enrollment_reply,
    desired_state_key,
    encode_enrollment,
    signed_bytes,
)
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.devtools.tls import LocalCa
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats import subjects
from fleet.runtime.nats.authority_files import load_or_create, service_credentials
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.claims import new_seed, public_key, sign
from fleet.runtime.nats.identity import Authority, write_credentials
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.permissions import device_permissions, operator_permissions
from fleet.runtime.nats.server import LocalNatsServer
from tests.fixtures.kube import GROUP, VERSION, KubeCluster

INVENTORY = SIMULATED_INVENTORY  # the simulated devices' own (fleet.devtools.simprofile)


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


@dataclass
class SimDevice:
    """A device as the agent would be: its own key, signed requests."""

    device_id: str
    seed: str = field(default_factory=lambda: new_seed("user"))

    @property
    def key(self) -> str:
        return public_key(self.seed, "user")

    def enrollment(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        token: str | None = None,
        at: datetime.datetime | None = None,
        signer: str | None = None,
        key: str | None = None,
    ) -> bytes:
        request = EnrollmentRequest(
            device_id=DeviceId(self.device_id), public_key=key or self.key,
            labels=dict(labels or {}), inventory=INVENTORY, agent_version="test",
            at=at or now(), token=token,
        )  # fmt: skip
        signature = sign(signer or self.seed, signed_bytes(request))
        return encode_enrollment(_with_signature(request, signature))

    def renewal(self, *, at: datetime.datetime | None = None) -> bytes:
        request = RenewalRequest(
            device_id=DeviceId(self.device_id), public_key=self.key, at=at or now()
        )
        return encode_enrollment(_with_signature(request, sign(self.seed, signed_bytes(request))))

    def creds(self, directory: Path, jwt: str) -> Path:
        path = directory / f"{self.device_id}-{self.key[-6:]}.creds"
        write_credentials(path, jwt=jwt, seed=self.seed)
        return path


def _with_signature(request: Any, signature: str) -> Any:
    import msgspec

    return msgspec.structs.replace(request, signature=signature)


class World:
    """A server trusting the auth dir's authority, the emulator, and operators."""

    def __init__(self, *, directory: Path, ca: LocalCa, kube: KubeCluster,
                 loop: EventLoopThread) -> None:  # fmt: skip
        self.directory = directory
        self.auth_dir = directory / "auth"
        self.authority: Authority = load_or_create(self.auth_dir)
        self.ca = ca
        self.kube = kube
        self.loop = loop
        self.server = LocalNatsServer(
            store_dir=directory / "js", auth=self.authority.server_auth(), tls=ca.server
        )
        self.operators: list[Operator] = []
        self._buses: list[Bus] = []
        self.bootstrap = self.auth_dir / "bootstrap.creds"

    # -- the operator -------------------------------------------------------------------

    def start_operator(self, *, shard: Shard = WHOLE, **setup: Any) -> Operator:
        authority = load_or_create(self.auth_dir)  # as a restarted operator reads it
        operator_creds, system_creds, desk_creds = service_credentials(self.auth_dir, authority)
        bus = Bus(
            urls=[self.server.url], name="operator", credentials=operator_creds,
            tls_ca=self.ca.ca_cert, inbox_prefix=operator_permissions().inbox_prefix,
        )  # fmt: skip

        async def up() -> None:
            await bus.start()
            await bus.wait_connected(timeout=10)
            await bus.ensure_buckets(enforce_limits=True)

        self.loop.run(up(), timeout=20)
        self._buses.append(bus)
        operator = Operator(
            bus=bus, loop_thread=self.loop, kube=KubeClient(self.kube.api_client),
            config=OperatorConfig(liveness_timeout=2.0, tick=0.2, watch_timeout=5,
                                  watch_read_timeout=3.0, shard=shard),
            enrollment=EnrollmentSetup(
                authority=authority, auth_dir=self.auth_dir, system_credentials=system_creds,
                enrollment_credentials=desk_creds,
                nats_urls=(self.server.url,), tls_ca=self.ca.ca_cert, **setup,
            ),
        )  # fmt: skip
        operator.start()
        self.operators.append(operator)
        return operator

    def stop_operators(self) -> None:
        while self.operators:
            left = self.operators.pop().stop()
            assert not left, left
        while self._buses:
            self.loop.run(self._buses.pop().close(), timeout=10)

    # -- devices ------------------------------------------------------------------------

    async def connect(self, creds: Path | None, *, inbox_prefix: str) -> Client:
        return await nats.connect(
            self.server.url, user_credentials=None if creds is None else str(creds),
            tls=ssl.create_default_context(cafile=str(self.ca.ca_cert)),
            inbox_prefix=inbox_prefix, allow_reconnect=False, max_reconnect_attempts=0,
            connect_timeout=2,
        )  # fmt: skip

    def ask(self, subject: str, data: bytes, *, creds: Path | None = None,
            inbox_prefix: str = subjects.BOOTSTRAP_INBOX_PREFIX,
            timeout: float = 10.0) -> EnrollmentReply | None:  # fmt: skip
        """One request over ``creds`` (default: the bootstrap credential); its reply, or
        None if none came within ``timeout``."""

        async def run() -> EnrollmentReply | None:
            client = await self.connect(creds or self.bootstrap, inbox_prefix=inbox_prefix)
            try:
                msg = await client.request(subject, data, timeout=timeout)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return None  # nobody answered (the operator is down)
            finally:
                await client.close()
            return decode_enrollment_reply(msg.data)

        return self.loop.run(run(), timeout=timeout + 10)

    def enroll(self, device: SimDevice, **kwargs: Any) -> EnrollmentReply:
        reply = self.ask(subjects.ENROLL, device.enrollment(**kwargs))
        assert reply is not None, "no answer to an enrollment request"
        return reply

    def enroll_until(
        self, device: SimDevice, status: str, *, timeout: float = 10.0, **kwargs: Any
    ) -> EnrollmentReply:
        """Ask again (as a device does) until the answer is ``status``: a repeat within a
        second gets the answer already given."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.enroll(device, **kwargs)
            if reply.status == status:
                return reply
            if time.monotonic() > deadline:
                raise AssertionError(f"{device.device_id}: still {reply} after {timeout}s")
            time.sleep(0.2)

    def renew(self, device: SimDevice, creds: Path) -> EnrollmentReply | None:
        return self.ask(
            subjects.renew(device.device_id), device.renewal(), creds=creds,
            inbox_prefix=device_permissions(DeviceId(device.device_id)).inbox_prefix,
        )  # fmt: skip

    # -- Kubernetes ---------------------------------------------------------------------

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.kube.cluster_object(plural, name)

    def request(self, name: str) -> dict[str, Any]:
        obj = self.get("enrollmentrequests", name)
        assert obj is not None, f"no EnrollmentRequest {name}"
        return obj

    def listed(self, plural: str) -> list[dict[str, Any]]:
        listing = self.kube.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        return cast("list[dict[str, Any]]", cast("dict[str, Any]", listing)["items"])

    # -- the buckets ------------------------------------------------------------------

    def desired(self, device: str, deployment: str) -> KvEntry | None:
        """The desired entry of (``device``, ``deployment``), read as the operator."""
        key = desired_state_key(DeviceId(device), DeploymentName(deployment))
        return self.loop.run(self._buses[-1].get(BUCKET_DESIRED_STATE, key), timeout=20)

    def desired_revision(self, device: str, deployment: str) -> int:
        """The last revision written to the key (its deletion included; 0: never)."""
        key = desired_state_key(DeviceId(device), DeploymentName(deployment))
        kv = self._buses[-1].kv
        return self.loop.run(kv.last_revision(BUCKET_DESIRED_STATE, key), timeout=20)

    def announce(self, device: SimDevice, creds: Path, labels: Mapping[str, str]) -> None:
        """``device`` writes its own device-info, with its own credentials."""
        key, value = DeviceEntries(device_id=DeviceId(device.device_id), instance_id=None).info(
            labels=labels, inventory=INVENTORY
        )
        bus = Bus(
            urls=[self.server.url], name=f"sim-{device.device_id}", credentials=creds,
            tls_ca=self.ca.ca_cert, create_buckets=False,
            inbox_prefix=device_permissions(DeviceId(device.device_id)).inbox_prefix,
        )  # fmt: skip

        async def run() -> None:
            await bus.start()
            try:
                await bus.wait_connected(timeout=10)
                await bus.put(BUCKET_DEVICE_INFO, key, value)
            finally:
                await bus.close()

        self.loop.run(run(), timeout=30)

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.kube.custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, body)

    def delete(self, plural: str, name: str) -> None:
        self.kube.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
