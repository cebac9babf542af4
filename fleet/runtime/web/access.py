"""Who may look: a bearer token in, a verdict out.

Why it exists: the page, its API and its event stream all answer only a viewer whose
token is accepted (``Authorization: Bearer``, or ``?token=`` for the page and the event
stream, which a browser cannot give a header). What accepts it is given to the server:
:class:`StaticToken` (``fleetctl dashboard``: one random token, compared in constant
time) or, in a cluster, Kubernetes' own TokenReview and SubjectAccessReview
(:mod:`fleet.dashboard.access`). :meth:`Access.may` then says what an accepted viewer
may change (the rollout buttons).

No I/O here. What it must never do: log a token, or accept an empty one.
"""

from __future__ import annotations

import hmac
from typing import Final, Protocol

import msgspec
from aiohttp import web

MAX_TOKEN: Final = 8192
"""A Kubernetes service-account JWT is ~1 KB; anything much longer is refused unread."""


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """``status`` 200: allowed; 401: who you are is not known; 403: known, not allowed."""

    status: int
    reason: str
    user: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.status == 200


VIEWER: Final = web.RequestKey("viewer", Verdict)
"""Where the access check leaves an accepted viewer's verdict on the request."""

NO_TOKEN: Final = Verdict(status=401, reason="no token: open the URL with ?token=... or send "
                          "Authorization: Bearer <token>")  # fmt: skip


class Access(Protocol):
    async def check(self, token: str) -> Verdict: ...

    async def may(self, who: Verdict, *, resource: str, verb: str, namespace: str,
                  name: str) -> bool:  # fmt: skip
        """Whether an accepted viewer may ``verb`` one object of the fleet's group (the
        rollout buttons: ``patch`` on that Deployment)."""
        ...


class StaticToken:
    """One token, made by whoever serves the page (``fleetctl dashboard``)."""

    def __init__(self, token: str, *, user: str = "local") -> None:
        if len(token) < 16:
            raise ValueError("a dashboard token must be at least 16 characters")
        self._token = token.encode()
        self._user = user

    async def check(self, token: str) -> Verdict:
        if hmac.compare_digest(token.encode(), self._token):
            return Verdict(status=200, reason="", user=self._user)
        return Verdict(status=401, reason="this token is not the one the dashboard printed")

    async def may(self, who: Verdict, *, resource: str, verb: str, namespace: str,
                  name: str) -> bool:  # fmt: skip
        """The token's holder may do what the server's own credentials may (the API
        server refuses the rest)."""
        return who.allowed
