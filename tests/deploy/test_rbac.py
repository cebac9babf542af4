"""The operator runs with the permissions its ClusterRole grants, and no more.

The verbs come from reading ``fleet/`` (tests/deploy/rbac_audit.py): every Kubernetes call
the code can make must be granted, and every grant must be used by some call.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from fleet.contracts import CRD_GROUP
from tests.deploy.conftest import RELEASE, REPO, by_kind_name
from tests.deploy.rbac_audit import audit

Grant = tuple[str, str, str | None]  # (plural, verb, subresource)


def grants(objects: list[dict[str, Any]]) -> set[Grant]:
    role = by_kind_name(objects)[("ClusterRole", RELEASE)]
    out: set[Grant] = set()
    for rule in role["rules"]:
        if rule["apiGroups"] == [""]:  # the core group: its Kubernetes Events, nothing else
            assert rule["resources"] == ["events"], f"of the core group, events only: {rule}"
        else:
            assert rule["apiGroups"] == [CRD_GROUP], f"no other API group is needed: {rule}"
        assert "resourceNames" not in rule
        for resource in rule["resources"]:
            plural, _, sub = resource.partition("/")
            for verb in rule["verbs"]:
                assert "*" not in (verb, plural), f"wildcards grant too much: {rule}"
                out.add((plural, verb, sub or None))
    return out


def test_every_call_the_operator_makes_is_granted(chart_objects: list[dict[str, Any]]) -> None:
    found = audit(REPO / "fleet")
    granted = grants(chart_objects)
    assert not found.unknown_api, f"Kubernetes calls the Role does not cover: {found.unknown_api}"
    assert found.by_resource, "the audit found no Kubernetes call: it is not reading the code"
    assert found.by_resource - granted == set(), "used but not granted"
    for verb, sub in found.verbs:
        assert any(g[1:] == (verb, sub) for g in granted), f"{verb} {sub or ''}: not granted"


def test_the_role_grants_nothing_the_operator_does_not_use(
    chart_objects: list[dict[str, Any]],
) -> None:
    found = audit(REPO / "fleet")
    assert grants(chart_objects) - found.by_resource == set(), "granted but never used"


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
    }
    assert found.unknown_api == {"sample.py: create_namespaced_config_map"}


def test_the_operator_may_create_and_patch_events_and_nothing_else_of_the_core_group(
    chart_objects: list[dict[str, Any]],
) -> None:
    role = by_kind_name(chart_objects)[("ClusterRole", RELEASE)]
    core = [rule for rule in role["rules"] if rule["apiGroups"] == [""]]
    assert core == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]
    used = {use for use in audit(REPO / "fleet").by_resource if use[0] == "events"}
    assert used == {("events", "create", None), ("events", "patch", None)}
