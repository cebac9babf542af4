"""The device's desired state as the agent keeps it: valid entries, and unfinished deletions.

Why it exists: offline autonomy rests on three rules that are easy to get wrong inside
an actor, so they live here as a plain class the device actor calls (and a unit test
checks without podman or NATS):

* a value is stored only once it decoded as a score of a type this device has a runtime
  for; a malformed one (or one of another type) is answered with a ``Failed`` Apply and
  never stored, so the last valid entry stays, keeps running, and runs again after a
  reboot;
* a deletion is stored before any container is touched, and dropped only once the
  deployment's reconciler said every container is gone, so a crash in the middle is
  finished on the next start;
* whatever the file holds is decoded again on load; an entry that no longer decodes is
  dropped (the store set aside a file it could not read at all).

What it must never do: store a value before it decoded, or lose the old file when it
cannot write the new one (:class:`~fleet.runtime.host.desired_store.DesiredStore`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from fleet.contracts import DeploymentName, decode_score
from fleet.errors import ContractError
from fleet.runtime.host.desired_store import DesiredStore, StoredDesired, StoredEntry

from .admission import Admission
from .messages import Apply, Remove
from .reporting import malformed_message
from .runtimes.registry import score_type, unsupported_message

logger = logging.getLogger(__name__)


class DesiredBook:
    """What this device should run, persisted; each method answers with what to tell."""

    def __init__(
        self,
        store: DesiredStore,
        *,
        runs: Collection[str] | None = None,
        admission: Admission | None = None,
    ) -> None:
        """``runs``: the score types this device has a runtime for (None: any);
        ``admission``: the device's rules (unknown fields, privileges; default: none
        allowed)."""
        self._store = store
        self._runs = runs
        self._admission = admission if admission is not None else Admission()
        self._entries: dict[str, StoredEntry] = {}  # valid entries, as persisted
        self._removing: dict[str, int] = {}  # deletions not finished: deployment -> revision
        self._rejected: dict[str, int] = {}  # deployment -> malformed revision answered

    def __contains__(self, deployment: object) -> bool:
        return deployment in self._entries

    def load(self, stored: StoredDesired) -> list[tuple[DeploymentName, Apply | Remove]]:
        """Start from ``stored``: every unfinished deletion, then every valid entry."""
        self._entries, self._removing = dict(stored.entries), dict(stored.removing)
        out: list[tuple[DeploymentName, Apply | Remove]] = []
        for deployment, revision in list(self._removing.items()):  # a crash mid-deletion
            try:
                out.append((DeploymentName.try_new(deployment), Remove(revision=revision)))
            except ContractError as exc:
                logger.warning("dropping the stored deletion of %r: %s", deployment, exc)
                del self._removing[deployment]
        for deployment, entry in list(self._entries.items()):
            try:  # checked when loaded; a start must never fail on a stored value
                score = decode_score(entry.value)
                name = DeploymentName.try_new(deployment)
            except ContractError as exc:
                logger.warning("dropping the stored entry of %r: %s", deployment, exc)
                del self._entries[deployment]
                continue
            refused = self._admission.refuse(deployment, entry.value, score)
            if refused is not None:  # the device's policy changed since: it runs no more
                logger.warning("removing the stored entry of %r: %s", deployment, refused)
                del self._entries[deployment]
                self._removing[deployment] = entry.revision  # what runs of it goes...
                out.append((name, Remove(revision=entry.revision)))
                out.append((name, Apply(revision=entry.revision, score=None, error=refused)))
                continue  # ...and the report says why
            out.append((name, Apply(revision=entry.revision, score=score)))
        return out

    def put(self, deployment: DeploymentName, *, revision: int, value: bytes) -> Apply | None:
        """A desired value arrived: the Apply to tell, or None when it was seen already."""
        current = self._entries.get(deployment)
        if current is not None and current.revision == revision:
            return None  # seen (a re-read)
        if self._rejected.get(deployment) == revision:
            return None  # answered as malformed already
        try:
            score = decode_score(value)
        except ContractError as exc:  # never persisted: the last valid entry stays
            self._rejected[deployment] = revision
            error = malformed_message(deployment, exc)
            logger.warning("%s (revision %d)", error, revision)
            return Apply(revision=revision, score=None, error=error)
        refused = self._admission.refuse(deployment, bytes(value), score)
        if refused is not None:  # never persisted, as a malformed value
            self._rejected[deployment] = revision
            logger.warning("%s (revision %d)", refused, revision)
            return Apply(revision=revision, score=None, error=refused)
        kind = score_type(score)
        if self._runs is not None and kind not in self._runs:  # as an older agent: not kept
            self._rejected[deployment] = revision
            error = unsupported_message(deployment, kind, self._runs)
            logger.warning("%s (revision %d)", error, revision)
            return Apply(revision=revision, score=None, error=error)
        self._rejected.pop(deployment, None)
        self._entries[deployment] = StoredEntry(revision=revision, value=bytes(value))
        self._removing.pop(deployment, None)
        self._persist()
        return Apply(revision=revision, score=score)

    def delete(self, deployment: DeploymentName, *, revision: int, running: bool) -> Remove | None:
        """The entry was deleted: the Remove to tell, stored first; None when there is
        nothing to remove (no entry, and no reconciler ``running`` for it)."""
        self._rejected.pop(deployment, None)
        if self._entries.pop(deployment, None) is None and not running:
            return None
        self._removing[deployment] = revision
        self._persist()
        return Remove(revision=revision)

    def removed(self, deployment: str, *, revision: int) -> None:
        """The reconciler removed every container of ``deployment`` up to ``revision``."""
        if self._removing.get(deployment, revision + 1) <= revision:
            del self._removing[deployment]
            self._persist()

    def _persist(self) -> None:
        try:
            self._store.save(StoredDesired(entries=self._entries, removing=self._removing))
        except OSError as exc:
            logger.error(  # noqa: TRY400 - the reason is the message; no traceback needed
                "cannot persist desired state to %s: %s", self._store.path, exc
            )
