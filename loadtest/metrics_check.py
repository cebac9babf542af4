"""Check the operator's ``/metrics`` against the checker's own counts, after a load run.

Why it exists: a graph that lies is worse than none. Once the checker has judged every
Deployment's ``.status.aggregate`` right (from the buckets), the operator's exposition,
parsed with the Prometheus client library's own parser, must say the same: each
Deployment's targeted devices and its running, pending, failed and unreachable counts,
the devices online and unreachable fleet-wide (from the heartbeats the checker read),
and how many devices send their agent counters in their heartbeats (every simulated one).

Figures move while the swarm lives (a device's heartbeat crosses the liveness timeout),
so :func:`metrics_problems` scrapes again until every figure agrees or its time is up;
devices within ``margin`` seconds of the timeout make the fleet-wide counts undecided,
and then only the per-Deployment figures are compared.

What it must never do: talk to anything but 127.0.0.1, or wait without a bound.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus

from .check import judge, list_deployments, read_view
from .expected import FleetView

SERVING = re.compile(r"serving /metrics, /healthz and /readyz on (http://127\.0\.0\.1:\d+)")
CLASSES = ("running", "pending", "failed", "unreachable")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_url(operator_log: Path) -> str | None:
    """The operator's HTTP port, from the line it logs once it listens."""
    try:
        found = SERVING.search(operator_log.read_text(errors="replace"))
    except OSError:
        return None
    return None if found is None else found.group(1)


def scrape(base: str, *, timeout: float = 10.0) -> Samples:
    """Every sample of ``base``/metrics, by (name, sorted labels)."""
    if not base.startswith("http://127.0.0.1:"):
        raise ValueError(f"{base}: the load run scrapes 127.0.0.1 only")
    with urllib.request.urlopen(f"{base}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def fleet_liveness(
    view: FleetView, *, now: float, liveness_timeout: float, margin: float
) -> tuple[int, int] | None:
    """(online, unreachable) among the devices that announced themselves; None when one
    is within ``margin`` seconds of the liveness timeout (either answer would be fair)."""
    online = unreachable = 0
    for device in view.labels:
        at = view.beats.get(device)
        if at is not None and abs((now - at) - liveness_timeout) < margin:
            return None
        if at is not None and now - at <= liveness_timeout:
            online += 1
        else:
            unreachable += 1
    return online, unreachable


def differences(
    samples: Samples,
    *,
    namespace: str,
    expected: Mapping[str, Mapping[str, int]],
    liveness: tuple[int, int] | None,
    beating: int | None = None,
) -> list[str]:
    """What ``samples`` says differently from the checker's counts (empty: all agree).
    ``beating``: devices with a heartbeat key, each of which sends its agent counters."""
    out = []

    def value(metric: str, /, **labels: str) -> float | None:
        return samples.get((f"fleet_operator_{metric}", tuple(sorted(labels.items()))))

    for deployment, counts in sorted(expected.items()):
        keys = {"deployment_namespace": namespace, "deployment": deployment}
        shown = value("deployment_targeted_devices", **keys)
        if shown != counts["targeted"]:
            out.append(f"{deployment}: /metrics targeted {shown}, expected {counts['targeted']}")
        for cls in CLASSES:
            shown = value("deployment_devices", **keys, **{"class": cls})
            if shown != counts[cls]:
                out.append(f"{deployment}: /metrics {cls} {shown}, expected {counts[cls]}")
    if beating is not None and value("agents_reporting") != beating:
        out.append(f"/metrics agents_reporting {value('agents_reporting')}, expected {beating}")
    if liveness is not None:
        for name, want in zip(("devices_online", "devices_unreachable"), liveness, strict=True):
            shown = value(name)
            if shown != want:
                out.append(f"/metrics {name} {shown}, expected {want}")
    return out


def metrics_problems(
    *,
    base: str | None,
    loop: EventLoopThread,
    bus: Bus,
    kube_url: str,
    namespace: str,
    liveness_timeout: float,
    margin: float = 2.0,
    within: float = 30.0,
) -> tuple[list[str], int]:
    """Scrape until /metrics agrees with what the checker makes of the buckets and the
    Deployments at that moment, or ``within`` seconds passed; (the differences left, the
    samples of the last scrape)."""
    if base is None:
        return ["the operator never said where /metrics is served (see its log)"], 0
    deadline = time.monotonic() + within
    while True:
        try:
            samples = scrape(base)
        except OSError as exc:
            problems, samples = [f"could not scrape {base}/metrics: {exc}"], {}
        else:
            view = loop.run(read_view(bus), timeout=600)
            now = time.time()
            verdict = judge(
                deployments=list_deployments(kube_url, namespace), view=view, now=now,
                liveness_timeout=liveness_timeout, margin=margin,
            )  # fmt: skip
            liveness = fleet_liveness(
                view, now=now, liveness_timeout=liveness_timeout, margin=margin
            )
            problems = differences(
                samples, namespace=namespace, expected=verdict.counts, liveness=liveness,
                beating=len(view.beats),
            )  # fmt: skip
        if not problems or time.monotonic() >= deadline:
            return problems, len(samples)
        time.sleep(0.5)
