"""Who a bearer token is, and what it may do to fleet Deployments: asked of Kubernetes.

Why it exists: the dashboard in a cluster shows a viewer what Kubernetes RBAC lets that
viewer's token see, as the Kubernetes Dashboard does: a ``TokenReview`` says who the
token is (or that it is forged or expired), then a ``SubjectAccessReview`` for that user
and its groups says whether it may ``list deployments.fleet.nationtech.io``;
:meth:`AccessReviewer.allowed` asks the same for one verb on one object (may this viewer
``patch`` that Deployment: the rollout buttons). Both are
POSTs the operator's own service account makes (it needs ``create`` on tokenreviews and
subjectaccessreviews: deploy/).

Blocking: call it off any event loop. Bounded: the answer is read as JSON of at most
:data:`MAX_ANSWER` bytes and only the fields used here are kept. What it must never do:
log or keep the token.
"""

from __future__ import annotations

from typing import Any, Final

import kubernetes
import msgspec

from fleet.contracts import CRD_GROUP

from .errors import translate

MAX_ANSWER: Final = 256 * 1024
MAX_NAME: Final = 512  # a user name, uid or group kept for later reviews
MAX_GROUPS: Final = 256


class Reviewed(msgspec.Struct, frozen=True, kw_only=True):
    """``user`` None: the token was not accepted (``reason`` says why)."""

    user: str | None
    allowed: bool
    reason: str
    uid: str = ""
    groups: tuple[str, ...] = ()


class _User(msgspec.Struct):
    username: str = ""
    uid: str = ""
    groups: list[str] = msgspec.field(default_factory=list)
    extra: dict[str, list[str]] = msgspec.field(default_factory=dict)


class _TokenStatus(msgspec.Struct):
    authenticated: bool = False
    user: _User = msgspec.field(default_factory=_User)
    error: str = ""


class _TokenReview(msgspec.Struct):
    status: _TokenStatus = msgspec.field(default_factory=_TokenStatus)


class _AccessStatus(msgspec.Struct):
    allowed: bool = False
    denied: bool = False
    reason: str = ""


class _AccessReview(msgspec.Struct):
    status: _AccessStatus = msgspec.field(default_factory=_AccessStatus)


class AccessReviewer:
    """``review(token)``: a TokenReview, then a SubjectAccessReview for ``verb`` on
    ``resource`` of the fleet's group (in every namespace)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        resource: str = "deployments",
        verb: str = "list",
        timeout: float = 10.0,
    ) -> None:
        self._api = api_client
        self._resource, self._verb, self._timeout = resource, verb, timeout

    def _post(self, create: Any, body: dict[str, Any], what: str) -> bytes:
        try:
            resp = create(body, _preload_content=False, _request_timeout=self._timeout)
            try:
                data: bytes = resp.read(MAX_ANSWER + 1)
            finally:
                resp.release_conn()
        except Exception as exc:
            raise translate(exc, what=what) from exc
        if len(data) > MAX_ANSWER:
            raise translate(ValueError(f"answer over {MAX_ANSWER} bytes"), what=what)
        return data

    def review(self, token: str) -> Reviewed:
        data = self._post(
            kubernetes.client.AuthenticationV1Api(self._api).create_token_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
             "spec": {"token": token}},
            "create tokenreview",
        )  # fmt: skip
        try:
            status = msgspec.json.decode(data, type=_TokenReview).status
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Reviewed(user=None, allowed=False, reason=f"unreadable TokenReview: {exc}")
        if not status.authenticated or not status.user.username:
            why = status.error or "the token is not valid (forged, expired or revoked)"
            return Reviewed(user=None, allowed=False, reason=why[:300])
        user = status.user
        allowed, reason = self._access(
            user.username, user.uid, user.groups, resource=self._resource, verb=self._verb,
            extra=user.extra,
        )  # fmt: skip
        return Reviewed(
            user=user.username, allowed=allowed, reason=reason, uid=user.uid[:MAX_NAME],
            groups=tuple(g[:MAX_NAME] for g in user.groups[:MAX_GROUPS]),
        )  # fmt: skip

    def allowed(
        self, user: str, uid: str, groups: tuple[str, ...], *, resource: str, verb: str,
        namespace: str, name: str,
    ) -> bool:  # fmt: skip
        """Whether that user may ``verb`` that one object (``resource`` of the fleet's
        group): a SubjectAccessReview, as ``kubectl auth can-i`` asks."""
        return self._access(user, uid, list(groups), resource=resource, verb=verb,
                            namespace=namespace, name=name)[0]  # fmt: skip

    def _access(
        self, user: str, uid: str, groups: list[str], *, resource: str, verb: str,
        namespace: str = "", name: str = "", extra: dict[str, list[str]] | None = None,
    ) -> tuple[bool, str]:  # fmt: skip
        attributes = {"group": CRD_GROUP, "resource": resource, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        if name:
            attributes["name"] = name
        data = self._post(
            kubernetes.client.AuthorizationV1Api(self._api).create_subject_access_review,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
             "spec": {"user": user, "uid": uid, "groups": groups, "extra": extra or {},
                      "resourceAttributes": attributes}},
            "create subjectaccessreview",
        )  # fmt: skip
        try:
            access = msgspec.json.decode(data, type=_AccessReview).status
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return False, f"unreadable SubjectAccessReview: {exc}"
        return access.allowed and not access.denied, access.reason[:300]
