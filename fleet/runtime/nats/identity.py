"""The fleet's identities on the bus: the keys that issue credentials, and revocation.

Why it exists: every program on the bus connects as a user of the fleet's account, and
what a user may do is written in its JWT (docs/security.md). An :class:`Authority`
holds the four keys that make that true: the operator's (signs account JWTs), the
system account's (its users push account updates to the server), the fleet account's
identity key (signs nothing but names the account) and the account's signing key
(signs the users' JWTs, so the identity key can stay offline and the signing key can
be replaced). It issues user JWTs with the permissions of
:mod:`fleet.runtime.nats.permissions` and an expiry, writes ``.creds`` files (0600),
and revokes a user by pushing the account JWT again, with a ``revocations`` entry, to
``$SYS.REQ.CLAIMS.UPDATE``: nats-server closes the user's connections at once and
refuses its JWTs issued up to then.

It also signs user JWTs for public keys it never saw the seed of (:meth:`Authority.user_jwt`):
how an enrolled device gets its credential. The keys are kept in files by
:mod:`fleet.runtime.nats.authority_files`; rotation of the signing key is to come.

What it must never do: log or put a seed in an error message, write a credentials file
anyone but its owner can read, or issue a user JWT without permissions of its own.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from fleet.errors import BusError, ConfigError
from fleet.runtime.nats import subjects
from fleet.runtime.nats.claims import (
    AccountFields,
    AccountLimits,
    Claims,
    OperatorFields,
    ResponsePermission,
    UserFields,
    encode,
    new_seed,
    public_key,
)
from fleet.runtime.nats.permissions import RESPONSE_WINDOW_NS, Permissions
from fleet.runtime.nats.server import OperatorAuth
from fleet.runtime.nats.transport import Transport

#: The fleet's account: JetStream on, nothing else bounded (users are bounded by permissions).
JETSTREAM_UNLIMITED = AccountLimits(mem_storage=-1, disk_storage=-1, streams=-1, consumer=-1)
NO_JETSTREAM = AccountLimits()  # the system account's


class UserCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """A user's JWT and its seed: what a ``.creds`` file holds. The seed is a secret."""

    jwt: str
    seed: str
    public_key: str

    def __repr__(self) -> str:  # never the seed
        return f"UserCredentials(public_key={self.public_key!r})"

    def write(self, path: Path) -> Path:
        """Write ``path`` as nats-server's tools do, readable by its owner only (0600)."""
        write_credentials(path, jwt=self.jwt, seed=self.seed)
        return path


def write_credentials(path: Path, *, jwt: str, seed: str) -> None:
    """Write a ``.creds`` file, created 0600 and moved into place whole."""
    text = (
        f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )
    # A temporary file of its own (shards issue their credentials at the same moment, into
    # one directory): two writers never truncate or move each other's.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    partial = Path(name)
    try:
        try:
            os.fchmod(fd, 0o600)  # mkstemp makes it 0600; whatever the umask, say so
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class AuthoritySeeds(msgspec.Struct, frozen=True, kw_only=True):
    """The four private keys of an :class:`Authority`: secrets, never shown."""

    operator: str
    system: str
    account: str
    signing: str

    def __repr__(self) -> str:  # never a seed
        return "AuthoritySeeds(...)"


