"""Fixtures of the enrollment tests: a real nats-server in auth and TLS mode, a fake operator.

``enroll_fleet`` (one per test): an :class:`~fleet.runtime.nats.identity.Authority` whose
seeds the test holds (so it signs a device's JWT for a public key, as the operator does),
a throwaway CA, a nats-server with auth and TLS on 127.0.0.1, the buckets made by an
operator identity, a bootstrap credential that may only ask to join, and a
:class:`FakeOperator`: a plain nats-py connection that answers ``fleet.enroll`` and
``fleet.renew.<device>`` from a script (``pending``, ``approved``, ``denied``, ``refused``,
raw bytes, or no answer), checks each request's signature, and records what it got. Its
identity may subscribe to both subjects and answer each request once (a response
permission), built here so as not to depend on the operator's own permissions.

Agents run in-process on the simulated runtime (podman is not the point here); every
wait is for a condition, bounded.
"""

from __future__ import annotations

import base64
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nacl.signing
import nats
import pytest
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig, EnrollmentConfig
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    EnrollmentReply,
    EnrollmentRequest,
    RenewalRequest,
    decode_enrollment_request,
    decode_renewal_request,
    decode_state,
    desired_state_key,
    device_state_key,
    encode_enrollment,
    signed_bytes,
)
from fleet.devtools.simulated_runtime import SimulatedRuntime
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import claims, subjects
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.identity import Authority, write_credentials
from fleet.runtime.nats.permissions import (
    Permission,
    Permissions,
    device_permissions,
    operator_permissions,
)
from fleet.runtime.nats.server import LocalNatsServer
from tests.agent.conftest import wait_for
from tests.fixtures.nats import create_buckets

__all__ = ["wait_for"]  # the agent tests' own, re-exported to the tests here

SCORE = {"type": "podman", "containers": [{"name": "web", "image": "localhost/busybox:test"}]}
BOOTSTRAP = Permissions(
    name="bootstrap",
    pub=Permission(allow=(subjects.ENROLL,)),
    sub=Permission(allow=(subjects.inboxes(subjects.BOOTSTRAP_INBOX_PREFIX),)),
    inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX,
)

# What the fake operator answers: a status, raw bytes, or None (no answer at all).
Answer = str | bytes | None


def verify(key: str, data: bytes, signature: str) -> bool:
    """A device's signature, checked as the operator would (nkeys' public key form)."""
    raw = base64.b32decode(key + "=" * (-len(key) % 8))[1:33]
    sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    try:
        nacl.signing.VerifyKey(raw).verify(data, sig)
    except Exception:
        return False
    return True


