"""When a Deployment tells each target's device actor what to expect: at its write's
completion, at once without a write, when writes stall; and what the answers do."""

from __future__ import annotations

from fleet.actors.operator import messages as m
from fleet.actors.operator.registrations import Registrations
from fleet.actors.operator.status import Aggregate
from fleet.contracts import DeploymentName, DeviceId

from .fakes import Ref, Timers

D1, D2, D3 = DeviceId("d1"), DeviceId("d2"), DeviceId("d3")
WEB = DeploymentName("web")


def expects(ref: Ref) -> list[m.Expect]:
    return [x for x in ref.told if isinstance(x, m.Expect)]


def test_first_targets_wait_then_register_once_without_an_answer_for_pending() -> None:
    r1, r2 = Ref("d1"), Ref("d2")
    regs = Registrations()
    assert regs.add([(D1, r1), (D2, r2)], first=True) == [D1, D2]
    assert regs.waiting == 2
    regs.expect([D1], deployment=WEB, reply="channel", revision=lambda d: 7)  # written
    (told,) = expects(r1)
    assert (told.revision, told.answer, told.reply) == (7, False, "channel")
    assert regs.registered([D1, D2]) == [D1]
    regs.expect([D1], deployment=WEB, reply="channel", revision=lambda d: 8)  # an update
    assert expects(r1)[-1].answer  # registered already: answer is moot, never withheld
    assert regs.unregistered() == [D2]


def test_later_targets_always_answer_and_only_those_told_are_told_to_forget() -> None:
    r1, r2, r3 = Ref("d1"), Ref("d2"), Ref("d3")
    regs = Registrations()
    regs.add([(D1, r1)], first=True)
    regs.expect([D1], deployment=WEB, reply="c", revision=lambda d: None)
    assert regs.add([(D1, r1), (D3, r3)], first=False) == [D3]  # D1 unchanged
    regs.expect([D3], deployment=WEB, reply="c", revision=lambda d: None)
    assert expects(r3)[0].answer
    regs.add([(D2, r2)], first=False)
    assert regs.remove([D1, D2, DeviceId("d9")], deployment=WEB, reply="c") == [D1, D2]
    assert any(isinstance(x, m.Unexpect) for x in r1.told)
    assert r2.told == []  # never told anything: nothing to take back
    assert list(regs) == [D3]
    regs.expect([D1], deployment=WEB, reply="c", revision=lambda d: 1)  # not a target
    assert len(expects(r1)) == 1


def test_the_late_check_registers_only_when_writes_stall() -> None:
    timers = Timers(hold=(m.RegisterLate,))
    regs = Registrations(timers=timers, owner=Ref("deployment"), late=1.0)
    regs.add([(D1, Ref()), (D2, Ref())], first=True)
    regs.add([(D3, Ref())], first=False)
    assert len(timers.held) == 1  # armed once
    regs.progressed()  # a write completed meanwhile: wait for the others' own
    assert regs.late() == []
    assert len(timers.held) == 2  # armed again
    assert sorted(regs.late()) == [D1, D2, D3]  # nothing completed for a whole delay


def test_answers_count_targets_and_pass_on_revisions_to_check() -> None:
    regs = Registrations()
    regs.add([(D1, Ref()), (D2, Ref())], first=True)
    agg = Aggregate()
    reported = regs.answers(
        [
            m.Classified(device=D1, cls="running"),
            m.Classified(device=D2, cls="failed", message="boom"),
            m.Classified(device=D3, cls="running"),  # not a target (any more)
            m.Reported(device=D1, revision=9),
        ],
        agg,
    )
    assert reported == [(D1, 9)]
    assert agg.counts()["running"] == 1
    assert agg.failing() == [{"device": "d2", "message": "boom"}]
    assert D3 not in agg


def test_a_new_actor_for_a_device_is_a_new_registration() -> None:
    regs = Registrations()
    regs.add([(D1, Ref())], first=True)
    regs.expect([D1], deployment=WEB, reply="c", revision=lambda d: 1)
    again = Ref("d1, again")
    assert regs.add([(D1, again)], first=False) == [D1]
    assert regs.ref(D1) is again
    regs.expect([D1], deployment=WEB, reply="c", revision=lambda d: 1)
    assert expects(again)[0].answer
