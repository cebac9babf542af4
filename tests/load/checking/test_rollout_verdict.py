"""The rollout scenario's verdict (``loadtest/rollout_check.py``), on histories made by hand.

A verdict that passes everything proves nothing: each test breaks one thing the
scenario must prove (a device outside the batches reached given the new revision, a write
the tap missed, an offline device that never came back, the wrong outcome) and expects
a FAIL that names it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fleet.contracts import convert_score, encode_score
from loadtest.rollout_check import DeviceReport, Observed, judge
from loadtest.rollout_plan import IMAGE_V1, IMAGE_V2, batches, predict, score
from loadtest.tap import Write

V1 = encode_score(convert_score(score(IMAGE_V1)))
V2 = encode_score(convert_score(score(IMAGE_V2)))
DEVICES = [f"d{n}" for n in range(100)]
MEMBERS = batches(DEVICES)  # 1, 10, 89 devices
FAILING = {MEMBERS[1][0]}  # one failure among the 11 reached at batch 2: the 5% limit is 1
OFFLINE = frozenset({MEMBERS[1][1], MEMBERS[2][0]})
BACK_AT = 1000.0


def w(device: str, value: bytes) -> Write:
    return Write(0.0, device, "rollout", value)


def rolled_back(**change: Any) -> Observed:
    """A bad revision that halted in batch 2 and rolled back, everyone caught up."""
    reached = MEMBERS[0] + MEMBERS[1]
    writes = [w(d, V1) for d in DEVICES] + [w(d, V2) for d in reached] + [w(d, V1) for d in reached]
    seen = Observed(
        members=MEMBERS,
        prediction=predict(MEMBERS, failing=FAILING, offline=OFFLINE),
        offline=OFFLINE,
        writes=writes,
        stored=len(writes),
        rollout={
            "revision": 2,
            "phase": "RolledBack",
            "currentBatch": 2,
            "batchCount": 3,
            "batches": [{"devices": len(m)} for m in MEMBERS],
        },
        outcome="RolledBack",
        desired=dict.fromkeys(DEVICES, (7, V1)),
        reports={d: DeviceReport("Running", 7, BACK_AT + 1) for d in DEVICES},
        beats=dict.fromkeys(DEVICES, BACK_AT + 1),
        back_at=BACK_AT,
    )
    return dataclasses.replace(seen, **change)


def test_a_clean_rollback_passes_and_says_what_it_proved() -> None:
    verdict = judge(rolled_back())

    assert verdict.ok, verdict.render()
    assert "11 devices given revision 2, all within the 2 batch(es) reached" in verdict.render()


def test_a_device_outside_the_batches_reached_given_the_new_revision_fails() -> None:
    seen = rolled_back()
    outsider = MEMBERS[2][5]
    writes = [*seen.writes[:100], w(outsider, V2), *seen.writes[100:], w(outsider, V1)]
    verdict = judge(dataclasses.replace(seen, writes=writes, stored=len(writes)))

    assert not verdict.ok
    assert f"1 devices outside the 2 batch(es) reached were given revision 2: ['{outsider}']" in (
        verdict.lines
    )


def test_a_write_the_tap_missed_makes_the_history_incomplete() -> None:
    seen = rolled_back()
    verdict = judge(dataclasses.replace(seen, stored=seen.stored + 1))

    assert not verdict.ok
    assert any("the history is incomplete" in line for line in verdict.lines)


def test_a_new_revision_written_after_the_rollback_began_fails() -> None:
    seen = rolled_back()
    late = [*seen.writes, w(MEMBERS[1][3], V2), w(MEMBERS[1][3], V1)]
    verdict = judge(dataclasses.replace(seen, writes=late, stored=len(late)))

    assert "1 revision-2 writes came after the rollback began" in verdict.lines


def test_an_offline_device_that_did_not_report_since_it_came_back_fails() -> None:
    seen = rolled_back()
    device = MEMBERS[2][0]  # offline, outside the batches reached: its old report still fits
    reports = {**seen.reports, device: DeviceReport("Running", 7, BACK_AT - 50)}
    verdict = judge(dataclasses.replace(seen, reports=reports))

    assert not verdict.ok
    assert any("did not report or beat since they came back" in line for line in verdict.lines)


def test_a_device_left_on_the_new_revision_fails() -> None:
    seen = rolled_back()
    desired = {**seen.desired, MEMBERS[1][4]: (9, V2)}
    verdict = judge(dataclasses.replace(seen, desired=desired))

    assert any(line.startswith(f"1 devices do not hold {IMAGE_V1}") for line in verdict.lines)


def test_an_outcome_other_than_the_devices_imply_fails() -> None:
    seen = rolled_back()
    verdict = judge(
        dataclasses.replace(seen, rollout={**seen.rollout, "phase": "Complete"}, outcome=None)
    )

    assert any(".status.rollout.phase is 'Complete'" in line for line in verdict.lines)
    assert any("journaled None" in line for line in verdict.lines)


def test_batch_sizes_other_than_recomputed_fail() -> None:
    seen = rolled_back()
    shown = [{"devices": 2}, {"devices": 9}, {"devices": 89}]
    verdict = judge(dataclasses.replace(seen, rollout={**seen.rollout, "batches": shown}))

    assert ".status.rollout.batches devices are [2, 9, 89], recomputed [1, 10, 89]" in (
        verdict.lines
    )


def test_the_prediction_walks_the_batches() -> None:
    assert predict(MEMBERS, failing=set(), offline=OFFLINE).outcome == "Complete"
    first = predict(MEMBERS, failing={MEMBERS[0][0]}, offline=set())
    assert (first.outcome, first.batch, first.limit) == ("RolledBack", 1, 1)
    # offline devices fail nothing: they never run the new image while the rollout lasts
    assert predict(MEMBERS, failing={MEMBERS[0][0]}, offline={MEMBERS[0][0]}).outcome == (
        "Complete"
    )
    # two failures in the last batch, whose 100 reached allow 5: it can neither go on nor halt
    stuck = predict(MEMBERS, failing=set(MEMBERS[2][:2]), offline=set())
    assert (stuck.outcome, stuck.batch, stuck.failed, stuck.limit) == ("Stuck", 3, 2, 5)


def test_a_stuck_draw_is_no_pass() -> None:
    stuck = predict(MEMBERS, failing=set(MEMBERS[2][:2]), offline=set())
    verdict = judge(dataclasses.replace(rolled_back(), prediction=stuck))

    assert not verdict.ok
    assert any("another --seed" in line for line in verdict.lines)
