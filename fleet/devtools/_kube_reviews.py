"""The API emulator's TokenReview and SubjectAccessReview: who a token is, what it may do.

Why it exists: the dashboard in a cluster asks the API server who a viewer's bearer token
is (``POST /apis/authentication.k8s.io/v1/tokenreviews``) and whether that user may list
fleet Deployments (``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``), as the
Kubernetes Dashboard does. The emulator answers both from :class:`Reviews`: tokens a
test or the demo registered (:meth:`Reviews.add_token`), each with its user, its groups
and the ``(group, resource, verb)`` it is allowed (RBAC reduced to a list of grants;
``*`` matches anything). An unknown token is answered ``authenticated: false``, as a
forged or expired one is by a real API server.

A development stand-in, never a production component. What it must never do: answer
anything but these two POSTs (everything else goes on to kmock).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Final

import aiohttp.web

TOKEN_REVIEWS: Final = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS: Final = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

Grant = tuple[str, str, str]  # (group, resource, verb); "*" matches any


def _spec(body: Any) -> dict[str, Any]:
    spec = body["spec"]
    if not isinstance(spec, dict):
        raise TypeError("spec is not an object")
    return spec


class Reviews:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # tests register from their own thread
        self._tokens: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._grants: dict[str, tuple[Grant, ...]] = {}

    def add_token(
        self, token: str, *, user: str, groups: tuple[str, ...] = (),
        allow: tuple[Grant, ...] = (),
    ) -> None:  # fmt: skip
        with self._lock:
            self._tokens[token] = (user, groups)
            self._grants[user] = (*self._grants.get(user, ()), *allow)

    def remove_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _allowed(self, user: str, attrs: dict[str, Any]) -> bool:
        want = (str(attrs.get("group", "")), str(attrs.get("resource", "")),
                str(attrs.get("verb", "")))  # fmt: skip
        with self._lock:
            grants = self._grants.get(user, ())
        return any(all(g in ("*", w) for g, w in zip(grant, want, strict=True))
                   for grant in grants)  # fmt: skip

    async def answer(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.Response | None:
        """The answer to a review; None: not a review (kmock's to answer)."""
        if raw.method != "POST" or raw.path.rstrip("/") not in (TOKEN_REVIEWS, ACCESS_REVIEWS):
            return None
        try:
            body = json.loads(await raw.read())
            spec = _spec(body)
        except (ValueError, KeyError, TypeError) as exc:
            return aiohttp.web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                 "reason": "BadRequest", "code": 400, "message": f"bad review: {exc}"},
                status=400,
            )  # fmt: skip
        if raw.path.rstrip("/") == TOKEN_REVIEWS:
            with self._lock:
                known = self._tokens.get(str(spec.get("token", "")))
            status: dict[str, Any] = (
                {"authenticated": False, "error": "invalid bearer token"} if known is None
                else {"authenticated": True,
                      "user": {"username": known[0], "uid": known[0], "groups": list(known[1])}}
            )  # fmt: skip
        else:
            allowed = self._allowed(str(spec.get("user", "")), spec.get("resourceAttributes") or {})
            status = {"allowed": allowed}
            if not allowed:
                status["reason"] = "no RBAC rule allows it (API emulator)"
        return aiohttp.web.json_response(
            {**{k: body.get(k) for k in ("apiVersion", "kind")}, "spec": spec,
             "status": status}, status=201)  # fmt: skip
