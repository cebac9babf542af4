"""Every private name of pykka the actor machinery relies on, imported here and nowhere else.

Why it exists: pooled actors (:mod:`.pooled`) run pykka's own actor loop one turn at a
time on shared threads, so they reach below pykka's public API: the stop message, the
envelope, and the extension points an actor type overrides (pykka documents
``_create_actor_inbox``, ``_create_future`` and ``_start_actor_loop`` for new actor
types; ``_handle_receive`` and ``_handle_failure`` are what its own loop calls). Fenced
here, a pykka upgrade is checked in one place: :func:`problems` lists what this module
expects and does not find, and a test fails with that list on a pykka version it was
not written for (``tests/runtime/pool/test_pykka_fence.py``).

What it must never do: grow a use of pykka's internals that :func:`problems` does not check.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Final

import pykka
from pykka._envelope import Envelope
from pykka.messages import _ActorStop as ActorStop

__all__ = ["SUPPORTED", "ActorStop", "Envelope", "problems"]

SUPPORTED: Final = (4, 1), (5, 0)
"""pykka versions this fence was written for: at least the first, below the second."""

#: Methods of ``pykka.Actor`` that pooled actors override or call, with their parameters.
ACTOR_INTERNALS: Final[dict[str, tuple[str, ...]]] = {
    "_create_actor_inbox": (),
    "_create_future": (),
    "_start_actor_loop": ("self",),
    "_handle_receive": ("self", "message"),
    "_handle_failure": ("self", "exception_type", "exception_value", "traceback"),
    "_stop": ("self",),
}


def _parameters(obj: object) -> tuple[str, ...]:
    return tuple(inspect.signature(obj).parameters)  # type: ignore[arg-type]


def problems() -> list[str]:
    """What this fence expects of the installed pykka and does not find (empty: all good)."""
    found: list[str] = []
    installed = version("pykka")
    parts = tuple(int(p) for p in installed.split(".")[:2] if p.isdigit())
    low, high = SUPPORTED
    if not low <= parts < high:
        found.append(f"pykka {installed} is outside the supported range {low} <= v < {high}")
    for name, params in ACTOR_INTERNALS.items():
        method = getattr(pykka.Actor, name, None)
        if method is None:
            found.append(f"pykka.Actor.{name} is gone")
        elif params and _parameters(method) != params:
            found.append(f"pykka.Actor.{name}{_parameters(method)} is not {name}{params}")
    envelope_fields = _parameters(Envelope)
    if envelope_fields[:2] != ("message", "reply_to"):
        found.append(f"pykka Envelope{envelope_fields} no longer starts (message, reply_to)")
    if not isinstance(ActorStop(), pykka.messages._ActorStop):
        found.append("pykka.messages._ActorStop changed")
    return found
