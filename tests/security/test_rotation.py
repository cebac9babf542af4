"""Rotating the account's signing key, on a real nats-server in auth and TLS mode.

``fleet-operator --auth-dir DIR --rotate-signing-key`` makes a new signing key and keeps
the old one accepted for a while: what the old key signed (devices' JWTs, the old
``bootstrap.creds``) connects until then, what the new key signs connects at once, and
once the old key's time is up only the new key's JWTs get in. The account JWT is pushed
as the operator pushes it (a system user, ``$SYS.REQ.CLAIMS.UPDATE``).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import pytest

from fleet.contracts import DeviceId
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.authority_files import RETIRED_KEYS, load_or_create, rotate_signing_key
from fleet.runtime.nats.identity import Authority, push_account_jwt, write_credentials
from fleet.runtime.nats.natspy import NatsPyTransport
from fleet.runtime.nats.permissions import device_permissions
from fleet.runtime.nats.server import LocalNatsServer
from tests.budgets import budget

pytestmark = pytest.mark.timeout(120)

DEVICE = DeviceId("rot-1")


def refused(loop: EventLoopThread, server: LocalNatsServer, ca: LocalCa, creds: Path,
            inbox: str) -> str | None:  # fmt: skip
    """Why the server refuses ``creds``; None when it lets them in."""

    async def run() -> str | None:
        try:
            client = await nats.connect(
                server.url, user_credentials=str(creds),
                tls=ssl.create_default_context(cafile=str(ca.ca_cert)),
                inbox_prefix=inbox, allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=5,
            )  # fmt: skip
        except (nats.errors.Error, OSError) as exc:
            return repr(exc) or "refused"
        await client.close()
        return None

    return loop.run(run(), timeout=budget(30))


def push(loop: EventLoopThread, server: LocalNatsServer, ca: LocalCa, authority: Authority,
         directory: Path) -> None:  # fmt: skip
    """What the operator does at start: push the account JWT as a system user."""
    system = authority.issue_system_user(name="rot-system", expires_in=600)
    path = directory / "system-push.creds"
    write_credentials(path, jwt=system.jwt, seed=system.seed)

    async def run() -> None:
        transport = NatsPyTransport(
            urls=[server.url], name="rot-system", credentials=path, tls_ca=ca.ca_cert,
            inbox_prefix="_INBOX_system",
        )  # fmt: skip
        await transport.start()
        await transport.wait_connected(timeout=budget(20))
        try:
            await push_account_jwt(transport, authority.account_jwt(), timeout=10)
        finally:
            await transport.close()

    loop.run(run(), timeout=budget(30))


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


def test_the_old_key_works_until_its_time_the_new_one_at_once(
    tmp_path: Path, local_ca: LocalCa, event_loop_thread: EventLoopThread
) -> None:
    loop, ca, auth = event_loop_thread, local_ca, tmp_path / "auth"
    before = load_or_create(auth)
    server = LocalNatsServer(store_dir=tmp_path / "js", auth=before.server_auth(), tls=ca.server)
    server.start()
    try:
        device_inbox = device_permissions(DEVICE).inbox_prefix
        old_device = before.issue(device_permissions(DEVICE), expires_in=3600)
        old_creds = old_device.write(tmp_path / "old-device.creds")
        old_bootstrap = tmp_path / "old-bootstrap.creds"
        shutil.copy(auth / "bootstrap.creds", old_bootstrap)
        assert refused(loop, server, ca, old_creds, device_inbox) is None

        done = subprocess.run(
            [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(auth),
             "--rotate-signing-key", "--device-credential-ttl", "3600"],
            capture_output=True, text=True, timeout=budget(60), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        after = load_or_create(auth)
        assert after.signing_key != before.signing_key
        assert f"signing key {before.signing_key} replaced by {after.signing_key}" in done.stdout
        assert after.signing_keys() == (after.signing_key, before.signing_key)
        assert after.account == before.account  # the same account: nothing else changes
        push(loop, server, ca, after, tmp_path)

        # During the overlap: the old key's JWTs still get in; the new key's (a renewal
        # for the same device key, the new bootstrap.creds) get in at once.
        assert refused(loop, server, ca, old_creds, device_inbox) is None
        assert refused(loop, server, ca, old_bootstrap, subjects.BOOTSTRAP_INBOX_PREFIX) is None
        renewed = tmp_path / "renewed.creds"
        write_credentials(
            renewed,
            jwt=after.user_jwt(old_device.public_key, device_permissions(DEVICE), expires_in=3600),
            seed=old_device.seed,
        )
        assert refused(loop, server, ca, renewed, device_inbox) is None
        new_bootstrap = auth / "bootstrap.creds"
        assert new_bootstrap.read_bytes() != old_bootstrap.read_bytes()
        assert refused(loop, server, ca, new_bootstrap, subjects.BOOTSTRAP_INBOX_PREFIX) is None

        # The old key's time is up (as the file says once it has passed).
        retired = json.loads((auth / RETIRED_KEYS).read_text())
        assert retired[before.signing_key] >= time.time() + 3600  # ttl + an hour
        (auth / RETIRED_KEYS).write_text(json.dumps({before.signing_key: int(time.time()) - 1}))
        later = load_or_create(auth)
        assert later.signing_keys() == (later.signing_key,)
        push(loop, server, ca, later, tmp_path)
        for creds, inbox in ((old_creds, device_inbox),
                             (old_bootstrap, subjects.BOOTSTRAP_INBOX_PREFIX)):  # fmt: skip
            refusal = refused(loop, server, ca, creds, inbox)
            assert refusal is not None, f"{creds.name}: signed by a dropped key, let in"
            assert "Authorization" in refusal, refusal
        assert refused(loop, server, ca, renewed, device_inbox) is None
        assert refused(loop, server, ca, new_bootstrap, subjects.BOOTSTRAP_INBOX_PREFIX) is None
    finally:
        server.stop()


def test_a_rotation_cut_short_at_each_step_leaves_a_working_authority(tmp_path: Path) -> None:
    """Killed after writing the retired key, before the new seed: the old key is both
    current and listed once; run again, the rotation completes."""
    auth = tmp_path / "auth"
    before = load_or_create(auth)
    (auth / RETIRED_KEYS).write_text(json.dumps({before.signing_key: int(time.time()) + 60}))
    half = load_or_create(auth)
    assert half.signing_key == before.signing_key
    assert half.signing_keys() == (before.signing_key,)  # never listed twice
    old, new, _ = rotate_signing_key(auth, keep_old_for=120)
    assert old == before.signing_key
    assert load_or_create(auth).signing_keys() == (new, old)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rotate-signing-key"], "--rotate-signing-key needs --auth-dir"),
        (["--rotate-signing-key", "--auth-dir", "{d}", "--auth-keys", "{d}"],
         "not --auth-keys"),
        (["--rotate-signing-key", "--auth-dir", "{d}/empty"], "no signing.seed to rotate"),
    ],
    ids=["no-dir", "keys-from-a-secret", "nothing-to-rotate"],
)  # fmt: skip
def test_rotation_without_a_key_directory_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.replace("{d}", str(tmp_path)) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", *argv],
        capture_output=True, text=True, timeout=budget(60), check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    assert not (tmp_path / "empty" / "signing.seed").exists()