@dataclass
class EnrollFleet:
    server: LocalNatsServer
    authority: Authority
    signing_seed: str
    ca: LocalCa
    directory: Path
    bootstrap_creds: Path
    operator_creds: Path
    responder_creds: Path

    def device_jwt(self, public_key: str, device: DeviceId, *, expires_in: float) -> str:
        """The device's user JWT for ``public_key``, as the operator signs it on approval."""
        perms = device_permissions(device)
        pub = tuple(dict.fromkeys((*perms.pub.allow, subjects.renew(device))))
        fields = claims.UserFields(
            pub=Permission(allow=pub), sub=perms.sub, issuer_account=self.authority.account
        )
        return claims.encode(
            claims.Claims(
                sub=public_key, name=str(device), exp=int(time.time() + expires_in), nats=fields
            ),
            signer_seed=self.signing_seed,
            signer_kind="account",
        )

    def operator_bus(self) -> Bus:
        perms = operator_permissions()
        return Bus(
            urls=[self.server.url], name="test-operator", credentials=self.operator_creds,
            tls_ca=self.ca.ca_cert, inbox_prefix=perms.inbox_prefix, create_buckets=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def enroll_fleet(
    tmp_path: Path, local_ca: LocalCa, event_loop_thread: EventLoopThread
) -> Iterator[EnrollFleet]:
    signing_seed = claims.new_seed("account")
    authority = Authority(
        operator_seed=claims.new_seed("operator"), system_seed=claims.new_seed("account"),
        account_seed=claims.new_seed("account"), signing_seed=signing_seed,
    )  # fmt: skip
    directory = tmp_path / "fleet"
    directory.mkdir()
    server = LocalNatsServer(
        store_dir=directory / "jetstream", auth=authority.server_auth(), tls=local_ca.server
    )
    server.start()
    try:
        responder_seed = claims.new_seed("user")
        responder_jwt = claims.encode(
            claims.Claims(
                sub=claims.public_key(responder_seed, "user"), name="fake-operator",
                nats=claims.UserFields(
                    pub=Permission(), sub=Permission(allow=(subjects.ENROLL, subjects.renew_all())),
                    resp=claims.ResponsePermission(max=1), issuer_account=authority.account,
                ),
            ),
            signer_seed=signing_seed, signer_kind="account",
        )  # fmt: skip
        responder_creds = directory / "responder.creds"
        write_credentials(responder_creds, jwt=responder_jwt, seed=responder_seed)
        fleet = EnrollFleet(
            server=server, authority=authority, signing_seed=signing_seed, ca=local_ca,
            directory=directory,
            bootstrap_creds=authority.issue(BOOTSTRAP, expires_in=3600).write(
                directory / "bootstrap.creds"
            ),
            operator_creds=authority.issue(operator_permissions(), expires_in=3600).write(
                directory / "operator.creds"
            ),
            responder_creds=responder_creds,
        )  # fmt: skip
        operator = fleet.operator_bus()

        event_loop_thread.run(create_buckets(operator), timeout=30)
        yield fleet
    finally:
        server.stop()


@dataclass
class FakeOperator:
    """Answers enrollment and renewal requests from scripts (each answer once, then the
    last one again), recording the requests and the JWTs it approved."""

    fleet: EnrollFleet
    enroll_script: list[Answer] = field(default_factory=lambda: ["pending", "approved"])
    renew_script: list[Answer] = field(default_factory=lambda: ["approved"])
    ttl: float = 3600.0
    retry_after_s: float = 0.2
    reason: str = "waiting for a person"
    enrollments: list[EnrollmentRequest] = field(default_factory=list)
    renewals: list[RenewalRequest] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)  # JWTs, in order
    bad_signatures: int = 0
    client: Client | None = None

    async def start(self) -> None:
        self.client = await nats.connect(
            self.fleet.server.url, user_credentials=str(self.fleet.responder_creds),
            tls=ssl.create_default_context(cafile=str(self.fleet.ca.ca_cert)),
            inbox_prefix="_INBOX_fake_operator", connect_timeout=2,
        )  # fmt: skip
        await self.client.subscribe(subjects.ENROLL, cb=self._on_enroll)
        await self.client.subscribe(subjects.renew_all(), cb=self._on_renew)
        await self.client.flush()

    async def close(self) -> None:
        if self.client is not None and not self.client.is_closed:
            await self.client.close()

    async def _on_enroll(self, msg: Msg) -> None:
        request = decode_enrollment_request(msg.data)
        if not verify(request.public_key, signed_bytes(request), request.signature):
            self.bad_signatures += 1
            return
        self.enrollments.append(request)
        answer = self._next(self.enroll_script, len(self.enrollments))
        await self._answer(msg, answer, request.public_key, request.device_id)

    async def _on_renew(self, msg: Msg) -> None:
        request = decode_renewal_request(msg.data)
        if not verify(request.public_key, signed_bytes(request), request.signature):
            self.bad_signatures += 1
            return
        self.renewals.append(request)
        answer = self._next(self.renew_script, len(self.renewals))
        await self._answer(msg, answer, request.public_key, request.device_id)

    @staticmethod
    def _next(script: list[Answer], count: int) -> Answer:
        return script[min(count, len(script)) - 1]

    async def _answer(self, msg: Msg, answer: Answer, key: str, device: DeviceId) -> None:
        if answer is None:
            return
        if isinstance(answer, bytes):
            await msg.respond(answer)
            return
        if answer == "approved":
            jwt = self.fleet.device_jwt(key, device, expires_in=self.ttl)
            self.approved.append(jwt)
            reply = EnrollmentReply(status="approved", jwt=jwt)
        else:
            reply = msgspec.convert(
                {"status": answer, "reason": self.reason, "retry_after_s": self.retry_after_s},
                EnrollmentReply,
            )
        await msg.respond(encode_enrollment(reply))


