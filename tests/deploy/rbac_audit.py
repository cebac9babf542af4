"""Which Kubernetes API verbs the fleet code can issue, read from its source (no cluster).

Why it exists: the operator must run with the permissions its ClusterRole grants and no
more, and there is no API server here to audit real requests. So this reads the code:

* every reference to a ``kubernetes`` client method (``list_cluster_custom_object``,
  ``patch_namespaced_custom_object_status``...) is a verb, on the ``status`` subresource
  when the name ends in ``_status``; a ``list_*`` in a function that asks for
  ``watch=True`` (keyword or dict entry) is a ``watch``;
* a function's verbs include those of the functions it calls with a resource argument
  (``self.client.patch(DEVICES, ..., status=True)``, ``self.get(resource, ...)``,
  ``pool.submit(self.client.patch, DEPLOYMENTS, ...)``) and, for a class built with
  ``resource=CONSTANT``, those of all its methods; ``status=True``/absent at a call site
  keeps only the status/plain verbs;
* a call site whose resource argument is a module constant ``NAME = Resource("plural")``
  attributes those verbs to that resource.

It over-approximates on purpose (a verb reachable by any branch counts), so "granted but
never used" findings are real, and "used but not granted" findings are worth reading.
Core/v1 Events (``create_namespaced_event``, ``patch_namespaced_event``...) are
``events`` of the core group; ``read_namespaced_config_map`` and
``read_namespaced_secret`` are ``get`` on ``configmaps`` and ``secrets`` (files);
``*_namespaced_lease`` calls are ``leases`` (of
``coordination.k8s.io``, granted by the release namespace's Role);
``create_token_review`` and ``create_subject_access_review`` are ``tokenreviews`` and
``subjectaccessreviews`` (the dashboard's, granted with it; any other ``*_review`` is
unknown). Any other
``kubernetes`` API method (other core resources) is reported as unknown, so new kinds of
calls cannot slip past the Role unseen. Never used by ``fleet``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CUSTOM = re.compile(
    r"^(list|read|get|create|patch|replace|delete|delete_collection)_"
    r"(namespaced|cluster)_custom_object(_status)?$"
)
# core/v1 Events (the operator's Kubernetes Events): the one core resource it may touch
CORE_EVENTS = re.compile(
    r"^(list|read|create|patch|replace|delete|delete_collection)_"
    r"(namespaced_event|event_for_all_namespaces)$"
)
# core/v1 ConfigMaps and Secrets a Deployment's files name: read one by one (get only)
FILE_OBJECTS = {
    "read_namespaced_config_map": "configmaps",
    "read_namespaced_secret": "secrets",
}
# coordination.k8s.io/v1 Leases: the replicas' leader election (a namespaced Role grants it)
LEASES = re.compile(r"^(list|read|create|patch|replace|delete)_namespaced_lease$")
# the leader's own pod label (fleet/runtime/kube/leader_label.py), granted by that Role too
PODS = re.compile(r"^(read|patch|replace)_namespaced_pod$")
# authentication.k8s.io TokenReviews and authorization.k8s.io SubjectAccessReviews: the
# dashboard asks who a viewer's token is and what it may do (create only: nothing is kept)
REVIEWS = {
    "create_token_review": "tokenreviews",
    "create_subject_access_review": "subjectaccessreviews",
    "create_self_subject_access_review": "selfsubjectaccessreviews",
    "create_local_subject_access_review": "localsubjectaccessreviews",
}
OTHER_API = re.compile(
    r"^(list|read|create|patch|replace|delete|delete_collection)_(namespaced_)?[a-z_]+$"
)
VERB = {
    "list": "list",
    "read": "get",
    "get": "get",
    "create": "create",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "delete_collection": "deletecollection",
}

Verb = tuple[str, str | None]  # (verb, subresource)
Use = tuple[str, str, str | None]  # (plural, verb, subresource)


@dataclass
class _Function:
    name: str
    cls: str | None
    module: str
    params: set[str]
    node: ast.AST
    direct: set[Verb] = field(default_factory=set)
    calls: list[tuple[str, str | None, ast.Call, int]] = field(default_factory=list)


@dataclass
class Audit:
    by_resource: set[Use]
    verbs: set[Verb]
    unknown_api: set[str]
    files: int


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _status_filter(call: ast.Call) -> bool | None:
    """True: only status verbs; False: only plain verbs; None: both (a variable)."""
    for kw in call.keywords:
        if kw.arg == "status":
            if isinstance(kw.value, ast.Constant):
                return bool(kw.value.value)
            return None
    return False


def _keep(verbs: Iterable[Verb], status: bool | None) -> set[Verb]:
    if status is None:
        return set(verbs)
    return {v for v in verbs if (v[1] == "status") == status}


def _resource_arg(call: ast.Call, skip: int, constants: dict[str, str]) -> tuple[bool, str | None]:
    """Whether the call passes a resource, and which constant's plural if it is one."""
    candidates = list(call.args[skip : skip + 1]) + [
        kw.value for kw in call.keywords if kw.arg == "resource"
    ]
    for node in candidates:
        if isinstance(node, ast.Name) and node.id in constants:
            return True, constants[node.id]
        ident = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
        if "resource" in ident:
            return True, None
    return False, None


