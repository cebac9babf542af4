"""Credentials the server must refuse, TLS it must insist on, and revocation.

Expired, signed by another account, claiming an account whose key did not sign them,
tampered with, or presented with the wrong seed: each is refused at connect. Without
TLS, or with a certificate from another CA, nothing connects. A revoked user is
disconnected within seconds and cannot connect again, and no one else is touched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from pathlib import Path

import nats
import pytest

from fleet.contracts import BUCKET_DEVICE_HEARTBEAT, DeviceId, device_heartbeat_key
from fleet.devtools.tls import make_local_ca
from fleet.errors import BusError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.claims import (
    Claims,
    UserFields,
    encode,
    new_seed,
    public_key,
    read_unverified,
)
from fleet.runtime.nats.identity import Authority, push_account_jwt, write_credentials
from fleet.runtime.nats.permissions import Permission, device_permissions
from tests.security.conftest import DEVICE_A, Intruder, SecureFleet, wait_until

DEVICE_C = DeviceId("dev-c")


def refused_at_connect(loop: EventLoopThread, fleet: SecureFleet, creds: Path | None) -> str:
    """Connect with ``creds``; the refusal's text (the test fails if it connects)."""

    async def attempt() -> str:
        try:
            intruder = await Intruder.connect(fleet, creds)
        except Exception as exc:  # nats-py's errors vary with the reason: the text is checked
            return f"{type(exc).__name__}: {exc}".lower()
        await intruder.close()
        raise AssertionError(f"the server let {creds} connect")

    return loop.run(attempt(), timeout=15)


def forged(fleet: SecureFleet, directory: Path, *, signer: str, issuer_account: str) -> Path:
    """A's permissions on a user JWT signed by ``signer`` (an account seed)."""
    seed = new_seed("user")
    permissions = device_permissions(DEVICE_A)
    token = encode(
        Claims(
            sub=public_key(seed, "user"),
            name=permissions.name,
            nats=UserFields(
                pub=permissions.pub, sub=permissions.sub, issuer_account=issuer_account
            ),
        ),
        signer_seed=signer,
        signer_kind="account",
    )
    path = directory / f"forged-{time.monotonic_ns()}.creds"
    write_credentials(path, jwt=token, seed=seed)
    return path


