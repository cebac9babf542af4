"""The fleet's authority kept in a directory: its keys, its revocations, and the files
nats-server and the other programs need.

Why it exists: the operator signs every device's JWT and revokes keys
(:class:`~fleet.runtime.nats.identity.Authority`); both must survive a restart, and a
revocation must never be forgotten (a forgotten one lets a revoked device back in after
the next renewal). ``fleet-operator --auth-dir DIR`` keeps here:

* ``operator.seed``, ``system.seed``, ``account.seed``, ``signing.seed``: the four keys
  (0600; created once, on the first start or by ``--init-auth``);
* ``revocations.json``: every revoked user key and when, written (whole, fsynced)
  *before* the revocation is pushed to the server;
* ``retired-signing-keys.json``: after ``--rotate-signing-key``, each replaced signing
  key's public key and until when the account still accepts what it signed;
* ``nats-auth.conf``: what nats-server must include to trust this authority (the
  operator JWT, the system account, a full resolver preloaded with both accounts), and
  ``nats-accounts.conf``, the same without the resolver line, for a server whose
  configuration says where its resolver keeps accounts (the official NATS Helm chart's
  ``config.resolver``: deploy/nats/values.yaml);
* ``bootstrap.creds`` (what devices hold before they are enrolled: it can only ask),
  ``fleetctl.creds``, and, at each start, ``operator.creds``, ``enrollment.creds`` (the
  connection that answers enrollment) and ``system.creds``.

The directory is created 0700. The keys may instead come from a directory of their own
(``--auth-keys``: a mounted Kubernetes Secret, read-only): they are then read there, never
made nor copied, and the directory above keeps only what the operator writes. What it
must never do: write a seed readable by anyone but its owner, log one, or drop a
revocation it read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

from fleet.errors import ConfigError
from fleet.runtime.nats.claims import new_seed
from fleet.runtime.nats.identity import Authority, UserCredentials, write_credentials
from fleet.runtime.nats.permissions import (
    bootstrap_permissions,
    enrollment_permissions,
    fleetctl_permissions,
    operator_permissions,
)

logger = logging.getLogger(__name__)

SEEDS: Final = ("operator", "system", "account", "signing")
REVOCATIONS: Final = "revocations.json"
SERVER_CONFIG: Final = "nats-auth.conf"
ACCOUNTS_CONFIG: Final = "nats-accounts.conf"
RETIRED_KEYS: Final = "retired-signing-keys.json"
_revocations = msgspec.json.Decoder(dict[str, int])


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path``, 0600, fsynced, moved into place whole."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def _read_revocations(directory: Path, name: str = REVOCATIONS) -> dict[str, int]:
    path = directory / name
    if not path.exists():
        return {}
    try:
        return _revocations.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); refusing to start without it") from exc


def load_or_create(directory: Path, *, keys: Path | None = None) -> Authority:
    """The authority kept in ``directory``; four fresh keys (and the files devices and
    tools need) when it holds none. Half a set of keys is a :class:`ConfigError`.

    With ``keys``, the four seeds are read from there (all four, or a ConfigError naming
    what is missing; nothing is ever made there) and ``directory`` holds the rest."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {name: (keys or directory) / f"{name}.seed" for name in SEEDS}
    present = [name for name, path in paths.items() if path.exists()]
    if keys is not None and len(present) != len(SEEDS):
        absent = ", ".join(f"{name}.seed" for name in SEEDS if name not in present)
        raise ConfigError(
            f"{keys}: missing {absent} (make the four with `fleet-operator --auth-dir DIR "
            "--init-auth` and put them there)"
        )
    if not present:
        authority = Authority.create()
        seeds = authority.seeds()
        for name, value in zip(SEEDS, (seeds.operator, seeds.system, seeds.account, seeds.signing),
                               strict=True):  # fmt: skip
            _write_private(paths[name], value.encode())
        _write_tools(directory, authority)
        logger.info(
            "created a new fleet authority in %s (account %s)", directory, authority.account
        )
    elif len(present) != len(SEEDS):
        missing = sorted(set(SEEDS) - set(present))
        raise ConfigError(f"{directory}: missing {', '.join(missing)}.seed (half an authority)")
    else:
        text = {name: _read_seed(paths[name]) for name in SEEDS}
        try:
            authority = Authority(
                operator_seed=text["operator"], system_seed=text["system"],
                account_seed=text["account"], signing_seed=text["signing"],
                revocations=_read_revocations(directory),
                retired_signing_keys=_read_revocations(keys or directory, RETIRED_KEYS),
            )  # fmt: skip
        except ConfigError as exc:  # "malformed account nkey seed": which file, then
            raise ConfigError(f"{keys or directory}: {exc}") from exc
        if keys is not None and not (directory / "bootstrap.creds").exists():
            _write_tools(directory, authority)
    write_server_config(directory, authority)
    return authority