def _wants_watch(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.keyword) and node.arg == "watch" and _is_true(node.value):
            return True
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "watch" and _is_true(value):
                    return True
    return False


@dataclass
class _Index:
    classes: dict[str, list[_Function]]
    by_name: dict[str, list[_Function]]
    resource_fns: set[str]
    constants: dict[str, str]


def _targets(call: ast.Call, caller: _Function, index: _Index) -> list[tuple[list[_Function], int]]:
    """The functions ``call`` may run, with where its resource argument sits (-1: a class)."""
    classes, by_name = index.classes, index.by_name
    resource_fns, constants = index.resource_fns, index.constants
    func = call.func
    found: list[tuple[list[_Function], int]] = []
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "self" and caller.cls:
            same = [f for f in classes.get(caller.cls, []) if f.name == func.attr]
            if same:
                found.append((same, 0))
        elif func.attr in resource_fns and _resource_arg(call, 0, constants)[0]:
            found.append(([f for f in by_name[func.attr] if "resource" in f.params], 0))
    if isinstance(func, ast.Name) and func.id in classes:
        found.append((classes[func.id], -1))
    if call.args and isinstance(call.args[0], ast.Attribute):
        ref = call.args[0].attr
        if ref in resource_fns and _resource_arg(call, 1, constants)[0]:
            found.append(([f for f in by_name[ref] if "resource" in f.params], 1))
    return found


