"""The dashboard's rollout buttons, done exactly as ``fleetctl rollout`` does them, audited.

Why it exists: a person pressing "pause" on the page must get what ``fleetctl rollout
pause`` does, not a second implementation that drifts from it. This is the
:class:`~fleet.runtime.web.rollouts.RolloutPort` the operator's dashboard is given: each
action runs :class:`fleet.cli.fleetctl.rollout.Command` (its refusals become 409s, its
line of output the answer), and the status is ``fleetctl rollout status -o json``'s
object. The web layer has already asked Kubernetes whether the viewer may (a
SubjectAccessReview); the write itself is made with the operator's own credentials, so
each one is audited: a line in the operator's log and a Kubernetes Event on the
Deployment, both naming the viewer the TokenReview said the token is.

Blocking (the web layer calls it off its loop). What it must never do: act without
auditing, or act for an action ``fleetctl rollout`` has not.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from fleet.cli.fleetctl.rollout import Command, Refused
from fleet.cli.fleetctl.rollout_view import RolloutStatusError, deployment_rollout, status_json
from fleet.contracts import API_VERSION
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient
from fleet.runtime.kube.errors import KubeNotFound
from fleet.runtime.kube.events import EventNote, ObjectRef
from fleet.runtime.web.rollouts import NEEDS, RolloutRefused

logger = logging.getLogger("fleet.operator.dashboard")

REASONS: Final = {
    "pause": ("RolloutPaused", "paused the rollout"),
    "resume": ("RolloutResumed", "resumed the rollout"),
    "approve": ("RolloutApproved", "approved the next batch"),
    "undo": ("RolloutUndone", "rolled back to an earlier revision"),
}


class KubeRollouts:
    """``events``: where audit Events go (the dashboard's own EventRecorder's ``post``)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        events: Callable[[EventNote], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.events, self.clock = kube, events, clock

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = self.kube.get(DEPLOYMENTS, namespace=namespace, name=name)
        except KubeNotFound as exc:
            raise LookupError(f"{namespace}/{name}") from exc
        try:
            return status_json(deployment_rollout(obj))
        except RolloutStatusError as exc:
            raise RolloutRefused(f"cannot read the rollout of {namespace}/{name}: {exc}") from exc

    def act(self, namespace: str, name: str, action: str, *, user: str) -> str:
        if action not in NEEDS or action not in REASONS:
            raise RolloutRefused(f"no such action {action!r}")
        out = io.StringIO()
        a = argparse.Namespace(namespace=namespace, deployment=name, action=action,
                               force=False, to_revision=None, output="text")  # fmt: skip
        try:
            getattr(Command(self.kube, a, out), action)()
        except KubeNotFound as exc:
            raise LookupError(f"{namespace}/{name}") from exc
        except Refused as exc:
            raise RolloutRefused(str(exc)) from exc
        except RolloutStatusError as exc:
            raise RolloutRefused(f"cannot read the rollout of {namespace}/{name}: {exc}") from exc
        done = out.getvalue().strip().splitlines()[-1] if out.getvalue().strip() else action
        reason, what = REASONS[action]
        logger.info("dashboard: %s %s of deployment %s/%s (%s)", user, what, namespace, name, done)
        self._audit(namespace, name, reason, f"{user} {what} from the dashboard: {done}")
        return done

    def _audit(self, namespace: str, name: str, reason: str, message: str) -> None:
        try:
            obj = self.kube.get(DEPLOYMENTS, namespace=namespace, name=name)
            uid = str((obj.get("metadata") or {}).get("uid") or "")
        except KubeNotFound:
            uid = ""  # deleted since: the Event still names it
        ref = ObjectRef(api_version=API_VERSION, kind="Deployment", name=name,
                        namespace=namespace, uid=uid)  # fmt: skip
        self.events(EventNote(obj=ref, type="Normal", reason=reason, message=message[:1024],
                              at=self.clock()))  # fmt: skip
