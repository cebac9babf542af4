"""``loadtest/run --scenario rollout``: a progressive rollout over the swarm, and its verdict.

Why it exists: issue 13's swarm criterion. With nats-server, the API emulator,
``fleet-operator`` and the swarm up (as :mod:`loadtest.run` starts them), it:

1. taps every desired-state write (:mod:`loadtest.tap`), waits for every device;
2. applies the Deployment ``rollout`` (:mod:`loadtest.rollout_plan`: batches 1% / 10% /
   the rest, ``failureThreshold`` 5%, ``autoRollback``) at revision 1 and waits until
   it completed and every device runs it;
3. powers ``--offline-rate`` of the devices off (:mod:`loadtest.control`) and waits
   until the operator counts them unreachable;
4. changes the score (revision 2; with ``--bad-image`` ``--bad-image-rate`` of the
   devices fail its image) and times the rollout until it ended (RolledBack or
   Complete) and the fleet converged on what it ended with;
5. powers the offline devices on again and waits until they caught up;
6. judges (:mod:`loadtest.rollout_check`), checks the aggregates as the default scenario
   does (:func:`loadtest.check.check_until`), prints both and the figures, and returns
   the exit code (0 only on PASS).

What it must never do: wait without a deadline, or talk to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from fleet.cli.fleetctl.snapshots import decoded
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    CRD_GROUP,
    CRD_VERSION,
    PLURAL_DEPLOYMENT_REVISIONS,
    PLURAL_DEPLOYMENTS,
    decode_heartbeat_entry,
    decode_info_entry,
    decode_report_entry,
    parse_desired_state_key,
)
from fleet.devtools.simrollout import told_to_fail
from fleet.errors import ContractError, FleetError
from loadtest import control
from loadtest.check import check_until
from loadtest.plan import Plane
from loadtest.rollout_check import DeviceReport, Observed, judge
from loadtest.rollout_figures import RolloutFigures
from loadtest.rollout_plan import (
    DEPLOYMENT,
    IMAGE_V1,
    IMAGE_V2,
    Prediction,
    batches,
    image_in,
    manifest,
    predict,
    score,
)
from loadtest.services import Process, usage_of
from loadtest.tap import DesiredTap

OUTCOME_PHASES = ("Halted", "RolledBack", "Complete")
STUCK_WAIT_S = 60.0  # a rollout predicted stuck is given this long to prove otherwise


class Aborted(Exception):
    """A step did not happen in time, or a process of the run died: the run FAILs."""


class Fleet(NamedTuple):
    """The buckets as the checker reads them, for the scenario's one Deployment."""

    desired: dict[str, tuple[int, bytes]]  # device -> (entry revision, value)
    reports: dict[str, DeviceReport]
    beats: dict[str, float]

    def converged(self, image: str, targets: Collection[str], running: Collection[str]) -> bool:
        """Every target holds ``image``; every one of ``running`` runs its entry."""
        for device in targets:
            entry = self.desired.get(device)
            if entry is None or image_in(entry[1]) != image:
                return False
        return all(self.runs_entry(d) for d in running)

    def runs_entry(self, device: str, *, since: float = 0.0) -> bool:
        entry, report = self.desired.get(device), self.reports.get(device)
        return (
            entry is not None
            and report is not None
            and report.phase == "Running"
            and report.desired_revision == entry[0]
            and report.updated_at >= since
            and self.beats.get(device, 0.0) >= since
        )