@pytest.fixture
def fake_operator(
    enroll_fleet: EnrollFleet, event_loop_thread: EventLoopThread
) -> Iterator[FakeOperator]:
    operator = FakeOperator(enroll_fleet)
    event_loop_thread.run(operator.start(), timeout=10)
    try:
        yield operator
    finally:
        event_loop_thread.run(operator.close(), timeout=10)


@dataclass
class EnrollWorld:
    """The fleet, the fake operator, an operator bus to write desired state, agents."""

    fleet: EnrollFleet
    operator: FakeOperator
    loop: EventLoopThread
    bus: Bus
    root: Path
    device: DeviceId = field(default_factory=lambda: DeviceId(f"dev-{secrets.token_hex(3)}"))
    agents: list[AgentApp] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.root / f"state-{self.device}"

    def config(self, **overrides: Any) -> AgentConfig:
        values: dict[str, Any] = {
            "device_id": self.device,
            "labels": {"site": "lab"},
            "nats_urls": [self.fleet.server.url],
            "podman_socket": "unix:///nonexistent/simulated.sock",
            "heartbeat_interval_s": 1.0,
            "state_dir": self.state_dir,
            "resync_interval_s": 1.0,
            "stop_timeout_s": 1.0,
            "nats_ca": self.fleet.ca.ca_cert,
            "enrollment": EnrollmentConfig(bootstrap_credentials=self.fleet.bootstrap_creds),
        }
        values.update(overrides)
        return AgentConfig(**values)

    def start_agent(
        self, config: AgentConfig | None = None, *, runtime: SimulatedRuntime | None = None
    ) -> AgentApp:
        app = AgentApp(
            config or self.config(), runtime=runtime or SimulatedRuntime(),
            loop_factory=uvloop.new_event_loop, max_backoff=1.0, event_debounce=0.1,
            enrollment_slow_retry=0.5,
        )  # fmt: skip
        self.agents.append(app)
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        self.agents.remove(app)
        assert app.stop(timeout=10) == []

    def put_desired(self, deployment: str, value: dict[str, Any]) -> int:
        key = desired_state_key(self.device, DeploymentName(deployment))
        data = msgspec.json.encode(value)
        return self.loop.run(self.bus.put(BUCKET_DESIRED_STATE, key, data), timeout=10)

    def state(self, deployment: str) -> DeploymentState | None:
        key = device_state_key(self.device, DeploymentName(deployment))
        entry = self.loop.run(self.bus.get(BUCKET_DEVICE_STATE, key), timeout=10)
        return None if entry is None else decode_state(entry.value)

    def wait_running(self, deployment: str, revision: int, *, timeout: float = 20.0) -> None:
        def check() -> bool:
            state = self.state(deployment)
            return (
                state is not None
                and state.phase.value == "Running"
                and state.desired_revision == revision
            )

        wait_for(check, timeout=timeout, what=f"{deployment} Running at revision {revision}")


@pytest.fixture
def world(
    enroll_fleet: EnrollFleet,
    fake_operator: FakeOperator,
    event_loop_thread: EventLoopThread,
    tmp_path: Path,
) -> Iterator[EnrollWorld]:
    bus = enroll_fleet.operator_bus()

    async def up() -> None:
        await bus.start()
        await bus.wait_connected(timeout=10)

    event_loop_thread.run(up(), timeout=15)
    w = EnrollWorld(
        fleet=enroll_fleet, operator=fake_operator, loop=event_loop_thread, bus=bus, root=tmp_path
    )
    try:
        yield w
    finally:
        for app in list(w.agents):
            w.stop_agent(app)
        event_loop_thread.run(bus.close(), timeout=10)
