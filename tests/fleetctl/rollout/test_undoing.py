"""undo: spec.score becomes a kept revision's score, wholly; refusals name what is kept."""

from __future__ import annotations

import pytest

from .conftest import Objects, Run, rollout, score

pytestmark = pytest.mark.timeout(60)


def test_undo_to_a_revision_replaces_the_score_wholly(ctl: Run, objects: Objects) -> None:
    # today's score has a key revision 2's never had: a plain merge patch would keep it
    today = score("localhost/web:3", note="only in revision 3")
    objects.deployment(spec_score=today, status={"rollout": rollout("Complete", revision=3)})
    for n in (1, 2, 3):
        objects.revision(n, outcome="Complete")
    result = ctl("rollout", "undo", "web", "--to-revision", "1")
    assert result.code == 0, result.err
    assert "rolled back to revision 1's score" in result.out
    spec = objects.get()["spec"]
    assert spec["score"] == score("localhost/web:1")
    assert spec["selector"] == {}  # the rest of the spec untouched


def test_undo_without_a_revision_goes_to_the_one_before_the_current(
    ctl: Run, objects: Objects
) -> None:
    objects.deployment(spec_score=score("localhost/web:5"),
                       status={"rollout": rollout("Halted", revision=5)})  # fmt: skip
    for n in (2, 3, 5, 6):  # 4 pruned; 6 created after the status was written
        objects.revision(n)
    assert ctl("rollout", "undo", "web").code == 0
    assert objects.get()["spec"]["score"] == score("localhost/web:3")


def test_undo_to_the_current_score_changes_nothing(ctl: Run, objects: Objects) -> None:
    objects.deployment(spec_score=score("localhost/web:2"))
    objects.revision(2)
    before = objects.get()["metadata"]["resourceVersion"]
    result = ctl("rollout", "undo", "web", "--to-revision", "2")
    assert (result.code, result.out.strip()) == (0, "deployment default/web: already at "
                                                    "revision 2's score")  # fmt: skip
    assert objects.get()["metadata"]["resourceVersion"] == before


def test_undo_to_a_revision_not_kept_names_it_and_those_kept(ctl: Run, objects: Objects) -> None:
    objects.deployment(spec_score=score("localhost/web:7"))
    for n in (5, 6, 7):
        objects.revision(n)
    result = ctl("rollout", "undo", "web", "--to-revision", "3")
    assert result.code == 2
    assert "revision 3 is not kept; kept: 5, 6, 7" in result.err
    assert objects.get()["spec"]["score"] == score("localhost/web:7")


def test_undo_with_nothing_before_the_current_revision(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing", revision=1)})
    objects.revision(1)
    result = ctl("rollout", "undo", "web")
    assert result.code == 2
    assert "no revision before revision 1 is kept; kept: 1" in result.err


@pytest.mark.parametrize("bad", ["0", "-1", "-99999999999999999999"])
def test_undo_refuses_a_revision_number_below_one(ctl: Run, objects: Objects, bad: str) -> None:
    objects.deployment()
    result = ctl("rollout", "undo", "web", "--to-revision", bad)
    assert result.code == 2
    assert f"--to-revision must be a revision number (1 or more), got {bad}" in result.err
    assert "Traceback" not in result.err
