"""The client port of the agent's ``kubernetes`` runtime: the few calls its rules make.

Why it exists: the rules (``fleet/actors/agent/runtimes/kubernetes.py``) decide what to
apply, prune and wait for; this Protocol is all they see of the cluster, so they are
unit-tested over an in-memory fake and run unchanged over :class:`~.client.KubeCluster`
(the official ``kubernetes`` client). Objects cross it as plain ``dict``s decoded with a
bounded depth; errors as :class:`ApplyRefused` (the API said no: a 4xx, its message
bounded), :class:`~fleet.runtime.kube.errors.KubeUnavailable` (away: retry) or another
:class:`~fleet.errors.FleetError`.

What it must never do: name the ``kubernetes`` package, or block without a timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fleet.errors import PermanentError

MAX_MESSAGE: Final = 300
"""An API message is shown up to this many characters."""


@dataclass(frozen=True, kw_only=True)
class Kind:
    """A resource the cluster serves (from API discovery)."""

    api_version: str  # "v1", "apps/v1"
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> str:
        """``apiVersion/Kind``: how the agent's inventory names it."""
        return f"{self.api_version}/{self.kind}"


NAMESPACES: Final = Kind(api_version="v1", kind="Namespace", plural="namespaces", namespaced=False)


class ApplyRefused(PermanentError):
    """The API refused a write (4xx but 404 and 409 conflicts of ours): ``message`` is its
    own, bounded to :data:`MAX_MESSAGE` characters."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def bounded(text: str) -> str:
    """An API message as shown to a person: one line, at most :data:`MAX_MESSAGE` chars."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


@dataclass(frozen=True, kw_only=True)
class ObjectEvent:
    """A change of a labelled object (``ADDED``, ``MODIFIED``, ``DELETED``)."""

    type: str
    kind: str
    name: str
    namespace: str | None
    labels: Mapping[str, str]


class Stream(Protocol):
    def close(self) -> None:
        """Stop; no callback runs after this returns."""


class ClusterClient(Protocol):
    """One cluster, one field manager. Every call blocks (bounded by a timeout)."""

    def version(self) -> str:
        """The API server's version (``v1.30.2``), or ``unknown``."""
        ...

    def kind(self, api_version: str, kind: str) -> Kind | None:
        """What discovery says of ``kind`` in ``api_version``; None: not served."""
        ...

    def get(self, kind: Kind, name: str, *, namespace: str | None) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        ...

    def list(
        self, kind: Kind, *, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` carrying ``labels`` (in ``namespace``, or everywhere)."""
        ...

    def apply(
        self, kind: Kind, body: Mapping[str, Any], *, namespace: str | None
    ) -> dict[str, Any]:
        """Server-side apply ``body`` with this client's field manager, forcing conflicts;
        returns the object as stored. :class:`ApplyRefused` when the API says no."""
        ...

    def delete(self, kind: Kind, name: str, *, namespace: str | None) -> bool:
        """Delete (background propagation); False when it was already gone."""
        ...

    def watch(
        self,
        kinds: tuple[Kind, ...],
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ObjectEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> Stream:
        """Follow every object of ``kinds`` carrying ``labels``, in all namespaces, on
        threads of its own (each reconnects by itself, with a bounded backoff)."""
        ...
