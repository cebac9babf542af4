"""status: what a person sees, the exit codes, --watch until the rollout ends."""

from __future__ import annotations

import io
import threading

import pytest

from fleet.runtime.kube.client import DEPLOYMENTS

from .conftest import NS, Objects, Run, rollout

pytestmark = pytest.mark.timeout(60)


class Terminal(io.StringIO):
    """Output that says it is a terminal, and tells when something was written."""

    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.written = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        n = super().write(text)
        self.written.set()
        return n


@pytest.mark.parametrize(
    ("phase", "code"),
    [("Complete", 0), ("Halted", 1), ("RolledBack", 1), ("Progressing", 0), ("Paused", 0)],
)
def test_status_exit_code_follows_the_phase(
    ctl: Run, objects: Objects, phase: str, code: int
) -> None:
    objects.deployment(status={"rollout": rollout(phase)})
    result = ctl("rollout", "status", "web")
    assert result.code == code, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        f"deployment default/web: revision 4 {phase}, batch 2/3 (stable: revision 3)"
    )
    assert lines[1] == f"  the reason for {phase}"
    assert lines[2] == "  batch 1: 10 devices, 10 updated, 9 running, 1 failed, 0 unreachable"
    assert len(lines) == 5


def test_a_deployment_the_operator_has_not_seen(ctl: Run, objects: Objects) -> None:
    objects.deployment()
    result = ctl("rollout", "status", "web")
    assert result.code == 0
    assert "no rollout yet, waiting for the operator" in result.out


def test_watch_ends_when_the_rollout_completes(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing")})
    out = Terminal(tty=False)

    def operator_completes() -> None:
        if out.written.wait(20):  # fleetctl has shown the rollout in progress
            objects.status("web", {"rollout": rollout("Complete", batch=3)})

    thread = threading.Thread(target=operator_completes)
    thread.start()
    try:
        result = ctl("rollout", "status", "web", "--watch", "--timeout", "30", out=out)
    finally:
        thread.join(30)
    assert result.code == 0, result.err
    heads = [line for line in result.out.splitlines() if line.startswith("deployment")]
    assert heads == [
        "deployment default/web: revision 4 Progressing, batch 2/3 (stable: revision 3)",
        "deployment default/web: revision 4 Complete, batch 3/3 (stable: revision 3)",
    ]


def test_watch_on_a_terminal_draws_bars_and_fails_on_rollback(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing")})
    out = Terminal(tty=True)

    def operator_rolls_back() -> None:
        if out.written.wait(20):
            objects.status("web", {"rollout": rollout("RolledBack")})

    thread = threading.Thread(target=operator_rolls_back)
    thread.start()
    try:
        result = ctl("rollout", "status", "web", "-w", "--timeout", "30", out=out)
    finally:
        thread.join(30)
    assert result.code == 1
    assert "  batch 1 [" + "#" * 27 + "...] 9/10 running, 1 failed" in result.out
    assert "\x1b[5F\x1b[J" in result.out  # the 5 lines drawn before, redrawn in place
    assert result.out.rstrip().splitlines()[-5].endswith("revision 4 RolledBack, batch 2/3 "
                                                         "(stable: revision 3)")  # fmt: skip


def test_watch_gives_up_after_its_timeout(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Progressing")})
    result = ctl("rollout", "status", "web", "--watch", "--timeout", "1.5")
    assert result.code == 1
    assert "the rollout did not end within 1.5 s" in result.err


def test_watch_waits_for_the_operator_to_see_the_latest_spec(ctl: Run, objects: Objects) -> None:
    objects.deployment(status={"rollout": rollout("Complete")})
    objects.client.patch(DEPLOYMENTS, namespace=NS, name="web",
                         body={"spec": {"selector": {"matchLabels": {"a": "b"}}}})  # fmt: skip
    result = ctl("rollout", "status", "web", "--watch", "--timeout", "1.5")
    assert result.code == 1
    assert "waiting for the operator to see generation 2 (it has seen 1)" in result.out


@pytest.mark.parametrize(
    ("rollout_status", "says"),
    [
        ("garbage", ".status.rollout: expected an object, got 'garbage'"),
        ({"revision": 10**30, "phase": "Complete"}, ".status.rollout.revision: expected an "
         "integer 1..9007199254740991, got 1000000000000000000000000000000"),
        ({"revision": 2, "phase": "Bogus"}, ".status.rollout.phase: expected one of"),
        ({**rollout("Progressing"), "batches": [{"running": -1}]},
         ".status.rollout.batches[0].running: expected an integer"),
        ({**rollout("Progressing"), "batches": "x" * 10_000}, "got 'xxxx"),
        ({**rollout("Progressing"), "currentBatch": True}, ".status.rollout.currentBatch"),
    ],
)  # fmt: skip
def test_a_garbled_status_is_a_clear_error(
    ctl: Run, objects: Objects, rollout_status: object, says: str
) -> None:
    objects.deployment(status={"rollout": rollout_status})
    for args in (("status",), ("status", "--watch", "--timeout", "5"), ("approve",), ("undo",)):
        result = ctl("rollout", *args, "web")
        assert result.code == 1, (args, result.err)
        assert result.err.startswith("fleetctl: deployment default/web: cannot read its rollout")
        assert says in result.err
        assert "Traceback" not in result.err
        assert len(result.err) < 400
