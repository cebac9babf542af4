"""The device's own nkey pair and its credentials file, kept in the agent's state directory.

Why it exists: an enrolled device proves who it is with a key made on the device
(docs/security.md): the seed (the private half) is made once, written to
``state_dir/identity.seed`` (0600, moved into place whole: temp file, fsync, rename, fsync
of the directory) and never leaves the device; the operator only ever sees the public key
and signs a user JWT for it, which lands in ``state_dir/device.creds`` (JWT and seed,
0600, the file nats-py connects with). Restarts reuse both.

A damaged file is set aside (``<name>.bad-<UTC timestamp>``, for a person to look at)
with a WARNING naming both paths, and what happens next is what a user would expect:

* the seed is damaged but ``device.creds`` holds a readable seed: the key is taken back
  from there (it is the same key) and ``identity.seed`` rewritten;
* the seed is damaged and there is no ``device.creds``: the key was never approved, so a
  new key is made and enrollment starts over (a request still pending for the old key
  is simply never completed);
* the seed is damaged and ``device.creds`` exists but holds no readable seed: the device
  was approved with a key that is gone. A new key would be refused by the operator (an
  id enrolled with another key) and would hide what happened, so none is made:
  :class:`KeyLost`. The agent then runs offline, on its persisted desired state, until
  a person deletes both files (and lets the operator accept the device's new key).

What it must never do: log, print or put in an error the seed; write a file others can
read; make a new key while a credential for the old one exists.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import stat
from pathlib import Path

from fleet.errors import ConfigError, PermanentError
from fleet.runtime.nats.claims import new_seed, public_key, read_unverified, sign
from fleet.runtime.nats.identity import write_credentials

logger = logging.getLogger(__name__)

SEED_FILE = "identity.seed"
CREDENTIALS_FILE = "device.creds"
MAX_FILE_BYTES = 64 * 1024  # a .creds file is ~1.5 KB; anything larger is not one
_JWT_BEGIN = "-----BEGIN NATS USER JWT-----"
_SEED_BEGIN = "-----BEGIN USER NKEY SEED-----"


class KeyLost(PermanentError):
    """The device was approved with a key whose seed cannot be read any more."""


class DeviceKey:
    """The device's user nkey: its public key, and signing with the seed it hides."""

    __slots__ = ("_seed", "public_key")

    def __init__(self, seed: str) -> None:
        self.public_key = public_key(seed, "user")  # ConfigError if it is not a user seed
        self._seed = seed

    def __repr__(self) -> str:  # never the seed
        return f"DeviceKey({self.public_key!r})"

    def sign(self, data: bytes) -> str:
        """The key's signature of ``data`` (base64url, unpadded)."""
        return sign(self._seed, data)

    def write_credentials(self, path: Path, *, jwt: str) -> None:
        """Write ``path`` as a ``.creds`` file holding ``jwt`` and this key's seed (0600)."""
        write_credentials(path, jwt=jwt, seed=self._seed)
        _fsync_dir(path.parent)


def read_credentials(path: Path) -> tuple[str, str]:
    """The JWT and the seed of a ``.creds`` file; :class:`ConfigError` if it holds none."""
    text = _read_small(path)
    lines = [line.strip() for line in text.splitlines()]

    def after(marker: str) -> str:
        try:
            return lines[lines.index(marker) + 1]
        except (ValueError, IndexError):
            raise ConfigError(f"{path}: not a credentials file (no {marker})") from None

    jwt, seed = after(_JWT_BEGIN), after(_SEED_BEGIN)
    DeviceKey(seed)  # a seed that does not parse: ConfigError (the seed is not shown)
    return jwt, seed


def jwt_subject(jwt: str) -> str | None:
    """The public key a JWT is about (``sub``), read unverified; None if it is no JWT."""
    try:
        sub = read_unverified(jwt).get("sub")
    except ConfigError:
        return None
    return sub if isinstance(sub, str) else None


class DeviceKeyStore:
    """``identity.seed`` and ``device.creds`` in ``state_dir`` (see the module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.seed_path = state_dir / SEED_FILE
        self.credentials_path = state_dir / CREDENTIALS_FILE

    def load_or_create(self) -> DeviceKey:
        """The device's key: read, taken back from ``device.creds``, or made (first start)."""
        damaged = False
        if self.seed_path.exists():
            try:
                key = DeviceKey(_read_small(self.seed_path).strip())
            except ConfigError as exc:
                self._set_aside(self.seed_path, str(exc))
                damaged = True
            else:
                _owner_only(self.seed_path)
                return key
        if self.credentials_path.exists():
            try:
                _, seed = read_credentials(self.credentials_path)
            except ConfigError as exc:
                raise KeyLost(
                    f"{self.credentials_path} exists but holds no readable key ({exc}), and "
                    f"{self.seed_path} is {'damaged' if damaged else 'missing'}: the key this "
                    "device was approved with is lost. No new key is made: delete both "
                    "files to enroll again with a new key (the operator must accept it)"
                ) from None
            key = DeviceKey(seed)
            self._write_seed(seed)
            logger.warning(
                "device key %s taken back from %s into %s", key.public_key,
                self.credentials_path, self.seed_path,
            )  # fmt: skip
            return key
        seed = new_seed("user")
        key = DeviceKey(seed)
        self._write_seed(seed)
        log = logger.warning if damaged else logger.info
        log(
            "made a new device key %s (%s)%s", key.public_key, self.seed_path,
            ": the damaged one was never approved, enrollment starts over" if damaged else "",
        )  # fmt: skip
        return key

    def read_jwt(self, key: DeviceKey) -> str | None:
        """The JWT in ``device.creds`` if it is ``key``'s; a file that is not (damaged, or
        another key's) is set aside and None returned: the device enrolls again."""
        if not self.credentials_path.exists():
            return None
        try:
            jwt, seed = read_credentials(self.credentials_path)
        except ConfigError as exc:
            self._set_aside(self.credentials_path, str(exc))
            return None
        if DeviceKey(seed).public_key != key.public_key or jwt_subject(jwt) != key.public_key:
            self._set_aside(self.credentials_path, f"not the credentials of {key.public_key}")
            return None
        _owner_only(self.credentials_path)
        return jwt

    def save_credentials(self, key: DeviceKey, *, jwt: str) -> None:
        """Write ``device.creds`` whole (0600): ``jwt`` with ``key``'s seed."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        key.write_credentials(self.credentials_path, jwt=jwt)

    def _write_seed(self, seed: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        partial = self.seed_path.with_name(f".{SEED_FILE}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask, or a partial file left before
            os.write(fd, f"{seed}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, self.seed_path)
        _fsync_dir(self.state_dir)

    def _set_aside(self, path: Path, reason: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = path.with_name(f"{path.name}.bad-{stamp}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            raise KeyLost(f"{path} cannot be read ({reason}) nor set aside ({exc})") from None
        logger.warning("%s cannot be used (%s); set it aside as %s", path, reason[:300], aside)


def _read_small(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not ASCII text") from None


def _owner_only(path: Path) -> None:
    """A secret file others can read is made 0600 again, with a WARNING."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); made it 0600", path, mode)
        path.chmod(0o600)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