class Authority:
    """The operator, the system account and the fleet's account (see the module docstring)."""

    def __init__(
        self,
        *,
        operator_seed: str,
        system_seed: str,
        account_seed: str,
        signing_seed: str,
        name: str = "fleet",
        limits: AccountLimits = JETSTREAM_UNLIMITED,
        revocations: Mapping[str, int] | None = None,
        retired_signing_keys: Mapping[str, int] | None = None,
    ) -> None:
        self._operator_seed = operator_seed
        self._system_seed = system_seed
        self._account_seed = account_seed
        self._signing_seed = signing_seed
        self.name = name
        self.limits = limits
        self.system_account = public_key(system_seed, "account")
        self.account = public_key(account_seed, "account")
        self.signing_key = public_key(signing_seed, "account")
        self.revocations: dict[str, int] = dict(revocations or {})
        # Signing keys replaced by a rotation, each until when (unix seconds) the account
        # still lists it: the JWTs it signed stay valid until then, not after.
        self.retired_signing_keys: dict[str, int] = dict(retired_signing_keys or {})
        self.operator_jwt = encode(
            Claims(
                sub=public_key(operator_seed, "operator"),
                name=name,
                nats=OperatorFields(system_account=self.system_account),
            ),
            signer_seed=operator_seed,
            signer_kind="operator",
        )

    @classmethod
    def create(cls, *, name: str = "fleet") -> Authority:
        """An authority with four fresh keys."""
        return cls(
            operator_seed=new_seed("operator"),
            system_seed=new_seed("account"),
            account_seed=new_seed("account"),
            signing_seed=new_seed("account"),
            name=name,
        )

    def __repr__(self) -> str:  # never a seed
        return f"Authority(name={self.name!r}, account={self.account!r})"

    def seeds(self) -> AuthoritySeeds:
        """The four seeds, to keep them (:mod:`fleet.runtime.nats.authority_files`)."""
        return AuthoritySeeds(
            operator=self._operator_seed, system=self._system_seed,
            account=self._account_seed, signing=self._signing_seed,
        )  # fmt: skip

    # -- account JWTs -------------------------------------------------------------------

    def signing_keys(self, *, now: float | None = None) -> tuple[str, ...]:
        """The keys whose user JWTs the account accepts now: the current one, then each
        retired one until its time is up."""
        when = time.time() if now is None else now
        retired = sorted(k for k, until in self.retired_signing_keys.items()
                         if until > when and k != self.signing_key)  # fmt: skip
        return (self.signing_key, *retired)

    def account_jwt(self) -> str:
        """The fleet account's JWT now: its limits, signing keys and revocations."""
        return self._account(
            self.account, f"{self.name}-account", limits=self.limits,
            signing_keys=self.signing_keys(), revocations=self.revocations,
        )  # fmt: skip

    def system_account_jwt(self) -> str:
        return self._account(self.system_account, f"{self.name}-system")

    def _account(
        self,
        key: str,
        name: str,
        *,
        limits: AccountLimits = NO_JETSTREAM,
        signing_keys: tuple[str, ...] = (),
        revocations: Mapping[str, int] | None = None,
    ) -> str:
        fields = AccountFields(
            limits=limits, signing_keys=signing_keys, revocations=dict(revocations or {})
        )
        return encode(
            Claims(sub=key, name=name, nats=fields),
            signer_seed=self._operator_seed,
            signer_kind="operator",
        )

    def server_auth(self) -> OperatorAuth:
        """What a nats-server needs to trust this authority (its config)."""
        return OperatorAuth(
            operator_jwt=self.operator_jwt,
            system_account=self.system_account,
            accounts={
                self.system_account: self.system_account_jwt(),
                self.account: self.account_jwt(),
            },
        )

    # -- users --------------------------------------------------------------------------

    def issue(self, permissions: Permissions, *, expires_in: float | None) -> UserCredentials:
        """A new user of the fleet's account with ``permissions``, valid for
        ``expires_in`` seconds (None: until revoked)."""
        seed = new_seed("user")
        key = public_key(seed, "user")
        token = self.user_jwt(key, permissions, expires_in=expires_in)
        return UserCredentials(jwt=token, seed=seed, public_key=key)

    def user_jwt(self, key: str, permissions: Permissions, *, expires_in: float | None) -> str:
        """A user JWT for ``key`` (a user's public key: the seed stays with its owner, as
        an enrolled device's does), with ``permissions``, valid for ``expires_in`` s."""
        if not key.startswith("U"):
            raise ConfigError(f"{key[:60]!r} is not a user's public key")
        resp = (
            ResponsePermission(max=permissions.responses, ttl=RESPONSE_WINDOW_NS)
            if permissions.responses
            else None
        )
        fields = UserFields(
            pub=permissions.pub, sub=permissions.sub, resp=resp, issuer_account=self.account
        )
        return encode(
            Claims(sub=key, name=permissions.name, exp=_expiry(expires_in), nats=fields),
            signer_seed=self._signing_seed,
            signer_kind="account",
        )

    def issue_system_user(self, *, name: str, expires_in: float | None) -> UserCredentials:
        """A user of the system account (no limits): it may push account updates."""
        seed = new_seed("user")
        key = public_key(seed, "user")
        token = encode(
            Claims(sub=key, name=name, exp=_expiry(expires_in), nats=UserFields()),
            signer_seed=self._system_seed,
            signer_kind="account",
        )
        return UserCredentials(jwt=token, seed=seed, public_key=key)

    def revoke(self, user_public_key: str, *, at: int | None = None) -> str:
        """Revoke every JWT of ``user_public_key`` issued up to ``at`` (default: now);
        return the account JWT to push (:func:`push_account_jwt`)."""
        if not user_public_key.startswith("U"):
            raise ConfigError(f"{user_public_key[:60]!r} is not a user's public key")
        when = int(time.time()) if at is None else at
        self.revocations[user_public_key] = max(when, self.revocations.get(user_public_key, 0))
        return self.account_jwt()


def _expiry(expires_in: float | None) -> int:
    return 0 if expires_in is None else int(time.time() + expires_in)


_UPDATED = 200  # the resolver's code for a stored update


class _Reply(msgspec.Struct, kw_only=True):
    data: dict[str, object] | None = None
    error: dict[str, object] | None = None


async def push_account_jwt(transport: Transport, account_jwt: str, *, timeout: float) -> None:
    """Push an account JWT to the servers' resolvers (a system-account connection):
    nats-server applies it at once, closing the connections of users it now revokes.
    ``BusError`` if the server refused it, ``BusUnavailable`` if it did not answer."""
    reply = await transport.request(subjects.CLAIMS_UPDATE, account_jwt.encode(), timeout=timeout)
    what = "account update"
    try:
        answer = msgspec.json.decode(reply.data, type=_Reply)
    except msgspec.DecodeError as exc:
        raise BusError(f"{what}: unreadable answer {reply.data[:200]!r}") from exc
    if answer.error is not None or answer.data is None:
        raise BusError(f"{what} refused: {answer.error or reply.data[:200]!r}")
    if answer.data.get("code") != _UPDATED:
        raise BusError(f"{what} refused: {answer.data}")
