"""history: one line per kept revision with its outcome; one revision's score."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import Objects, Run, rollout, score

pytestmark = pytest.mark.timeout(60)


def test_history_lists_outcomes_the_current_phase_and_superseded(
    ctl: Run, objects: Objects
) -> None:
    objects.deployment(status={"rollout": rollout("WaitingForApproval", revision=4)})
    objects.revision(1, outcome="Complete")
    objects.revision(2, outcome="RolledBack")
    objects.revision(3)  # never ended: a newer score replaced it mid-rollout
    objects.revision(4)
    objects.revision(1, name="other", outcome="Halted")  # another Deployment's
    result = ctl("rollout", "history", "web")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["REVISION", "OUTCOME", "CREATED", "SCORE"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("1", "Complete", "web=localhost/web:1"),
        ("2", "RolledBack", "web=localhost/web:2"),
        ("3", "Superseded", "web=localhost/web:3"),
        ("4", "WaitingForApproval", "web=localhost/web:4"),
    ]
    listed = json.loads(ctl("rollout", "history", "web", "-o", "json").out)
    assert [r["outcome"] for r in listed] == [
        "Complete", "RolledBack", "Superseded", "WaitingForApproval",
    ]  # fmt: skip


def test_history_of_one_revision_prints_its_score(ctl: Run, objects: Objects) -> None:
    objects.deployment()
    objects.revision(2, outcome="Complete")
    shown = ctl("rollout", "history", "web", "--revision", "2")
    assert shown.code == 0, shown.err
    assert yaml.safe_load(shown.out) == score("localhost/web:2")
    as_json = ctl("rollout", "history", "web", "--revision", "2", "-o", "json")
    assert json.loads(as_json.out) == score("localhost/web:2")
    missing = ctl("rollout", "history", "web", "--revision", "9")
    assert (missing.code, "revision 9 is not kept; kept: 2" in missing.err) == (2, True)


def test_a_revision_that_cannot_be_read_is_a_warning(ctl: Run, objects: Objects) -> None:
    objects.deployment()
    objects.revision(1, outcome="Complete")
    objects.revision(2, raw_score={"type": "podman", "containers": "not a list"})
    result = ctl("rollout", "history", "web")
    assert result.code == 0
    assert [line.split()[0] for line in result.out.splitlines()[1:]] == ["1"]
    assert "fleetctl: warning: deployment default/web: a revision is left out: web-r2" in result.err


def test_history_with_an_unreadable_status_still_lists(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": "garbage"})
    objects.revision(1)
    result = ctl("rollout", "history", "web")
    assert result.code == 0
    assert result.out.splitlines()[1].split()[:2] == ["1", "Pending"]
    assert ".status.rollout: expected an object, got 'garbage'" in result.err


def test_no_revisions_kept(ctl: Run, objects: Objects) -> None:
    objects.deployment()
    result = ctl("rollout", "history", "web")
    assert (result.code, result.out.strip()) == (0, "No revisions kept for deployment default/web.")


def test_a_deleted_namesakes_leftover_revisions_are_not_this_deployments(
    ctl: Run, objects: Objects
) -> None:
    objects.revision(1, outcome="Complete")  # before the Deployment: owned by none of it
    objects.deployment(status={"rollout": rollout("Complete", revision=2)})
    objects.revision(2, outcome="Complete")
    result = ctl("rollout", "history", "web")
    assert result.code == 0, result.err
    assert [line.split()[0] for line in result.out.splitlines()[1:]] == ["2"]
    gone = ctl("rollout", "undo", "web", "--to-revision", "1")
    assert gone.code == 2
    assert "revision 1 is not kept; kept: 2" in gone.err
