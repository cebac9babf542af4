"""The operator runs with the permissions its ClusterRole grants, and no more.

The verbs come from reading ``fleet/`` (tests/deploy/rbac_audit.py): every Kubernetes call
the code can make must be granted, and every grant must be used by some call.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleet.contracts import CRD_GROUP
from tests.deploy.conftest import CHART, NAMESPACE, RELEASE, REPO, by_kind_name
from tests.deploy.helm import render_chart
from tests.deploy.rbac_audit import audit

Grant = tuple[str, str, str | None]  # (plural, verb, subresource)
REVIEW_GROUPS = {"tokenreviews": "authentication.k8s.io",
                 "subjectaccessreviews": "authorization.k8s.io"}  # fmt: skip
DASHBOARD_ONLY: set[Grant] = {("tokenreviews", "create", None),
                              ("subjectaccessreviews", "create", None)}  # fmt: skip
"""The calls only the dashboard makes: granted only with ``dashboard.enabled``."""


@pytest.fixture(scope="module")
def dashboard_objects() -> list[dict[str, Any]]:
    """The chart with the dashboard on (off by default, like the kustomize base)."""
    return render_chart(CHART, release=RELEASE, namespace=NAMESPACE,
                        values={"dashboard": {"enabled": True}})  # fmt: skip


def grants(objects: list[dict[str, Any]]) -> set[Grant]:
    """What the ClusterRole grants, and the release namespace's Role (Leases, pods)."""
    out = _rules(by_kind_name(objects)[("ClusterRole", RELEASE)]["rules"])
    role = by_kind_name(objects).get(("Role", RELEASE))
    if role is not None:  # leader election: the Lease, and patch of its own pod's label
        for rule in role["rules"]:
            assert (rule["apiGroups"], rule["resources"]) in (
                (["coordination.k8s.io"], ["leases"]),
                ([""], ["pods"]),
            ), f"the Role: Leases and pods only: {rule}"
            if rule["resources"] == ["pods"]:
                assert rule["verbs"] == ["patch"], f"pods: patch only: {rule}"
                out |= {("pods", "patch", None)}
            else:
                out |= _rules([rule], group="coordination.k8s.io")
    return out


def _rules(rules: list[dict[str, Any]], *, group: str = CRD_GROUP) -> set[Grant]:
    out: set[Grant] = set()
    for rule in rules:
        if rule["apiGroups"] == [""]:  # the core group: Events, and the files' objects
            assert rule["resources"] in (["events"], ["configmaps", "secrets"]), rule
        elif set(rule["resources"]) <= set(REVIEW_GROUPS):  # the dashboard's reviews
            assert rule["apiGroups"] == [REVIEW_GROUPS[r] for r in rule["resources"]], rule
            assert rule["verbs"] == ["create"], f"reviews: create only: {rule}"
        else:
            assert rule["apiGroups"] == [group], f"no other API group is needed: {rule}"
        assert "resourceNames" not in rule
        for resource in rule["resources"]:
            plural, _, sub = resource.partition("/")
            for verb in rule["verbs"]:
                assert "*" not in (verb, plural), f"wildcards grant too much: {rule}"
                out.add((plural, verb, sub or None))
    return out


def test_every_call_the_operator_makes_is_granted(
    dashboard_objects: list[dict[str, Any]],
) -> None:
    found = audit(REPO / "fleet")
    granted = grants(dashboard_objects)
    assert not found.unknown_api, f"Kubernetes calls the Role does not cover: {found.unknown_api}"
    assert found.by_resource, "the audit found no Kubernetes call: it is not reading the code"
    assert found.by_resource >= DASHBOARD_ONLY, "the audit does not see the dashboard's reviews"
    assert found.by_resource - granted == set(), "used but not granted"
    for verb, sub in found.verbs:
        assert any(g[1:] == (verb, sub) for g in granted), f"{verb} {sub or ''}: not granted"


def test_without_the_dashboard_only_its_reviews_are_not_granted(
    chart_objects: list[dict[str, Any]],
) -> None:
    found = audit(REPO / "fleet")
    assert found.by_resource - grants(chart_objects) == DASHBOARD_ONLY


def test_the_role_grants_nothing_the_operator_does_not_use(
    chart_objects: list[dict[str, Any]], dashboard_objects: list[dict[str, Any]]
) -> None:
    found = audit(REPO / "fleet")
    assert grants(chart_objects) - found.by_resource == set(), "granted but never used"
    assert grants(dashboard_objects) - found.by_resource == set(), "granted but never used"


