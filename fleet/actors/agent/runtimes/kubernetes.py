"""The ``kubernetes`` runtime: a deployment's objects in a cluster, behind the runtime port.

Why it exists: a device may be a whole cluster (OKD, k3s, any conformant API). This is
the ``"kubernetes"`` :class:`~.port.WorkloadRuntime`: it applies a
:class:`~fleet.contracts.KubernetesScore`'s manifests into the score's namespace through
:class:`~fleet.runtime.kube.cluster.port.ClusterClient` (server-side apply, field manager
``fleet-agent`` by default, conflicts forced: the score is the desired state). A pass
(:meth:`KubernetesWorkload.ensure`) goes in this order, touching nothing until the
score is known to fit the cluster:

1. every manifest's kind is looked up in API discovery: a kind the cluster does not
   serve, or a cluster-scoped one, is ``Failed`` naming ``manifests[i].kind``;
2. the namespace must be absent or the deployment's own (its marks): another's is
   ``Failed`` naming ``namespace``;
3. the namespace is applied (created when missing) with its inventory of the kinds to
   apply, *before* any object (:mod:`.kube_objects`);
4. each object missing, applied from another manifest (its hash) or edited by hand
   (it no longer holds what was applied) is applied; one the API refuses is ``Failed``
   naming ``manifests[i]`` with the API's message, bounded;
5. objects the deployment owns that the score no longer lists are deleted (prune), and
   so are namespaces it owned under another name; the inventory is trimmed;
6. readiness: ``Running`` once every Deployment, StatefulSet and DaemonSet reports the
   current generation observed and all replicas ready, updated and available
   (``Starting`` meanwhile, looked at again every second); ``Failed`` naming the
   object on ``ProgressDeadlineExceeded``.

Drift: a watch of the device's labelled objects (namespaces and the common kinds:
:data:`DRIFT_KINDS`) is the drift stream; the reconciler's periodic resync catches the
rest. Remove deletes every object the deployment owns, then its namespaces.

What it must never do: touch an object or a namespace without the deployment's marks,
apply a cluster-scoped kind, or loop inside a pass (a wait is :class:`~.port.RetryLater`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from fleet.contracts import DeploymentName, DeviceId, KubernetesScore, Phase, ReconcileScore
from fleet.errors import PermanentError
from fleet.runtime.kube.cluster.port import (
    NAMESPACES,
    ApplyRefused,
    ClusterClient,
    Kind,
    ObjectEvent,
)

from .kube_objects import (
    DEPLOYMENT_LABEL,
    desired_object,
    drifted,
    inventory,
    is_owned,
    labels_of,
    meta_str,
    namespace_object,
    owner_labels,
    pod_security_level,
    readiness,
    revision_of,
)
from .port import DriftEvent, EventStream, Observed, Progress, RetryLater, Unit

SCORE_TYPE: Final = "kubernetes"
SETTLE: Final = 1.0  # seconds between looks at workloads that are not ready yet
DRIFT_KINDS: Final = (
    ("v1", "Namespace"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
)
"""Watched for drift (those the cluster serves); other kinds rely on the periodic resync."""

Identity = tuple[str, str, str, str]  # (group, kind, namespace, name)


@dataclass(frozen=True)
class _Found:
    """What a deployment owns in the cluster now: its namespaces and objects."""

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[Identity, tuple[Kind, dict[str, Any]]] = field(default_factory=dict)


class KubernetesWorkloads:
    """The device-wide half: one per device, over one cluster."""

    score_type = SCORE_TYPE

    def __init__(
        self,
        *,
        cluster: ClusterClient,
        device_id: DeviceId,
        allowed: Collection[str] = frozenset(),
    ) -> None:
        self.cluster = cluster
        self._device = device_id
        self._pod_security = pod_security_level(allowed)  # [policy] allow

    def version(self) -> tuple[str, str]:
        return ("kubernetes", self.cluster.version())

    def workload(self, deployment: DeploymentName) -> KubernetesWorkload:
        return KubernetesWorkload(
            cluster=self.cluster, device_id=self._device, deployment=deployment,
            pod_security=self._pod_security,
        )  # fmt: skip

    def deployments(self) -> Mapping[str, int]:
        found: dict[str, int] = {}
        for ns in self.cluster.list(NAMESPACES, namespace=None, labels=owner_labels(self._device)):
            deployment = labels_of(ns).get(DEPLOYMENT_LABEL)
            if deployment is not None and is_owned(ns, self._device, deployment):
                found[deployment] = max(found.get(deployment, 0), revision_of(ns) or 0)
        return found

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        kinds = tuple(
            kind for api, name in DRIFT_KINDS if (kind := self.cluster.kind(api, name)) is not None
        )

        def changed(event: ObjectEvent) -> None:
            deployment = event.labels.get(DEPLOYMENT_LABEL)
            on_drift(DriftEvent(deployment=deployment, unit=f"{event.kind}/{event.name}"))

        return self.cluster.watch(
            kinds, labels=owner_labels(self._device), on_event=changed, on_error=on_error
        )


class KubernetesWorkload:
    """One deployment's objects (see the module doc for a pass)."""

    def __init__(
        self,
        *,
        cluster: ClusterClient,
        device_id: DeviceId,
        deployment: DeploymentName,
        pod_security: str = "baseline",
    ) -> None:
        self._cluster = cluster
        self._device = device_id
        self._pod_security = pod_security
        self._deployment = deployment
        self._labels = owner_labels(device_id, deployment)

    # -- what it owns ----------------------------------------------------------------------

    def _owned(self, obj: Mapping[str, Any]) -> bool:
        return is_owned(obj, self._device, self._deployment)

    def _find(self) -> _Found:
        found = _Found()
        for ns in self._cluster.list(NAMESPACES, namespace=None, labels=self._labels):
            name = meta_str(ns, "name")
            if name is not None and self._owned(ns) and meta_str(ns, "deletionTimestamp") is None:
                found.namespaces[name] = ns
        for ns_name, ns in found.namespaces.items():
            for key in inventory(ns):
                api_version, _, kind_name = key.rpartition("/")
                kind = self._cluster.kind(api_version, kind_name)
                if kind is None or not kind.namespaced:
                    continue
                for obj in self._cluster.list(kind, namespace=ns_name, labels=self._labels):
                    name = meta_str(obj, "name")
                    if (
                        name is not None
                        and self._owned(obj)
                        and meta_str(obj, "namespace") == ns_name
                    ):
                        found.objects[(kind.group, kind.kind, ns_name, name)] = (kind, obj)
        return found

    def observe(self) -> Observed:
        found = self._find()
        units = [
            Unit(name=f"Namespace/{name}", id=meta_str(ns, "uid") or name, running=True,
                 revision=revision_of(ns))
            for name, ns in found.namespaces.items()
        ]  # fmt: skip
        units += [
            Unit(name=f"{kind.kind}/{ident[3]}", id=meta_str(obj, "uid") or "/".join(ident),
                 running=True, revision=revision_of(obj))
            for ident, (kind, obj) in found.objects.items()
        ]  # fmt: skip
        revisions = [u.revision for u in units if u.revision is not None]
        return Observed(units=tuple(units), revision=max(revisions, default=None), found=found)

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        return None  # objects do not exit; their controllers say how they are

    def remove(self, progress: Progress) -> bool:
        found = self._find()
        if not found.namespaces and not found.objects:
            return False
        progress.report(Phase.STOPPING)
        progress.breaking()
        for (_, _, ns, name), (kind, _) in found.objects.items():
            self._cluster.delete(kind, name, namespace=ns)
        for name in found.namespaces:
            self._cluster.delete(NAMESPACES, name, namespace=None)
        return True

    # -- a pass ----------------------------------------------------------------------------

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        """One pass (see the module doc); returns what is unhealthy, or None."""
        if not isinstance(score, KubernetesScore):  # the registry routes by type: a bug
            raise PermanentError(f"the kubernetes runtime was given a {type(score).__name__}")
        found = observed.found
        if not isinstance(found, _Found):  # observed by another runtime: a bug
            raise PermanentError("the kubernetes runtime was given another runtime's observation")
        kinds = self._kinds(score, progress)  # 1.
        ns_name = score.namespace
        live_ns = self._namespace_of(ns_name, found, progress)  # 2.
        pass_ = _Pass(progress)
        keys = sorted({k.key for k in kinds})
        held = set(inventory(live_ns)) if live_ns is not None else set()
        if live_ns is None or not set(keys) <= held:  # 3.
            pass_.starting()
            self._apply(NAMESPACES, self._namespace(ns_name, revision, sorted(held | set(keys))),
                        None, progress, where="namespace")  # fmt: skip
        applied: dict[Identity, tuple[Kind, dict[str, Any]]] = {}
        for index, (kind, manifest) in enumerate(zip(kinds, score.manifests, strict=True)):  # 4.
            wanted = desired_object(
                manifest, namespace=ns_name, device=self._device,
                deployment=self._deployment, revision=revision,
            )  # fmt: skip
            name = str(manifest["metadata"]["name"])
            ident = (kind.group, kind.kind, ns_name, name)
            live = found.objects.get(ident)
            if live is not None and not drifted(live[1], wanted):
                applied[ident] = live
                continue
            pass_.starting()
            if live is not None:
                progress.breaking()
            where = f"manifests[{index}] ({kind.kind} {name!r})"
            applied[ident] = (kind, self._apply(kind, wanted, ns_name, progress, where=where))
        for ident, (kind, _) in found.objects.items():  # 5.
            if ident not in applied:
                pass_.pruned()
                self._cluster.delete(kind, ident[3], namespace=ident[2])
        for other in found.namespaces:
            if other != ns_name:
                pass_.pruned()
                self._cluster.delete(NAMESPACES, other, namespace=None)
        if live_ns is not None and set(inventory(live_ns)) != set(keys) and held - set(keys):
            self._apply(NAMESPACES, self._namespace(ns_name, revision, keys), None, progress,
                        where="namespace")  # fmt: skip
        return self._readiness(score, applied, progress)  # 6.

    def _namespace_of(self, name: str, found: _Found, progress: Progress) -> dict[str, Any] | None:
        """The score's namespace as it is (None: absent), if the deployment may use it."""
        live = found.namespaces.get(name) or self._cluster.get(NAMESPACES, name, namespace=None)
        if live is not None and not self._owned(live):
            _fail(
                progress,
                f"`namespace` {name!r} exists and is not this deployment's "
                "(it lacks fleet's labels): choose another namespace",
            )
        if live is not None and meta_str(live, "deletionTimestamp") is not None:
            progress.report(Phase.STARTING)
            progress.check_later(SETTLE, reason="settle")
            raise RetryLater  # the namespace is still being deleted
        return live

    def _kinds(self, score: KubernetesScore, progress: Progress) -> list[Kind]:
        kinds = []
        for index, manifest in enumerate(score.manifests):
            api_version, name = str(manifest["apiVersion"]), str(manifest["kind"])
            kind = self._cluster.kind(api_version, name)
            where = f"manifests[{index}].kind"
            if kind is None:
                _fail(progress, f"{where}: the cluster serves no {name} in {api_version}")
            if not kind.namespaced:
                _fail(progress, f"{where}: {name} is cluster-scoped; a kubernetes score "
                                f"applies namespaced objects into its namespace only")  # fmt: skip
            kinds.append(kind)
        return kinds

    def _namespace(self, name: str, revision: int, kinds: list[str]) -> dict[str, Any]:
        return namespace_object(
            name, device=self._device, deployment=self._deployment, revision=revision,
            kinds=kinds, pod_security=self._pod_security,
        )  # fmt: skip

    def _apply(
        self,
        kind: Kind,
        body: dict[str, Any],
        namespace: str | None,
        progress: Progress,
        *,
        where: str,
    ) -> dict[str, Any]:
        try:
            return self._cluster.apply(kind, body, namespace=namespace)
        except ApplyRefused as exc:
            _fail(progress, f"{where}: the cluster refused it: {exc.message}", cause=exc)

    def _readiness(
        self,
        score: KubernetesScore,
        applied: Mapping[Identity, tuple[Kind, dict[str, Any]]],
        progress: Progress,
    ) -> str | None:
        waiting = []
        for index, (ident, (kind, obj)) in enumerate(applied.items()):
            state, why = readiness(kind.group, kind.kind, obj)
            if state == "failed":
                return f"manifests[{index}] ({kind.kind} {ident[3]!r}) failed: {why}"
            if state == "waiting":
                waiting.append(f"{kind.kind} {ident[3]!r}: {why}")
        if waiting:
            progress.report(Phase.STARTING)
            progress.check_later(SETTLE, reason="settle")
            raise RetryLater
        return None


class _Pass:
    """What one pass said: ``Starting`` once, and that it touched something."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._started = False

    def starting(self) -> None:
        if not self._started:
            self._progress.report(Phase.STARTING)
            self._progress.touched()
            self._started = True

    def pruned(self) -> None:
        self._progress.touched()
        self._progress.breaking()


def _fail(progress: Progress, message: str, *, cause: BaseException | None = None) -> NoReturn:
    progress.report(Phase.FAILED, message)
    raise RetryLater from cause