def test_an_expired_user_jwt_is_refused(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    creds = secure_fleet.issue(device_permissions(DEVICE_A), expires_in=-60)
    reason = refused_at_connect(event_loop_thread, secure_fleet, creds)
    assert "authorization" in reason or "expired" in reason, reason


def test_a_user_of_another_operators_account_is_refused(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    foreign = Authority.create(name="elsewhere")
    creds = foreign.issue(device_permissions(DEVICE_A), expires_in=3600).write(
        tmp_path / "foreign.creds"
    )
    assert "authorization" in refused_at_connect(event_loop_thread, secure_fleet, creds)


def test_a_jwt_signed_by_a_key_the_account_does_not_list_is_refused(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    """Claiming the fleet's account (``issuer_account``) does not make a key its signer;
    neither does the key of another account signing in its own name."""
    rogue = new_seed("account")
    account = secure_fleet.authority.account
    for creds in (
        forged(secure_fleet, tmp_path, signer=rogue, issuer_account=account),
        forged(secure_fleet, tmp_path, signer=rogue, issuer_account=""),
    ):
        assert "authorization" in refused_at_connect(event_loop_thread, secure_fleet, creds)


def test_a_tampered_jwt_or_someone_elses_seed_is_refused(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    """A's JWT with its permissions widened (signature kept), and A's JWT presented with
    B's seed (the nonce signature does not match the JWT's key)."""
    a = secure_fleet.authority.issue(device_permissions(DEVICE_A), expires_in=3600)
    head, payload, signature = a.jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["nats"]["pub"] = {"allow": [">"]}
    claims["nats"]["sub"] = {"allow": [">"]}
    widened = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    tampered = tmp_path / "tampered.creds"
    write_credentials(tampered, jwt=f"{head}.{widened}.{signature}", seed=a.seed)
    other = secure_fleet.authority.issue(device_permissions(DEVICE_C), expires_in=3600)
    wrong_seed = tmp_path / "wrong-seed.creds"
    write_credentials(wrong_seed, jwt=a.jwt, seed=other.seed)
    for creds in (tampered, wrong_seed):
        assert "authorization" in refused_at_connect(event_loop_thread, secure_fleet, creds)


def test_no_credentials_no_connection(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    assert "authorization" in refused_at_connect(event_loop_thread, secure_fleet, None)


def test_credentials_files_are_readable_by_their_owner_only(secure_fleet: SecureFleet) -> None:
    for creds in secure_fleet.creds.values():
        assert creds.stat().st_mode & 0o777 == 0o600, creds


def test_tls_is_required_and_the_certificate_must_chain_to_the_ca(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    """A client that speaks plain NATS gets no PONG (the server wants the TLS handshake
    first); one that trusts another CA refuses the server's certificate."""
    other_ca = make_local_ca(tmp_path / "other-ca").ca_cert

    async def plain() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", secure_fleet.server.port)
        try:
            info = await reader.readline()
            writer.write(b'CONNECT {"verbose": false}\r\nPING\r\n')
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(200), 5)
            except ConnectionError:
                answer = b""
            return info, answer
        finally:
            writer.close()

    async def other() -> str:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            await nats.connect(
                secure_fleet.server.url, user_credentials=str(secure_fleet.creds[DEVICE_A]),
                tls=ssl.create_default_context(cafile=str(other_ca)), allow_reconnect=False,
                max_reconnect_attempts=0, connect_timeout=2,
            )  # fmt: skip
        return str(refused.value)

    info, answer = event_loop_thread.run(plain(), timeout=20)
    assert b'"tls_required":true' in info
    assert b"PONG" not in answer
    assert "certificate verify failed" in event_loop_thread.run(other(), timeout=20)


def test_a_revoked_device_is_disconnected_within_seconds_and_cannot_come_back(
    secure_fleet: SecureFleet,
    device_a_bus: Bus,
    event_loop_thread: EventLoopThread,
) -> None:
    """The revocation is pushed as an updated account JWT by a system-account user;
    device A, connected all along, is not touched."""
    permissions_c = device_permissions(DEVICE_C)
    c = secure_fleet.authority.issue(permissions_c, expires_in=3600)
    creds_c = c.write(secure_fleet.directory / "dev-c.creds")
    device_c = secure_fleet.bus(creds_c, permissions_c, name=DEVICE_C)
    system = Bus(
        urls=[secure_fleet.server.url], name="system", credentials=secure_fleet.creds["system"],
        tls_ca=secure_fleet.ca.ca_cert,
    )  # fmt: skip

    async def scenario() -> float:
        await device_c.start()
        await system.start()
        try:
            await device_c.wait_connected(timeout=10)
            await system.wait_connected(timeout=10)
            await device_c.put(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(DEVICE_C), b"beat")
            revoked = secure_fleet.authority.revoke(c.public_key)
            started = time.monotonic()
            await push_account_jwt(system.transport, revoked, timeout=5)
            await wait_until(lambda: not device_c.connected, timeout=5, what="C cut off")
            took = time.monotonic() - started
        finally:
            await device_c.close()
            await system.close()
        beat = await device_a_bus.put(
            BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(DEVICE_A), b"A goes on"
        )
        assert beat > 0
        return took

    took = event_loop_thread.run(scenario(), timeout=40)
    assert took < 5
    reason = refused_at_connect(event_loop_thread, secure_fleet, creds_c)
    assert "authorization" in reason or "revoked" in reason, reason


def test_an_account_the_operator_did_not_sign_lets_no_one_in(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread, tmp_path: Path
) -> None:
    """Pushed by a system user, another operator's account JWT is stored by the resolver
    (it checks the signature on use, not on store), but none of its users gets in; an
    unreadable update is refused, and that is a ``BusError``."""
    stranger = Authority.create(name="stranger")
    stranger_user = stranger.issue(device_permissions(DEVICE_A), expires_in=3600).write(
        tmp_path / "stranger.creds"
    )
    system = Bus(
        urls=[secure_fleet.server.url], name="system", credentials=secure_fleet.creds["system"],
        tls_ca=secure_fleet.ca.ca_cert,
    )  # fmt: skip

    async def scenario() -> None:
        await system.start()
        try:
            await system.wait_connected(timeout=10)
            await push_account_jwt(system.transport, stranger.account_jwt(), timeout=5)
            with pytest.raises(BusError, match="refused"):
                await push_account_jwt(system.transport, "not.a-jwt", timeout=5)
        finally:
            await system.close()

    event_loop_thread.run(scenario(), timeout=30)
    reason = refused_at_connect(event_loop_thread, secure_fleet, stranger_user)
    assert "authorization" in reason, reason


def test_permissions_are_what_the_jwt_says(secure_fleet: SecureFleet) -> None:
    """The issued JWT carries the device's lists, an expiry, and the account's signature."""
    issued = secure_fleet.authority.issue(device_permissions(DEVICE_A), expires_in=600)
    claims = read_unverified(issued.jwt)
    expected = device_permissions(DEVICE_A)
    assert claims["nats"]["pub"]["allow"] == list(expected.pub.allow)
    assert claims["nats"]["sub"]["allow"] == list(expected.sub.allow)
    assert claims["iss"] == secure_fleet.authority.signing_key
    assert claims["nats"]["issuer_account"] == secure_fleet.authority.account
    assert 0 < claims["exp"] - time.time() <= 600
    assert Permission() == Permission(allow=(), deny=())


def test_credentials_written_at_once_by_many_writers_are_always_whole(tmp_path: Path) -> None:
    """Operator shards issue their credentials into one directory at the same moment:
    each writer has its own temporary file, so none truncates or moves another's."""
    import threading

    from fleet.runtime.nats.identity import write_credentials

    path = tmp_path / "operator.creds"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(100):
                write_credentials(path, jwt=f"jwt-{n}-{i}", seed=f"SU{n}-{i}")
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    text = path.read_text()
    assert text.startswith("-----BEGIN NATS USER JWT-----\njwt-")
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["operator.creds"]  # no partial left
