"""The one exception hierarchy of fleet.

Every error that fleet raises on purpose is a :class:`FleetError`. Callers decide what
to do from the *kind* of error, never from its message::

    FleetError
    ├── TemporaryError          retry after ``delay`` seconds (server away, registry down)
    │   ├── BusUnavailable      NATS cannot be reached or the request timed out
    │   ├── RevisionMismatch    a compare-and-swap on a KV revision lost a race
    │   └── Fenced              this replica does not hold the leader Lease: no writes
    └── PermanentError          retrying the same thing will fail the same way
        ├── BusError            NATS answered with an error that retrying will not fix
        ├── KeyExists           a create on a KV key that already holds a value
        ├── ContractError       (also a ValueError) bytes or names that break the wire contract
        │   └── InvalidName     a device id or deployment name that fails its rule
        ├── ConfigError         a config file or command-line value is wrong
        └── SpecError           a Deployment spec (selector, score) is invalid

Library errors are wrapped with ``raise ... from`` so the original stays in the chain.
This module must never import anything of fleet's: every layer imports it.
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error fleet raises on purpose."""


class TemporaryError(FleetError):
    """The operation may succeed later; retry after :attr:`delay` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class Fenced(TemporaryError):
    """This replica does not hold the leader Lease (any more): it must not write."""


class PermanentError(FleetError):
    """Retrying the same operation will fail the same way."""


class BusUnavailable(TemporaryError):
    """NATS is unreachable, or a request to it timed out."""


class BusRefused(BusUnavailable):
    """NATS answers but will not let these credentials in (wrong, expired, revoked)."""


class RevisionMismatch(TemporaryError):
    """A compare-and-swap write lost: the key's revision was not the one expected."""


class BusError(PermanentError):
    """NATS answered a request with an error that retrying will not fix."""


class KeyExists(PermanentError):
    """A create on a KV key that already holds a value."""


class ContractError(PermanentError, ValueError):
    """Bytes or names that break the wire contract.

    :attr:`field` names the offending field (a dotted path such as
    ``containers[0].image``) when it is known, so a log line says what to fix.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidName(ContractError):
    """A device id or deployment name that fails its rule."""


class ConfigError(PermanentError):
    """A configuration file or command-line value is wrong."""


class SpecError(PermanentError):
    """A Deployment spec (its selector or its score) is invalid."""
