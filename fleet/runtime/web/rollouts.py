"""A Deployment's rollout on the page: what it is, which buttons this viewer gets, and the
POSTs behind them.

Why it exists: the Deployment page shows the rollout's batches and progress and, to a
viewer Kubernetes lets ``patch`` that Deployment, the buttons ``fleetctl rollout`` has:
pause, resume, approve, undo (undo also reads the kept revisions: ``list
deploymentrevisions``). What a button does is the :class:`RolloutPort`'s (in the
operator: ``fleetctl rollout``'s own code, :mod:`fleet.cli.dashboard_rollouts`); this
module decides who may press it and guards the request:

* ``GET /api/deployments/{namespace}/{name}/rollout``: ``{"status": ..., "actions":
  {"pause": bool, ...}}``, the buttons this viewer may use (SubjectAccessReviews);
* ``POST /api/deployments/{namespace}/{name}/rollout/{action}``: 200 ``{"message"}``; 400
  for an unknown action, 404 for an unknown Deployment, 403 for a viewer who may not, 409
  when the rollout cannot do it now (nothing to approve, nothing to undo), 502 when the
  API server cannot be reached (a :class:`~fleet.errors.FleetError`).

Forged requests (CSRF): the viewer's token must come in the ``Authorization`` header,
which no other site's page can make a browser send (the ``?token=`` the page's own URL
and its event stream carry is refused here), the body must be ``application/json`` (a
cross-site form cannot send that without a CORS preflight, which this server never
grants), and an ``Origin``, if sent, must be this server's own.

What it must never do: act for a viewer it has not asked Kubernetes about, or act on a
GET.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from aiohttp import web

from fleet.errors import FleetError

from .access import VIEWER, Access, Verdict

logger = logging.getLogger(__name__)

NEEDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "pause": (("deployments", "patch"),),
    "resume": (("deployments", "patch"),),
    "approve": (("deployments", "patch"),),
    "undo": (("deployments", "patch"), ("deploymentrevisions", "list")),
}
"""What Kubernetes must let the viewer do for each button (as ``fleetctl rollout`` would
need with the viewer's own credentials)."""


class RolloutRefused(Exception):
    """The rollout cannot do that now (the message says why): a 409."""


class RolloutPort(Protocol):
    """Blocking (called off the loop). Unknown Deployment: :class:`LookupError`."""

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        """``fleetctl rollout status -o json``'s object."""
        ...

    def act(self, namespace: str, name: str, action: str, *, user: str) -> str:
        """Do ``action`` (a key of :data:`NEEDS`) for ``user``, audited; what was done.
        :class:`RolloutRefused` if it cannot be done now."""
        ...


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


class RolloutRoutes:
    def __init__(self, rollouts: RolloutPort, access: Access) -> None:
        self.rollouts, self.access = rollouts, access

    def add(self, app: web.Application) -> None:
        base = "/api/deployments/{namespace}/{name}/rollout"
        app.router.add_get(base, self._status)
        app.router.add_post(base + "/{action}", self._act)

    async def _may(self, who: Verdict, action: str, namespace: str, name: str) -> bool:
        for resource, verb in NEEDS[action]:
            # a list names no object (RBAC's resourceNames never allow one): ask as the
            # API server would authorize the list itself
            one = "" if verb == "list" else name
            if not await self.access.may(who, resource=resource, verb=verb,
                                         namespace=namespace, name=one):  # fmt: skip
                return False
        return True

    async def _status(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            status = await asyncio.to_thread(self.rollouts.status, namespace, name)
        except LookupError:
            return _error(404, f"no Deployment {f'{namespace}/{name}'[:300]}")
        except RolloutRefused as exc:
            return _error(409, str(exc))
        except FleetError as exc:  # the API server is away, or refused the operator
            return _error(502, f"cannot read the rollout now: {exc}"[:500])
        who: Verdict = request[VIEWER]
        actions = {a: await self._may(who, a, namespace, name) for a in NEEDS}
        return web.json_response({"status": status, "actions": actions})

    async def _refusal(self, request: web.Request, action: str, namespace: str,
                       name: str) -> web.Response | None:  # fmt: skip
        """Why this request may not act (None: it may)."""
        if action not in NEEDS:
            return _error(400, f"no such action {action[:40]!r}: one of {', '.join(NEEDS)}")
        forged = _forged(request)
        if forged:
            return _error(403, forged)
        who: Verdict = request[VIEWER]
        if not await self._may(who, action, namespace, name):
            needs = " and ".join(f"{v} {r}" for r, v in NEEDS[action])
            return _error(403, f"{who.user} may not {action} {namespace}/{name}"[:400]
                          + f" (needs {needs})")  # fmt: skip
        return None

    async def _act(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        action = request.match_info["action"]
        refused = await self._refusal(request, action, namespace, name)
        if refused is not None:
            return refused
        who: Verdict = request[VIEWER]
        try:
            done = await asyncio.to_thread(self.rollouts.act, namespace, name, action,
                                           user=who.user)  # fmt: skip
        except LookupError:
            return _error(404, f"no Deployment {f'{namespace}/{name}'[:300]}")
        except RolloutRefused as exc:
            return _error(409, str(exc))
        except FleetError as exc:
            logger.warning("dashboard: %s's %s of %s/%s failed: %s", who.user, action,
                           namespace, name, exc)  # fmt: skip
            return _error(502, f"{action} failed: {exc}"[:500])
        return web.json_response({"message": done})


def _forged(request: web.Request) -> str:
    """Why this POST may come from another site's page ("": it cannot)."""
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        return "an action needs the token in the Authorization header, not the URL"
    if request.content_type != "application/json":
        return "an action's body must be application/json"
    origin = request.headers.get("Origin")
    # the host only: behind a TLS-terminating proxy the page is https:// while this
    # server sees http:// (the bearer header and the JSON body already stop a forged POST)
    if origin is not None and origin.partition("://")[2] != request.host:
        return f"an action from another origin ({origin[:100]}) is refused"
    return ""
