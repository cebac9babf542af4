"""The leader replica's pod carries a label, so a Service can send viewers to it alone.

Why it exists: with leader election only the leader serves the dashboard (a standby has
no fleet to show), yet both replicas are Ready (a standby is healthy by waiting). A
Service selecting ``fleet.nationtech.io/leader: "true"`` reaches the one that serves, the
way Patroni labels its primary. The replica clears its own label when it starts (a
restarted container may be a standby now), and sets it once it leads; a replica that
loses the Lease exits, so its pod is not Ready until it starts again and clears it.

Only its own pod (``$POD_NAME`` in ``$POD_NAMESPACE``), by a merge patch of one label.
What it must never do: fail the operator: a label it cannot set is logged (the dashboard's
Service then misses the leader, nothing else does).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import kubernetes

from fleet.runtime.kube.errors import translate

logger = logging.getLogger(__name__)

LEADER_LABEL: Final = "fleet.nationtech.io/leader"
MERGE_PATCH: Final = "application/merge-patch+json"


class LeaderLabel:
    """Marks the pod ``namespace/pod`` as the leader's, or not."""

    def __init__(
        self, api_client: kubernetes.client.ApiClient, *, namespace: str, pod: str,
        timeout: float = 5.0,
    ) -> None:  # fmt: skip
        self._api: Any = kubernetes.client.CoreV1Api(api_client)
        self.namespace, self.pod, self._timeout = namespace, pod, timeout

    def mark(self, *, leading: bool) -> bool:
        """Set (or clear) the label; False, logged, if the API refused or is away."""
        body = {"metadata": {"labels": {LEADER_LABEL: "true" if leading else None}}}
        try:
            resp = self._api.patch_namespaced_pod(
                self.pod, self.namespace, body, _content_type=MERGE_PATCH,
                _preload_content=False, _request_timeout=self._timeout,
            )  # fmt: skip
            resp.release_conn()
        except Exception as exc:  # never fatal: see the module doc
            error = translate(exc, what=f"patch pod {self.namespace}/{self.pod}")
            logger.warning("cannot %s the leader label: %s", "set" if leading else "clear", error)
            return False
        return True
