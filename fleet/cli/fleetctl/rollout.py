"""``fleetctl rollout status|pause|resume|approve|undo|history``, as ``kubectl rollout``.

Why it exists: a person steers a Deployment's progressive rollout (docs/rollouts.md)
from a terminal. Every change is one write to the Deployment the operator reads: the
pause annotation, the approval annotation (``<revision>/<batch>``), or ``spec.score``
set back to a kept revision's score (the operator rolls that out as a new revision).
Revisions are read through :class:`~fleet.runtime.kube.revisions.RevisionStore`.

What it must never do: write ``status`` or a ``DeploymentRevision`` (the operator owns
both), or leave a key of today's score in the score ``undo`` restores.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

import msgspec
import yaml

from fleet.contracts import (
    ANNOTATION_ROLLOUT_APPROVED,
    ANNOTATION_ROLLOUT_PAUSED,
)
from fleet.contracts.score_template import encode_template_score
from fleet.errors import ContractError
from fleet.runtime.kube.client import DEPLOYMENTS, KubeClient, KubeConflict
from fleet.runtime.kube.revisions import Listed, RevisionRecord, RevisionStore

from . import render
from .connect import kube_errors
from .manifests import merge_patch
from .rollout_view import (
    FAILED,
    RolloutStatusError,
    Seen,
    deployment_rollout,
    history_rows,
    status_json,
    status_lines,
)

EXIT_FAILED, EXIT_USAGE = 1, 2  # as fleetctl's main
POLL_S: Final = 1.0
CAS_ATTEMPTS: Final = 5
ACTIONS: Final = {
    "status": "the rollout's revision, phase and batches (--watch: until it ends)",
    "pause": "stop admitting devices and starting batches",
    "resume": "go on after a pause",
    "approve": "let the next batch start (a rollout waiting for approval; --force: any)",
    "undo": "set spec.score back to an earlier revision's (rolled out as a new revision)",
    "history": "the kept revisions: outcome, created, containers",
}


class Refused(Exception):
    """The command cannot do what was asked (the message says why); exit ``code``."""

    def __init__(self, message: str, *, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rollout", parents=[common], help="a Deployment's rollout: "
                       "status, pause, resume, approve, undo, history")  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in ACTIONS.items():
        a = actions.add_parser(name, parents=[common], help=text)
        a.add_argument("deployment", metavar="DEPLOYMENT")
        a.add_argument("-n", "--namespace", default="default", help="(default: default)")
    a = actions.choices["status"]
    a.add_argument("-w", "--watch", action="store_true", help="until it ends")
    a.add_argument("--timeout", type=float, default=0.0, metavar="SECONDS",
                   help="how long --watch waits (default: 0, until the rollout ends)")  # fmt: skip
    actions.choices["approve"].add_argument(
        "--force", action="store_true",
        help="start the next batch even if the current one is not done",
    )  # fmt: skip
    actions.choices["undo"].add_argument(
        "--to-revision", type=int, metavar="N", help="(default: the revision before the current)"
    )
    actions.choices["history"].add_argument(
        "--revision", type=int, metavar="N", help="print that revision's score"
    )


def run(kube: KubeClient, a: argparse.Namespace, out: TextIO) -> int:
    """One ``rollout`` action; a refusal or an unreadable status is one line on stderr."""
    command = Command(kube, a, out)
    try:
        with kube_errors(kube):
            code: int = getattr(command, a.action)()
            return code
    except Refused as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return exc.code
    except RolloutStatusError as exc:
        print(
            f"fleetctl: deployment {a.namespace}/{a.deployment}: cannot read its rollout: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILED


class Command:
    """One action on one Deployment: each method is an ``ACTION``, returning the exit code."""

    def __init__(self, kube: KubeClient, a: argparse.Namespace, out: TextIO) -> None:
        self.kube, self.a, self.out = kube, a, out
        self.ns, self.name = a.namespace, a.deployment
        self.where = f"deployment {self.ns}/{self.name}"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def get(self) -> dict[str, Any]:
        return self.kube.get(DEPLOYMENTS, namespace=self.ns, name=self.name)

    def seen(self) -> Seen:
        return deployment_rollout(self.get())

    def annotate(self, key: str, value: str | None) -> None:
        self.get()  # KubeNotFound: fleetctl's "not found" (a patch must not be the first word)
        body = {"metadata": {"annotations": {key: value}}}
        self.kube.patch(DEPLOYMENTS, namespace=self.ns, name=self.name, body=body)

    # -- actions ----------------------------------------------------------------------

    def pause(self) -> int:
        self.annotate(ANNOTATION_ROLLOUT_PAUSED, "true")
        self.say(f"{self.where} paused")
        return 0

    def resume(self) -> int:
        self.annotate(ANNOTATION_ROLLOUT_PAUSED, None)
        self.say(f"{self.where} resumed")
        return 0

    def approve(self) -> int:
        seen = self.seen()
        r = seen.rollout
        if r is None:
            raise Refused(f"{self.where} has no rollout yet (waiting for the operator)")
        at = f"revision {r.revision}, batch {r.current_batch}/{r.batch_count}"
        if r.ended:
            raise Refused(f"{self.where}: the rollout of revision {r.revision} is {r.phase}: "
                          "nothing to approve")  # fmt: skip
        if r.current_batch >= r.batch_count:
            raise Refused(f"{self.where}: {at} is the last batch: nothing to approve")
        if not self.a.force and r.phase != "WaitingForApproval":
            raise Refused(
                f"{self.where}: the rollout is {r.phase} ({at}), not WaitingForApproval; "
                f"--force starts batch {r.current_batch + 1} anyway"
            )
        if not self.a.force and not seen.current:
            raise Refused(
                f"{self.where}: the operator has not seen generation {seen.generation} yet; "
                "try again, or --force"
            )
        batch = r.current_batch + 1
        self.annotate(ANNOTATION_ROLLOUT_APPROVED, f"{r.revision}/{batch}")
        self.say(f"{self.where}: batch {batch}/{r.batch_count} of revision {r.revision} approved")
        return 0

    def status(self) -> int:
        if self.a.watch:
            return self.watch()
        seen = self.seen()
        self.say(render.as_json(status_json(seen)) if self.a.output == "json"
                 else "\n".join(status_lines(seen)))  # fmt: skip
        return _exit_code(seen)

    def watch(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Show the rollout until it ends; a terminal gets bars redrawn in place."""
        deadline = clock() + self.a.timeout if self.a.timeout > 0 else None
        quiet = self.a.output == "json"
        bars = not quiet and self.out.isatty()
        shown: list[str] = []
        while True:
            seen = self.seen()
            lines = status_lines(seen, bars=bars)
            if lines != shown and not quiet:
                if bars:  # back to the first line drawn, erase to the end, draw again
                    self.out.write(f"\x1b[{len(shown)}F\x1b[J" if shown else "")
                    self.say("\n".join(lines))
                else:
                    new = [line for line in lines if line not in shown]
                    self.say("\n".join(new))
                shown = lines
            if seen.done:
                break
            left = None if deadline is None else deadline - clock()
            if left is not None and left <= 0:
                print(f"fleetctl: {self.where}: the rollout did not end within "
                      f"{self.a.timeout:g} s: {shown[0] if shown else ''}",
                      file=sys.stderr)  # fmt: skip
                return EXIT_FAILED
            sleep(POLL_S if left is None else min(POLL_S, left))
        if quiet:
            self.say(render.as_json(status_json(seen)))
        return _exit_code(seen)

    def history(self) -> int:
        try:
            rollout = self.seen().rollout
        except RolloutStatusError as exc:
            _warn(f"{self.where}: its .status.rollout is not readable, ignored: {exc}")
            rollout = None
        listed = self.revisions()
        if self.a.revision is not None:
            record = self.kept(listed, self.a.revision)
            score = msgspec.json.decode(record.desired)
            self.say(render.as_json(score) if self.a.output == "json"
                     else yaml.safe_dump(score, sort_keys=False).rstrip())  # fmt: skip
            return 0
        rows = history_rows(
            listed.records,
            current=rollout.revision if rollout else None,
            phase=rollout.phase if rollout else None,
        )
        if self.a.output == "json":
            self.say(render.as_json(rows))
        elif not rows:
            self.say(f"No revisions kept for {self.where}.")
        else:
            cells = ((r["revision"], r["outcome"], r["created"], r["score"]) for r in rows)
            self.say(render.table(("REVISION", "OUTCOME", "CREATED", "SCORE"), cells))
        return 0

    def undo(self) -> int:
        to = self.a.to_revision
        if to is not None and to < 1:
            raise Refused(f"--to-revision must be a revision number (1 or more), got {to}")
        listed = self.revisions()
        for _attempt in range(CAS_ATTEMPTS):
            obj = self.get()
            record = self.kept(listed, to if to is not None else self.previous(obj, listed))
            target = msgspec.json.decode(record.desired)
            spec = obj.get("spec")
            score = spec.get("score") if isinstance(spec, Mapping) else None
            if _normal(score) == target:
                self.say(f"{self.where}: already at revision {record.number}'s score")
                return 0
            # a merge patch merges objects: the keys only today's score has are nulled
            patch = merge_patch(score if isinstance(score, Mapping) else {}, target)
            body: dict[str, Any] = {"spec": {"score": patch}}
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                body["metadata"] = {"resourceVersion": version}  # no one else's score lost
            try:
                self.kube.patch(DEPLOYMENTS, namespace=self.ns, name=self.name, body=body)
            except KubeConflict:
                continue
            self.say(f"{self.where} rolled back to revision {record.number}'s score "
                     "(the operator rolls it out as a new revision)")  # fmt: skip
            return 0
        raise Refused(f"{self.where} kept changing: {CAS_ATTEMPTS} conflicts", code=EXIT_FAILED)

    # -- revisions --------------------------------------------------------------------

    def revisions(self) -> Listed:
        """The revisions of this very Deployment (not a deleted namesake's leftovers)."""
        uid = (self.get().get("metadata") or {}).get("uid")
        listed = RevisionStore(self.kube).list(
            namespace=self.ns, deployment=self.name, uid=uid if isinstance(uid, str) else None
        )
        for problem in listed.problems:
            _warn(f"{self.where}: a revision is left out: {problem}")
        return listed

    def kept(self, listed: Listed, number: int) -> RevisionRecord:
        if number < 1:
            raise Refused(f"a revision number is 1 or more, got {number}")
        for record in listed.records:
            if record.number == number:
                return record
        raise Refused(f"{self.where}: revision {number} is not kept; kept: {_numbers(listed)}")

    def previous(self, obj: Mapping[str, Any], listed: Listed) -> int:
        """The highest kept revision below the current one (the status's, else the newest)."""
        rollout = deployment_rollout(obj).rollout
        numbers = [r.number for r in listed.records]
        current = rollout.revision if rollout else max(numbers, default=None)
        if current is None:
            raise Refused(f"{self.where}: no revision is kept: nothing to undo")
        before = [n for n in numbers if n < current]
        if not before:
            raise Refused(f"{self.where}: no revision before revision {current} is kept; "
                          f"kept: {_numbers(listed)}")  # fmt: skip
        return max(before)


def _exit_code(seen: Seen) -> int:
    """1 for a rollout of the latest spec that failed (Halted, RolledBack); else 0."""
    failed = seen.current and seen.rollout is not None and seen.rollout.phase in FAILED
    return EXIT_FAILED if failed else 0


def _normal(score: object) -> object:
    """``score`` as the revisions hold it (validated, defaults left out, per-device
    templates as written); None if invalid."""
    try:
        return msgspec.json.decode(encode_template_score(score)[0])
    except ContractError:
        return None


def _numbers(listed: Listed) -> str:
    return ", ".join(str(r.number) for r in listed.records) or "none"


def _warn(text: str) -> None:
    print(f"fleetctl: warning: {text}", file=sys.stderr)
