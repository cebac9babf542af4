"""``KubeAccess.may``: one SubjectAccessReview per viewer, verb and object, kept briefly.

A unit test with a fake reviewer (the emulator's reviews are exercised by
test_rollout_buttons.py): the answer is asked with the viewer's own user, uid and groups
and that one object; kept for the TTL; a refused viewer or an API that cannot answer is
never allowed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from fleet.dashboard.access import KubeAccess
from fleet.errors import TemporaryError
from fleet.runtime.kube.access_review import Reviewed
from fleet.runtime.web.access import Verdict

pytestmark = pytest.mark.timeout(30)
CAROL = Verdict(status=200, reason="", user="carol", uid="u-1", groups=("edge-ops",))


class FakeReviewer:
    def __init__(self, allow: set[tuple[str, str, str, str]], *, down: bool = False) -> None:
        self.allow, self.down = allow, down
        self.asked: list[tuple[str, str, tuple[str, ...], str, str, str, str]] = []

    def review(self, token: str) -> Reviewed:
        return Reviewed(user="carol", allowed=True, reason="")

    def allowed(
        self, user: str, uid: str, groups: tuple[str, ...], *, resource: str, verb: str,
        namespace: str, name: str,
    ) -> bool:  # fmt: skip
        self.asked.append((user, uid, groups, resource, verb, namespace, name))
        if self.down:
            raise TemporaryError("the API server is away")
        return (resource, verb, namespace, name) in self.allow


def may(access: KubeAccess, who: Verdict, name: str = "web", verb: str = "patch") -> bool:
    return asyncio.run(access.may(who, resource="deployments", verb=verb, namespace="ns",
                                  name=name))  # fmt: skip


def test_asks_for_that_viewer_and_that_object_and_keeps_the_answer() -> None:
    reviewer = FakeReviewer({("deployments", "patch", "ns", "web")})
    access = KubeAccess(reviewer, ttl=60)
    assert may(access, CAROL)
    assert may(access, CAROL)  # kept: asked once
    assert not may(access, CAROL, name="other")
    assert not may(access, CAROL, verb="delete")
    assert reviewer.asked == [
        ("carol", "u-1", ("edge-ops",), "deployments", "patch", "ns", "web"),
        ("carol", "u-1", ("edge-ops",), "deployments", "patch", "ns", "other"),
        ("carol", "u-1", ("edge-ops",), "deployments", "delete", "ns", "web"),
    ]


def test_a_refused_viewer_is_never_asked_about_and_an_api_that_cannot_say_is_a_no() -> None:
    reviewer = FakeReviewer({("deployments", "patch", "ns", "web")})
    access = KubeAccess(reviewer, ttl=60)
    refused = Verdict(status=401, reason="token not accepted: forged")
    assert not may(access, refused)
    assert reviewer.asked == []
    down = KubeAccess(FakeReviewer(set(), down=True), ttl=60)
    assert not may(down, CAROL)


def test_the_answer_expires() -> None:
    reviewer = FakeReviewer({("deployments", "patch", "ns", "web")})
    access = KubeAccess(reviewer, ttl=0.0)  # nothing kept
    assert may(access, CAROL)
    assert may(access, CAROL)
    assert len(reviewer.asked) == 2


class TokenReviewer(FakeReviewer):
    """Accepts one token; counts the reviews and how many ran at once."""

    def __init__(self) -> None:
        super().__init__(set())
        self.reviews: dict[str, int] = {}
        self.running = self.most = 0

    def review(self, token: str) -> Reviewed:
        self.reviews[token] = self.reviews.get(token, 0) + 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            time.sleep(0.005)  # a review takes a while: unbounded ones would overlap
            if token == "good":
                return Reviewed(user="carol", allowed=True, reason="")
            return Reviewed(user=None, allowed=False, reason="not a token")
        finally:
            self.running -= 1


def test_a_flood_of_made_up_tokens_keeps_a_viewer_cached_and_reviews_bounded() -> None:
    reviewer = TokenReviewer()
    access = KubeAccess(reviewer, ttl=600, max_entries=16, max_reviews=2)

    async def flood() -> list[Verdict]:
        first = await access.check("good")
        made_up = await asyncio.gather(*(access.check(f"forged-{i}") for i in range(200)))
        return [first, *made_up, await access.check("good")]

    verdicts = asyncio.run(flood())
    assert verdicts[0].allowed
    assert verdicts[-1].allowed
    assert all(v.status == 401 for v in verdicts[1:-1])
    assert reviewer.reviews["good"] == 1  # the real viewer's verdict stayed cached
    assert reviewer.most <= 2
