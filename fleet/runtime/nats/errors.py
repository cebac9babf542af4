"""Translate nats-py's errors into fleet's, in one place.

nats-py raises a zoo of exceptions (client, JetStream API, KV, plain asyncio and OS
errors). Callers of the runtime decide from fleet's kinds only: ``BusUnavailable``
(retry later), ``RevisionMismatch`` (a lost compare-and-swap), ``BusError`` (the rest).
Only this module and :mod:`fleet.runtime.nats.natspy` import nats-py.

What it must never do: let anything but a :class:`~fleet.errors.FleetError` out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors

from fleet.errors import BusError, BusUnavailable, FleetError, RevisionMismatch

UNAVAILABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    asyncio.TimeoutError,
    OSError,
)


def translate(exc: BaseException, *, what: str) -> FleetError:
    """fleet's error for ``exc`` raised by nats-py while doing ``what`` (raise it ``from``).

    Unreachable or slow server, or nobody answering: ``BusUnavailable``; a lost
    compare-and-swap: ``RevisionMismatch``; anything else: ``BusError``. fleet's own
    errors are returned unchanged.
    """
    if isinstance(exc, FleetError):
        return exc
    if isinstance(exc, nats.js.errors.KeyWrongLastSequenceError):
        return RevisionMismatch(f"{what}: the key is no longer at that revision")
    if isinstance(exc, nats.errors.NoRespondersError):
        return BusUnavailable(f"{what}: no responders (missing stream?)")
    if isinstance(exc, UNAVAILABLE):
        return BusUnavailable(f"{what}: {exc!r}")
    if isinstance(exc, nats.js.errors.APIError):  # its repr hides the server's description
        return BusError(f"{what}: {exc}")
    return BusError(f"{what}: {exc!r}")


@contextlib.asynccontextmanager
async def translate_errors(what: str) -> AsyncIterator[None]:
    """Run the block with nats-py's errors turned into fleet's (:func:`translate`)."""
    try:
        yield
    except FleetError:
        raise
    except Exception as exc:
        raise translate(exc, what=what) from exc
