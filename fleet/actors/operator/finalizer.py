"""The finalizer rules: when a Deployment gets ``fleet.nationtech.io/finalizer``, when it
may lose it.

Why it exists: a Deployment owns desired-state entries in a bucket Kubernetes knows
nothing of; the finalizer holds the resource until they are gone. The rules are lifted out
of the Deployment actor (as kopf lifts its own out of its engine) so that they can be read
in one screen and tested without an actor:

* a live Deployment without the finalizer gets it;
* a deleting Deployment that owns its name keeps it until every entry is deleted (none
  left, none being written);
* a deleting Deployment that does not own its name has no entries, but that is sure only
  after the initial sync (the Deployment list and all four buckets): never before it. A
  Deployment deleted while the operator was down once lost its finalizer at start while
  its entries were still in the bucket.

Pure functions, and one small class that asks for each change once (through the ports
it is given: no actors).
"""

from __future__ import annotations

import logging

from fleet.contracts import FINALIZER
from fleet.runtime.kube.client import KubeObject

from .messages import FinalizerDone
from .ports import DeploymentApiPort, RepliesPort

logger = logging.getLogger(__name__)


def is_deleting(obj: KubeObject | None) -> bool:
    return obj is not None and obj.deletion_timestamp is not None


def has_finalizer(obj: KubeObject) -> bool:
    return FINALIZER in obj.finalizers


def needs_finalizer(obj: KubeObject | None) -> bool:
    """A live Deployment without the finalizer: add it."""
    return obj is not None and not is_deleting(obj) and not has_finalizer(obj)


def may_release(
    obj: KubeObject | None, *, synced: bool, owner: bool, entries: int, writing: int
) -> bool:
    """Whether a Deployment being deleted may lose its finalizer now.

    ``owner``: it owns its name and is active (its entries are known); ``entries``: live
    entries it still knows of; ``writing``: writes in flight.
    """
    if not is_deleting(obj):
        return False
    if not owner:
        return synced
    return entries == 0 and writing == 0


class FinalizerRequests:
    """Which finalizer change was last asked for, so that each is asked once.

    :meth:`want` says whether to send the request; :meth:`failed` forgets it (the next
    attempt asks again). Given a :class:`~.ports.DeploymentApiPort` and a
    :class:`~.ports.RepliesPort`, :meth:`request` also sends it (outcome:
    ``FinalizerDone``) and :meth:`done` reads the outcome.
    """

    def __init__(
        self,
        key: tuple[str, str] = ("", ""),
        *,
        api: DeploymentApiPort | None = None,
        replies: RepliesPort | None = None,
    ) -> None:
        self._key = key
        self._api = api
        self._replies = replies
        self._wanted: bool | None = None

    def request(self, obj: KubeObject | None, *, present: bool) -> None:
        """Add (``present``) or remove the finalizer, unless asked already."""
        if not self.want(obj, present=present) or self._api is None or self._replies is None:
            return
        namespace, name = self._key
        if not present:  # said before it is sent: the answer may never come back
            logger.info("deployment %s/%s: entries deleted, releasing the finalizer", *self._key)
        self._replies.when_done(
            self._api.set_deployment_finalizer(namespace=namespace, name=name, present=present),
            on_result=lambda _ok: FinalizerDone(present=present, error=None),
            on_error=lambda exc: FinalizerDone(present=present, error=str(exc)),
        )

    def done(self, outcome: FinalizerDone) -> bool:
        """The request completed; whether to try again later (it failed)."""
        if outcome.error is not None:
            logger.warning(
                "deployment %s/%s: finalizer %s failed: %s",
                *self._key, "add" if outcome.present else "removal", outcome.error,
            )  # fmt: skip
            self.failed()
            return True
        if not outcome.present:
            logger.info("deployment %s/%s: finalizer released", *self._key)
        return False

    def want(self, obj: KubeObject | None, *, present: bool) -> bool:
        if obj is None or self._wanted is present:
            return False
        if not present and not has_finalizer(obj):
            self._wanted = False  # nothing to remove
            return False
        self._wanted = present
        return True

    def failed(self) -> None:
        self._wanted = None