def test_the_dashboard_gets_its_port_service_and_flag_only_when_enabled(
    chart_objects: list[dict[str, Any]], dashboard_objects: list[dict[str, Any]]
) -> None:
    from fleet.cli.operator import parse_args

    def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
        spec = by_kind_name(objects)[("Deployment", RELEASE)]["spec"]["template"]["spec"]
        found: dict[str, Any] = spec["containers"][0]
        return found

    assert ("Service", f"{RELEASE}-dashboard") not in by_kind_name(chart_objects)
    assert parse_args(container(chart_objects)["args"]).dashboard_address is None
    on = container(dashboard_objects)
    assert parse_args(on["args"]).dashboard_address == ("0.0.0.0", 8081)
    assert {"name": "dashboard", "containerPort": 8081, "protocol": "TCP"} in on["ports"]
    service = by_kind_name(dashboard_objects)[("Service", f"{RELEASE}-dashboard")]
    assert service["spec"]["ports"] == [
        {"name": "dashboard", "port": 8081, "targetPort": "dashboard", "protocol": "TCP"}
    ]


def test_the_binding_gives_the_role_to_the_operator_service_account(
    chart_objects: list[dict[str, Any]],
) -> None:
    objects = by_kind_name(chart_objects)
    binding = objects[("ClusterRoleBinding", RELEASE)]
    deployment = objects[("Deployment", RELEASE)]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": RELEASE,
    }
    (subject,) = binding["subjects"]
    assert subject["kind"] == "ServiceAccount"
    assert subject["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert subject["namespace"] == deployment["metadata"]["namespace"]


SAMPLE = """
import kubernetes
from fleet.contracts import CRD_GROUP

class Resource:
    def __init__(self, plural, namespaced): ...

THINGS = Resource("things", namespaced=True)
WIDGETS = Resource("widgets", namespaced=False)

class Client:
    def replace(self, resource, *, name, status=False):
        fn = (self.api.replace_namespaced_custom_object_status if status
              else self.api.replace_namespaced_custom_object)
        return fn(CRD_GROUP, name)

    def get(self, resource, *, name):
        return self.api.get_cluster_custom_object(CRD_GROUP, resource.plural, name)

class Watcher:
    def __init__(self, *, client, resource): ...
    def _open(self):
        return self.api.list_cluster_custom_object(CRD_GROUP, watch=True)

class Gateway:
    def touch(self):
        self.pool.submit(self.client.replace, THINGS, name="a", status=True)
        self.client.get(WIDGETS, name="b").get("spec")
        Watcher(client=self.client, resource=WIDGETS)
        self.core.create_namespaced_event("ns", {})
        self.core.patch_namespaced_event("n", "ns", {})
        self.core.create_namespaced_config_map("ns", {})
        self.authn.create_token_review({})
        self.authz.create_subject_access_review({})
        self.authz.create_something_else_review({})
"""


def test_the_audit_reads_verbs_resources_and_subresources(tmp_path: Path) -> None:
    (tmp_path / "sample.py").write_text(textwrap.dedent(SAMPLE))
    found = audit(tmp_path)
    assert found.by_resource == {
        ("things", "update", "status"),
        ("widgets", "get", None),
        ("widgets", "watch", None),
        ("events", "create", None),
        ("events", "patch", None),
        ("tokenreviews", "create", None),
        ("subjectaccessreviews", "create", None),
    }
    assert found.unknown_api == {
        "sample.py: create_namespaced_config_map",
        "sample.py: create_something_else_review",
    }


def test_the_operator_may_create_and_patch_events_and_nothing_else_of_the_core_group(
    chart_objects: list[dict[str, Any]],
) -> None:
    """...but get (never list or watch) the ConfigMaps and Secrets files name."""
    role = by_kind_name(chart_objects)[("ClusterRole", RELEASE)]
    core = [rule for rule in role["rules"] if rule["apiGroups"] == [""]]
    assert core == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]},
    ]
    used = {use for use in audit(REPO / "fleet").by_resource if use[0] == "events"}
    assert used == {("events", "create", None), ("events", "patch", None)}
    read = {u for u in audit(REPO / "fleet").by_resource if u[0] in ("configmaps", "secrets")}
    assert read == {("configmaps", "get", None), ("secrets", "get", None)}