def _read_seed(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from exc


def _write_tools(directory: Path, authority: Authority) -> None:
    authority.issue(bootstrap_permissions(), expires_in=None).write(directory / "bootstrap.creds")
    authority.issue(fleetctl_permissions(), expires_in=None).write(directory / "fleetctl.creds")


def write_server_config(directory: Path, authority: Authority) -> Path:
    """``nats-auth.conf``: include it in nats-server's configuration (``include``)."""
    auth = authority.server_auth()
    preload = ", ".join(f'{key}: "{jwt}"' for key, jwt in auth.accounts.items())
    accounts = (
        f'operator: "{auth.operator_jwt}"\n'
        f'system_account: "{auth.system_account}"\n'
        f"resolver_preload: {{ {preload} }}\n"
    )
    _write_private(directory / ACCOUNTS_CONFIG, accounts.encode())
    resolver = 'resolver: { type: full, dir: "./accounts", allow_delete: false }\n'
    path = directory / SERVER_CONFIG
    _write_private(path, (accounts + resolver).encode())
    return path


def rotate_signing_key(directory: Path, *, keep_old_for: float) -> tuple[str, str, int]:
    """Replace the signing key in ``directory``: the old one stays accepted for
    ``keep_old_for`` seconds (what it signed keeps working until then: devices renew
    with the new one), ``bootstrap.creds`` and ``fleetctl.creds`` are issued anew.
    Returns (old public key, new public key, until when the old one is accepted).

    The order makes a crash at any step safe: the old key is written down as retired
    before the new seed replaces it (a crash in between leaves the old key current and
    also listed, harmless); the tools' credentials follow (a crash before leaves them
    signed by the old key, accepted until its time is up; run it again)."""
    authority = load_or_create(directory)
    old = authority.signing_key
    until = int(time.time() + keep_old_for)
    retired = {k: v for k, v in authority.retired_signing_keys.items() if v > time.time()}
    retired[old] = max(until, retired.get(old, 0))
    _write_private(directory / RETIRED_KEYS, msgspec.json.encode(dict(sorted(retired.items()))))
    seed = new_seed("account")
    _write_private(directory / "signing.seed", seed.encode())
    rotated = load_or_create(directory)
    _write_tools(directory, rotated)
    logger.info("signing key %s replaced by %s; the old one is accepted until %d",
                old, rotated.signing_key, until)  # fmt: skip
    return old, rotated.signing_key, until


def save_revocations(directory: Path, revocations: Mapping[str, int]) -> None:
    """Keep every revocation (before it is pushed: a crash in between re-pushes it)."""
    _write_private(directory / REVOCATIONS, msgspec.json.encode(dict(sorted(revocations.items()))))


def service_credentials(directory: Path, authority: Authority) -> tuple[Path, Path, Path]:
    """The operator's own ``.creds``, its enrollment desk's and the system user's, issued
    now (no expiry: they are replaced at every start; rotate the keys to void old ones)."""
    operator, enrollment = directory / "operator.creds", directory / "enrollment.creds"
    authority.issue(operator_permissions(), expires_in=None).write(operator)
    authority.issue(enrollment_permissions(), expires_in=None).write(enrollment)
    system: UserCredentials = authority.issue_system_user(name="fleet-system", expires_in=None)
    write_credentials(directory / "system.creds", jwt=system.jwt, seed=system.seed)
    return operator, directory / "system.creds", enrollment
