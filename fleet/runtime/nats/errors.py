"""Translate nats-py's errors into fleet's, in one place.

nats-py raises a zoo of exceptions (client, JetStream API, KV, plain asyncio and OS
errors). Callers of the runtime decide from fleet's kinds only: ``BusUnavailable``
(retry later), ``RevisionMismatch`` (a lost compare-and-swap), ``BusError`` (the rest).
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


@contextlib.asynccontextmanager
async def translate_errors(what: str) -> AsyncIterator[None]:
    """Turn nats-py's errors into fleet's, naming the operation (``raise ... from``).

    Unreachable or slow server: ``BusUnavailable``; a lost compare-and-swap:
    ``RevisionMismatch``; anything else nats-py raises: ``BusError``. fleet's own
    errors pass through unchanged.
    """
    try:
        yield
    except FleetError:
        raise
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise RevisionMismatch(f"{what}: the key is no longer at that revision") from exc
    except UNAVAILABLE as exc:
        raise BusUnavailable(f"{what}: {exc!r}") from exc
    except nats.js.errors.APIError as exc:  # its repr hides the server's description
        raise BusError(f"{what}: {exc}") from exc
    except nats.errors.Error as exc:
        raise BusError(f"{what}: {exc!r}") from exc
