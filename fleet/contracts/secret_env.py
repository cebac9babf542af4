"""Environment variables from a Secret: a container's ``secret_env``.

Why it exists: a gateway's database password or API token is an environment variable, and
a Secret's value is never on the bus in clear (issue 14 item 3, docs/workloads.md
"Environment variables from a Secret"). ``secret_env`` maps an env variable's name to
exactly one source, on the same path as a Secret file (:mod:`.files`):

* ``secret``: a key of a Secret in the Deployment's namespace. The *Deployment's* words
  only: the operator resolves it into ``sealed`` before anything reaches the bus, and an
  agent refuses an entry that still holds one;
* ``sealed``: the value sealed to the receiving device's key (:mod:`.sealed`).

Bounds: at most :data:`MAX_SECRET_ENV` variables per container, names as ``env``'s
(non-empty, no ``=`` or NUL) and never also in ``env``, :data:`MAX_SECRET_ENV_BYTES` per
value and :data:`MAX_SECRET_ENV_TOTAL` for all values of a score (plaintext; within the
64 KiB desired-value bound). Optional and omitted when empty, so a score without it
encodes and hashes as before. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from fleet.errors import ContractError

from .files import KeyRef
from .sealed import SEAL_OVERHEAD, SealedValue

MAX_SECRET_ENV: Final = 32
"""Variables from Secrets of one container."""
MAX_SECRET_ENV_BYTES: Final = 4096
"""One value (plaintext)."""
MAX_SECRET_ENV_TOTAL: Final = 8192
"""All values of one score (plaintext)."""
SOURCES: Final[tuple[str, ...]] = ("secret", "sealed")


class SecretEnvSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where one variable's value comes from: exactly one of ``secret``, ``sealed``."""

    secret: KeyRef | None = None
    sealed: SealedValue | None = None

    def __post_init__(self) -> None:
        given = [name for name in SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ContractError(
                f"a secret_env variable needs exactly one of {', '.join(SOURCES)}, got "
                f"{', '.join(given) or 'none'}",
                field="sealed" if not given else given[1],
            )
        if self.size > MAX_SECRET_ENV_BYTES:
            raise ContractError(
                f"the sealed value holds about {self.size} bytes, at most "
                f"{MAX_SECRET_ENV_BYTES} allowed",
                field="sealed",
            )

    @property
    def size(self) -> int:
        """The value's size in bytes (at most: from the envelope's length); a reference: 0."""
        if self.sealed is None:
            return 0
        return max(0, len(self.sealed.data) * 3 // 4 - SEAL_OVERHEAD - 2)

    @property
    def reference(self) -> str | None:
        """``secret`` if it still names one (the operator's to resolve)."""
        return "secret" if self.secret is not None else None


def check_secret_env(
    secret_env: Mapping[str, SecretEnvSource], *, env: Mapping[str, str] | None
) -> int:
    """One container's ``secret_env``: count, names, none also in ``env``; its size."""
    if len(secret_env) > MAX_SECRET_ENV:
        raise ContractError(
            f"secret_env has {len(secret_env)} variables, at most {MAX_SECRET_ENV}",
            field="secret_env",
        )
    total = 0
    for name, source in secret_env.items():
        if not isinstance(name, str) or not name or "=" in name or "\x00" in name:
            raise ContractError(
                f"invalid secret_env name {str(name)[:60]!r}: must be non-empty, without "
                "'=' or NUL",
                field="secret_env",
            )
        if env and name in env:
            raise ContractError(
                f"variable {name[:60]!r} is set in both env and secret_env: give it one source",
                field=f"secret_env.{name[:60]}",
            )
        total += source.size
    return total