def _uses_kubernetes(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(name.startswith("kubernetes") for name in names):
            return True
    return False


def _resource_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = Resource("plural", ...)``."""
    out: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "Resource"
            and node.value.args
            and isinstance(node.value.args[0], ast.Constant)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = str(node.value.args[0].value)
    return out


def _read_function(
    fn: ast.FunctionDef, *, owner: str | None, path: Path, kube: bool, unknown: set[str],
    core: set[Use],
) -> _Function:  # fmt: skip
    params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
    info = _Function(fn.name, owner, str(path), params, fn)
    watch = _wants_watch(fn)
    for node in ast.walk(fn):
        if not isinstance(node, ast.Attribute):
            continue
        match = CUSTOM.match(node.attr)
        if match:
            verb = VERB[match.group(1)]
            if verb == "list" and watch:
                verb = "watch"
            info.direct.add((verb, "status" if match.group(3) else None))
        elif kube and (event := CORE_EVENTS.match(node.attr)):
            core.add(("events", VERB[event.group(1)], None))
        elif kube and (lease := LEASES.match(node.attr)):
            core.add(("leases", VERB[lease.group(1)], None))
        elif kube and (pod := PODS.match(node.attr)):
            core.add(("pods", VERB[pod.group(1)], None))
        elif kube and node.attr in FILE_OBJECTS:
            core.add((FILE_OBJECTS[node.attr], "get", None))
        elif kube and node.attr in REVIEWS:
            core.add((REVIEWS[node.attr], "create", None))
        elif (
            kube
            and OTHER_API.match(node.attr)
            and (_api_like(node) or node.attr.endswith("_review"))
        ):
            unknown.add(f"{path.name}: {node.attr}")
    return info


# Code that runs with a *user's* credentials, not the operator's ServiceAccount: fleetctl
# (apply creates and deletes Deployments), the local demo and the development stand-ins.
NOT_THE_OPERATOR = ("cli/fleetctl/", "cli/demo", "devtools/")
# ...except what the operator's dashboard runs with its ServiceAccount: ``fleetctl
# rollout``'s actions, behind the rollout buttons (fleet/cli/dashboard_rollouts.py).
THE_OPERATOR_RUNS_TOO = ("cli/fleetctl/rollout.py",)


def audit(root: Path) -> Audit:
    """Audit every ``*.py`` under ``root`` (the ``fleet`` package) the operator can run."""
    files = [
        p
        for p in sorted(root.rglob("*.py"))
        if not p.relative_to(root).as_posix().startswith(NOT_THE_OPERATOR)
        or p.relative_to(root).as_posix() in THE_OPERATOR_RUNS_TOO
    ]
    constants: dict[str, str] = {}
    functions: list[_Function] = []
    classes: dict[str, list[_Function]] = {}
    unknown: set[str] = set()
    core: set[Use] = set()
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        kube = _uses_kubernetes(tree)
        constants.update(_resource_constants(tree))
        for owner, fn in _functions(tree):
            info = _read_function(fn, owner=owner, path=path, kube=kube, unknown=unknown, core=core)
            functions.append(info)
            if owner:
                classes.setdefault(owner, []).append(info)
    by_name: dict[str, list[_Function]] = {}
    for info in functions:
        by_name.setdefault(info.name, []).append(info)
    resource_fns = {info.name for info in functions if "resource" in info.params}
    index = _Index(classes, by_name, resource_fns, constants)

    edges: list[Edge] = []
    for info in functions:
        for node in ast.walk(info.node):
            if isinstance(node, ast.Call):
                for callees, skip in _targets(node, info, index):
                    edges.append((info, callees, node, skip))

    verbs = _propagate(functions, edges, constants)

    by_resource: set[Use] = set(core)  # core Events: named by the method itself
    for _caller, callees, call, skip in edges:
        has, plural = _resource_arg(call, max(skip, 0), constants)
        if not has or plural is None:
            continue
        status = None if skip == -1 else _status_filter(call)
        for callee in callees:
            for verb, sub in _keep(verbs[id(callee)], status):
                by_resource.add((plural, verb, sub))
    all_verbs: set[Verb] = set().union(*(f.direct for f in functions))
    return Audit(by_resource=by_resource, verbs=all_verbs, unknown_api=unknown, files=len(files))


Edge = tuple[_Function, list[_Function], ast.Call, int]


def _propagate(
    functions: list[_Function], edges: list[Edge], constants: dict[str, str]
) -> dict[int, set[Verb]]:
    """Each function's verbs: its own and, to a fixpoint, those of what it calls."""
    verbs: dict[int, set[Verb]] = {id(f): set(f.direct) for f in functions}
    changed = True
    while changed:
        changed = False
        for caller, callees, call, skip in edges:
            status = None if skip == -1 else _status_filter(call)
            if skip == 0 and not _resource_arg(call, 0, constants)[0]:
                status = None  # self.helper(...) without a resource: all its verbs count
            gained = _keep(set().union(*(verbs[id(c)] for c in callees)), status)
            if not gained <= verbs[id(caller)]:
                verbs[id(caller)] |= gained
                changed = True
    return verbs


def _api_like(node: ast.Attribute) -> bool:
    """``something_api.create_namespaced_event`` looks like a client call; ``self.create``
    or ``js.create_key_value`` do not (the name must say namespaced/cluster or a kind)."""
    return "namespaced" in node.attr or "cluster" in node.attr


def _functions(tree: ast.Module) -> Iterable[tuple[str | None, ast.FunctionDef]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield None, node  # type: ignore[misc]
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, ast.FunctionDef):
                    yield None, inner
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield node.name, item  # type: ignore[misc]
                    for inner in ast.walk(item):
                        if inner is not item and isinstance(inner, ast.FunctionDef):
                            yield node.name, inner
