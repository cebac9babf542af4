"""A viewer's token, checked by Kubernetes (TokenReview, SubjectAccessReview), remembered briefly.

Why it exists: in a cluster the operator's dashboard shows a viewer only what RBAC lets
that viewer's token do (``list`` on fleet Deployments: :mod:`fleet.runtime.kube.access_review`).
A page polls and streams; asking Kubernetes twice per request would load the API server
for nothing, so each verdict is kept for ``ttl`` seconds (10 by default: a revoked
token or binding stops working within that), under the token's SHA-256, at most
``max_entries`` of them. Each verdict the API gives is logged once (who, allowed or not;
a token Kubernetes does not accept at debug level only: anyone can send those). At most
``max_reviews`` reviews run at once, and a full cache drops refused verdicts before
accepted ones, so a flood of made-up tokens neither floods the API server nor pushes a
real viewer's verdict out.

:meth:`KubeAccess.may` asks the same of one verb on one object (the rollout buttons),
kept as long. What it must never do: keep or log a token itself, or run a review on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Final, Protocol

from fleet.errors import FleetError
from fleet.runtime.kube.access_review import Reviewed
from fleet.runtime.web.access import Verdict

logger = logging.getLogger(__name__)

TTL: Final = 10.0
MAX_ENTRIES: Final = 1024
MAX_REVIEWS: Final = 4


class Reviewer(Protocol):
    def review(self, token: str) -> Reviewed: ...

    def allowed(
        self,
        user: str,
        uid: str,
        groups: tuple[str, ...],
        *,
        resource: str,
        verb: str,
        namespace: str,
        name: str,
    ) -> bool: ...


class KubeAccess:
    def __init__(
        self, reviewer: Reviewer, *, ttl: float = TTL, max_entries: int = MAX_ENTRIES,
        max_reviews: int = MAX_REVIEWS,
    ) -> None:  # fmt: skip
        self._reviewer = reviewer
        self._ttl, self._max = ttl, max_entries
        self._max_reviews = max_reviews
        self._reviews: asyncio.Semaphore | None = None  # made on the loop that checks
        self._seen: dict[bytes, tuple[float, Verdict]] = {}
        self._may: dict[tuple[str, ...], tuple[float, bool]] = {}

    async def may(self, who: Verdict, *, resource: str, verb: str, namespace: str,
                  name: str) -> bool:  # fmt: skip
        """A SubjectAccessReview for that one object, kept ``ttl`` seconds; False if
        Kubernetes cannot answer (no button, and a POST refused)."""
        if not who.allowed or not who.user:
            return False
        key, now = (who.user, who.uid, *who.groups, "\0", resource, verb, namespace, name), \
            time.monotonic()  # fmt: skip
        kept = self._may.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            allowed = await asyncio.to_thread(
                self._reviewer.allowed, who.user, who.uid, who.groups, resource=resource,
                verb=verb, namespace=namespace, name=name,
            )  # fmt: skip
        except FleetError as exc:
            logger.warning("dashboard: may %s %s %s %s/%s? Kubernetes could not say: %s",
                           who.user, verb, resource, namespace, name, exc)  # fmt: skip
            return False
        if len(self._may) >= self._max:
            self._may = {k: v for k, v in self._may.items() if v[0] > now}
            if len(self._may) >= self._max:
                self._may.clear()
        self._may[key] = (now + self._ttl, allowed)
        return allowed

    async def check(self, token: str) -> Verdict:
        key, now = hashlib.sha256(token.encode()).digest(), time.monotonic()
        kept = self._seen.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        if self._reviews is None:
            self._reviews = asyncio.Semaphore(self._max_reviews)
        try:
            async with self._reviews:
                reviewed = await asyncio.to_thread(self._reviewer.review, token)
        except FleetError as exc:
            logger.warning("dashboard: Kubernetes could not review a token: %s", exc)
            return Verdict(status=503, reason="Kubernetes could not review the token now")
        verdict = verdict_of(reviewed)
        if len(self._seen) >= self._max:
            self._make_room(now)
        self._seen[key] = (now + self._ttl, verdict)
        level = logging.INFO if reviewed.user else logging.DEBUG
        logger.log(level, "dashboard viewer %s: %s", reviewed.user or "(token not accepted)",
                   "allowed" if verdict.allowed else f"refused ({verdict.reason})")  # fmt: skip
        return verdict

    def _make_room(self, now: float) -> None:
        """Expired verdicts go first, then refused ones, then the oldest half."""
        kept = {k: v for k, v in self._seen.items() if v[0] > now}
        if len(kept) >= self._max:
            kept = {k: v for k, v in kept.items() if v[1].status != 401}
        if len(kept) >= self._max:
            kept = dict(list(kept.items())[len(kept) // 2 :])
        self._seen = kept


def verdict_of(reviewed: Reviewed) -> Verdict:
    if reviewed.user is None:
        return Verdict(status=401, reason=f"token not accepted: {reviewed.reason}")
    if not reviewed.allowed:
        why = f": {reviewed.reason}" if reviewed.reason else ""
        return Verdict(status=403, user=reviewed.user, reason=(
            f"{reviewed.user} may not list deployments.fleet.nationtech.io{why}"))  # fmt: skip
    return Verdict(status=200, reason="", user=reviewed.user, uid=reviewed.uid,
                   groups=reviewed.groups)  # fmt: skip