class Scenario:
    """One rollout run over a started system."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        plane: Plane,
        kube_url: str,
        namespace: str,
        swarm: str,
        locust: Process,
        operator: Process,
        started: float,
    ) -> None:
        self.args, self.plane, self.kube_url, self.namespace = args, plane, kube_url, namespace
        self.swarm, self.locust, self.operator = swarm, locust, operator
        self.deadline = started + args.duration
        self.started = started
        self.tap = DesiredTap(plane.bus, plane.loop)
        self.poll = 0.25 + args.devices / 20000
        self.figures = RolloutFigures(
            devices=args.devices,
            offline=round(args.offline_rate * args.devices),
            bad_image=args.bad_image,
            heartbeat_interval_s=args.heartbeat_interval,
            liveness_timeout_s=args.liveness_timeout,
            load_average=[os.getloadavg()[0]],
        )
        self.targets: list[str] = []
        self.offline: frozenset[str] = frozenset()
        self.prediction: Prediction | None = None
        self.stored = 0  # desired-state writes the stream stored while tapped
        self.patched: float | None = None  # when revision 2 was made (monotonic)
        self.back_at = 0.0
        from kubernetes import client

        config = client.Configuration()
        config.host = kube_url
        self._api = client.ApiClient(config)
        self._custom = client.CustomObjectsApi(self._api)

    # -- the steps -------------------------------------------------------------------------

    def run(self, workdir: Path) -> int:
        before = self._last_sequence()  # no desired-state write yet: nothing missed
        self.tap.start()
        problems: list[str] = []
        try:
            try:
                self._steps()
            except Aborted as exc:
                problems.append(str(exc))
            finally:
                self.stored = self._last_sequence() - before
                self.plane.loop.run(self.plane.bus.transport.flush(timeout=10), timeout=30)
                self.tap.stop()
            return self._verdict(problems, workdir)
        finally:
            self._api.close()  # type: ignore[no-untyped-call]  # kubernetes leaves it bare

    def _steps(self) -> None:
        args, figures = self.args, self.figures
        self.targets = self._registered()
        figures.registered = len(self.targets)
        figures.spawn_s = time.monotonic() - self.started
        members = batches(self.targets)
        self.offline = frozenset(control.offline_devices(self.targets, args.offline_rate))
        failing = {
            d for d in self.targets if told_to_fail(d, IMAGE_V2, args.bad_image_rate)
        } if args.bad_image else set()  # fmt: skip
        prediction = self.prediction = predict(members, failing=failing, offline=self.offline)
        figures.prediction = prediction.render()
        print(f"loadtest: rollout: predicted {figures.prediction}", flush=True)
        online = [d for d in self.targets if d not in self.offline]

        applied = time.monotonic()
        self._custom.create_namespaced_custom_object(
            CRD_GROUP, CRD_VERSION, self.namespace, PLURAL_DEPLOYMENTS, manifest(swarm=self.swarm)
        )
        self._wait(
            "revision 1 complete, every device running it",
            lambda: (
                self._phase(1) == "Complete"
                and self._fleet().converged(IMAGE_V1, self.targets, self.targets)
            ),
        )
        figures.revision1_s = time.monotonic() - applied

        off = time.monotonic()
        self._command("offline", self.offline)
        self._wait(
            f"the operator counts the {len(self.offline)} offline devices unreachable",
            lambda: self._aggregate_is(running=len(online), unreachable=len(self.offline)),
            limit=args.liveness_timeout * 3 + 30,
        )
        figures.offline_s = time.monotonic() - off

        patched = self.patched = time.monotonic()
        self._custom.patch_namespaced_custom_object(
            CRD_GROUP, CRD_VERSION, self.namespace, PLURAL_DEPLOYMENTS, DEPLOYMENT,
            {"spec": {"score": score(IMAGE_V2)}},
        )  # fmt: skip
        self._wait(
            "revision 2's rollout ended and the fleet converged on its outcome",
            lambda: self._ended(patched, online),
            limit=STUCK_WAIT_S if prediction.outcome == "Stuck" else None,
        )

        back = time.monotonic()
        self.back_at = time.time()
        self._command("online", self.offline)
        self._wait(
            f"the {len(self.offline)} offline devices back and running their entries",
            self._caught_up,
        )
        figures.caught_up_s = time.monotonic() - back

    def _ended(self, patched: float, online: list[str]) -> bool:
        phase, figures = self._phase(2), self.figures
        if phase in ("Halted", "RolledBack") and figures.halt_s is None:
            figures.halt_s = time.monotonic() - patched
        if phase not in OUTCOME_PHASES or self._journaled() != phase:
            return False
        if phase == "Halted":
            return True
        image = IMAGE_V1 if phase == "RolledBack" else IMAGE_V2
        if not self._fleet().converged(image, self.targets, online):
            return False
        took = time.monotonic() - patched
        if phase == "RolledBack":
            figures.rolled_back_s = took
        else:
            figures.complete_s = took
        return True

    def _caught_up(self) -> bool:
        fleet = self._fleet()
        if not all(fleet.runs_entry(d, since=self.back_at) for d in self.offline):
            return False
        return self._aggregate_is(running=len(self.targets), unreachable=0)

    def _time_writes(self, patched: float) -> None:
        given: set[str] = set()
        batch_of = {d: i for i, batch in enumerate(batches(self.targets)) for d in batch}
        started: dict[int, float] = {}
        for write in self.tap.writes(DEPLOYMENT):
            if write.at < patched:
                continue
            image = image_in(write.value)
            if image == IMAGE_V2:
                given.add(write.device)
                self.figures.revision2_writes += 1
                started.setdefault(batch_of.get(write.device, -1), write.at - patched)
                if self.figures.first_write_s is None:
                    self.figures.first_write_s = write.at - patched
            elif write.device in given:
                self.figures.rollback_writes += 1
                if self.figures.rollback_write_s is None:
                    self.figures.rollback_write_s = write.at - patched
        self.figures.batch_started_s = [round(started[i], 2) for i in sorted(started) if i >= 0]

    # -- the verdict -----------------------------------------------------------------------

    def _verdict(self, problems: list[str], workdir: Path) -> int:
        figures = self.figures
        if self.patched is not None:
            self._time_writes(self.patched)
        obj = self._deployment()
        status = (obj.get("status") or {}).get("rollout") or {}
        fleet = self._fleet()
        verdict = None
        if self.prediction is not None:
            verdict = judge(
                Observed(
                    members=batches(self.targets),
                    prediction=self.prediction,
                    offline=self.offline,
                    writes=self.tap.writes(),
                    stored=self.stored,
                    rollout=status,
                    outcome=self._journaled(),
                    desired=fleet.desired,
                    reports=fleet.reports,
                    beats=fleet.beats,
                    back_at=self.back_at,
                )
            )
            problems += verdict.lines
        aggregates = check_until(
            loop=self.plane.loop,
            bus=self.plane.bus,
            kube_url=self.kube_url,
            namespace=self.namespace,
            liveness_timeout=self.args.liveness_timeout,
            settle=self.args.settle,
        )
        problems += [f"aggregate: {line}" for line in aggregates.lines]
        if not aggregates.ok and not aggregates.lines:
            problems.append("aggregate: undecided")
        ok = not problems
        op = usage_of(self.operator.pid) if self.operator.alive() else None
        if op is not None:
            figures.operator_cpu_s, figures.operator_peak_rss_mb = op.cpu_s, op.peak_rss_mb
        figures.load_average.append(os.getloadavg()[0])
        figures.verdict = "PASS" if ok else "FAIL"
        print("PASS" if ok else "FAIL")
        for line in verdict.facts if verdict else []:
            print(f"  {line}")
        for name, counts in sorted(aggregates.counts.items()):
            print(f"  aggregate {name}: {counts}")
        if status.get("reason"):
            print(f"  .status.rollout.reason: {status['reason']}")
        for line in problems:
            print(f"  - {line}")
        print(figures.render(), flush=True)
        figures.write(workdir / "figures.json")
        return 0 if ok else 1

    # -- reading and writing ---------------------------------------------------------------

    def _wait(self, what: str, done: Callable[[], bool], *, limit: float | None = None) -> None:
        """Poll ``done`` until true; :class:`Aborted` at the run's deadline (or ``limit``)."""
        end = self.deadline if limit is None else min(self.deadline, time.monotonic() + limit)
        while True:
            for proc in (self.locust, self.operator):
                if not proc.alive():
                    raise Aborted(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
            try:
                if done():
                    return
            except FleetError as exc:  # a busy server: this poll is skipped
                print(f"loadtest: reading failed ({exc!r}); retrying", flush=True)
            if time.monotonic() >= end:
                raise Aborted(f"timed out waiting for {what}")
            time.sleep(self.poll)

    def _last_sequence(self) -> int:
        """The desired-state stream's last sequence: every write moves it by one."""
        counts = self.plane.bus.kv.counts(BUCKET_DESIRED_STATE)
        return self.plane.loop.run(counts, timeout=60)[1]

    def _registered(self) -> list[str]:
        wanted = int(self.args.devices)

        def ids() -> list[str]:
            infos = self.plane.loop.run(self.plane.bus.snapshot(BUCKET_DEVICE_INFO), timeout=60)
            return sorted(str(e.device) for e in decoded(infos, decode_info_entry) if e.info)

        seen: list[str] = []

        def enough() -> bool:
            seen[:] = ids()
            return len(seen) >= wanted

        self._wait(f"{wanted} devices registered", enough)
        return seen

    def _command(self, action: Literal["offline", "online"], devices: Collection[str]) -> None:
        message = control.encode(control.Command(action=action, devices=tuple(sorted(devices))))
        subject = control.control_subject(self.swarm)

        async def send() -> None:
            await self.plane.bus.transport.publish(subject, message)
            await self.plane.bus.transport.flush(timeout=10)

        self.plane.loop.run(send(), timeout=30)

    def _fleet(self) -> Fleet:
        async def read() -> Fleet:
            bus = self.plane.bus
            desired = await bus.snapshot(BUCKET_DESIRED_STATE, timeout=120)
            states = await bus.snapshot(BUCKET_DEVICE_STATE, timeout=120)
            beats = await bus.snapshot(BUCKET_DEVICE_HEARTBEAT, timeout=120)
            return Fleet(
                desired=_entries(desired),
                reports={
                    str(e.device): DeviceReport(
                        phase=e.state.phase.value,
                        desired_revision=e.state.desired_revision,
                        updated_at=e.state.updated_at.timestamp(),
                    )
                    for e in decoded(states, decode_report_entry)
                    if e.state is not None and str(e.deployment) == DEPLOYMENT
                },
                beats={
                    str(e.device): e.beat.at.timestamp()
                    for e in decoded(beats, decode_heartbeat_entry)
                    if e.beat is not None
                },
            )

        return self.plane.loop.run(read(), timeout=400)

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        from kubernetes.client import ApiException

        try:
            obj = self._custom.get_namespaced_custom_object(
                CRD_GROUP, CRD_VERSION, self.namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return cast("dict[str, Any]", obj)

    def _deployment(self) -> dict[str, Any]:
        return self._get(PLURAL_DEPLOYMENTS, DEPLOYMENT)

    def _phase(self, revision: int) -> str | None:
        rollout = (self._deployment().get("status") or {}).get("rollout") or {}
        phase = rollout.get("phase")
        return phase if rollout.get("revision") == revision and isinstance(phase, str) else None

    def _journaled(self) -> str | None:
        revision = self._get(PLURAL_DEPLOYMENT_REVISIONS, f"{DEPLOYMENT}-r2")
        outcome = (revision.get("status") or {}).get("outcome")
        return outcome if isinstance(outcome, str) else None

    def _aggregate_is(self, *, running: int, unreachable: int) -> bool:
        agg = (self._deployment().get("status") or {}).get("aggregate") or {}
        return bool(agg.get("running") == running and agg.get("unreachable") == unreachable)


def _entries(snapshot: Any) -> dict[str, tuple[int, bytes]]:
    out = {}
    for entry in snapshot.values():
        if entry.deleted:
            continue
        try:
            device, deployment = parse_desired_state_key(entry.key)
        except ContractError:
            continue
        if str(deployment) == DEPLOYMENT:
            out[str(device)] = (entry.revision, bytes(entry.value))
    return out
