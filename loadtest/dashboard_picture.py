"""A picture of deploy/grafana/fleet-operator.json, drawn from a real run.

Why it exists: people would rather look than read, and a dashboard's picture in the docs
must show what the dashboard shows on a real fleet, not a mock-up. No Grafana can be
installed here, so this draws the dashboard itself: it runs a real load run
(``loadtest/run``: fleet-operator, nats-server, the API emulator, a locust swarm), has a
real Prometheus (Debian's ``prometheus``) scrape the operator's ``/metrics`` every
second, asks Prometheus every panel's own query (the dashboard's PromQL, ``$job`` as
``.*``, ``$__rate_interval`` as 10 s), lays the panels out on the dashboard's grid as an
HTML page with SVG charts, and has headless Chromium (Debian's ``chromium``) screenshot it.

    python -m loadtest.dashboard_picture --out docs/img/dashboard.png

What it must never do: talk to anything but 127.0.0.1, or wait without a bound.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.metrics_check import metrics_url

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "fleet-operator.json"
ROW_PX, COLUMNS, WIDTH = 30, 24, 1600
RATE = "10s"  # what Grafana's $__rate_interval comes to with a 1 s scrape and a 2 s step
COLOURS = ("#73bf69", "#f2cc0c", "#f2495c", "#8ab8ff", "#ff9830", "#b877d9", "#5794f2", "#fade2a")

Series = list[tuple[str, list[tuple[float, float]]]]  # (legend, [(time, value)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Any, *, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"dashboard-picture: {what} not within {timeout:.0f}s")


# -- Prometheus ---------------------------------------------------------------------------


@contextlib.contextmanager
def prometheus(workdir: Path, target: str) -> Iterator[str]:
    """A real Prometheus scraping ``target`` (host:port) every second; yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("dashboard-picture: no `prometheus` (apt-get install prometheus)")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: fleet-operator\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    with (workdir / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("prometheus", lambda: _get(f"{url}/-/ready") is not None, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read()
    except OSError:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def query(prom: str, expr: str, *, start: float, end: float, step: float) -> Series:
    """``expr`` over [start, end] (a range query): each series with its legend labels."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    answer = _get(f"{prom}/api/v1/query_range?{params}")
    if not isinstance(answer, dict) or answer.get("status") != "success":
        return []
    return [
        (json.dumps(r["metric"], sort_keys=True), [(float(t), float(v)) for t, v in r["values"]])
        for r in answer["data"]["result"]
    ]


def legend(template: str, labels_json: str) -> str:
    labels: dict[str, str] = json.loads(labels_json)
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out if "{{" not in out else labels_json


def panel_data(
    prom: str, dashboard: Mapping[str, Any], *, start: float, end: float, step: float
) -> dict[int, Series]:
    """Every panel's series, its queries as the dashboard has them (``$job``: any)."""
    out: dict[int, Series] = {}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        series: Series = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$job", ".*").replace("$__rate_interval", RATE)
            found = query(prom, expr, start=start, end=end, step=step)
            if panel["type"] == "table":  # a table shows what is true at the end only
                last = max((pts[-1][0] for _labels, pts in found if pts), default=end)
                found = [
                    (labels, pts) for labels, pts in found if pts and pts[-1][0] >= last - step
                ]
            for labels, raw in found:
                points = [(t, v) for t, v in raw if math.isfinite(v)]  # a quantile of nothing
                if points:
                    series.append((legend(target.get("legendFormat", ""), labels), points))
        out[panel["id"]] = series
    return out


# -- drawing ------------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB"):
            if abs(value) < 1024 or suffix == "GiB":
                return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
            value /= 1024
    if unit == "percentunit":
        return f"{100 * value:.0f}%"
    suffix = {"s": " s", "ops": "/s"}.get(unit, "")
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k{suffix}"
    return f"{value:.2f}{suffix}" if value and abs(value) < 10 else f"{value:.0f}{suffix}"


def svg_chart(
    series: Series, *, width: int, height: int, unit: str,
    window: tuple[float, float] | None = None, gap: float = float("inf"),
) -> str:  # fmt: skip
    """A time-series chart: one line per series (broken where samples are more than
    ``gap`` apart), over ``window`` (default: the samples'), y from 0 to the largest value."""
    points = [p for _legend, pts in series for p in pts]
    if not points:
        return '<div class="empty">no data</div>'
    t0, t1 = window or (min(t for t, _ in points), max(t for t, _ in points))
    top = max([v for _, v in points] + [1e-9])
    left, bottom = 56, 18
    w, h = width - left - 8, height - bottom - 6

    def xy(t: float, v: float) -> str:
        x = left + (0 if t1 == t0 else (t - t0) / (t1 - t0) * w)
        return f"{x:.1f},{6 + h - v / top * h:.1f}"

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for frac in (0.0, 0.5, 1.0):
        y = 6 + h - frac * h
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                     f"{html.escape(_number(top * frac, unit))}</text>")  # fmt: skip
    minutes = (t1 - t0) / 60
    parts.append(f'<text x="{left + w}" y="{height - 3}" class="axis" text-anchor="end">'
                 f"{minutes:.1f} min</text>")  # fmt: skip
    for i, (_legend, pts) in enumerate(series):
        runs: list[list[tuple[float, float]]] = []
        for t, v in pts:
            if not runs or t - runs[-1][-1][0] > gap:
                runs.append([])
            runs[-1].append((t, v))
        for run in runs:
            line = " ".join(xy(t, v) for t, v in run)
            parts.append(f'<polyline points="{line}" stroke="{COLOURS[i % len(COLOURS)]}"/>')
    parts.append("</svg>")
    return "".join(parts)


def table(series: Series, *, unit: str) -> str:
    rows = sorted((name, pts[-1][1]) for name, pts in series if pts)
    if not rows:
        return '<div class="empty">no data</div>'
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(_number(v, unit))}</td></tr>"
        for name, v in rows
    )
    return f"<table>{body}</table>"


def page(
    dashboard: Mapping[str, Any], data: Mapping[int, Series], *, caption: str,
    window: tuple[float, float] | None = None, step: float = 2.0,
) -> str:  # fmt: skip
    """The dashboard as one HTML page: its rows and panels on its 24-column grid, every
    chart over the same ``window``."""
    cell = WIDTH / COLUMNS
    boxes = []
    bottom = 0
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        x, y, w, h = g["x"] * cell, g["y"] * ROW_PX, g["w"] * cell - 8, g["h"] * ROW_PX - 8
        bottom = max(bottom, y + h)
        style = f"left:{x:.0f}px;top:{y:.0f}px;width:{w:.0f}px;height:{h:.0f}px"
        title = html.escape(panel["title"])
        if panel["type"] == "row":
            boxes.append(f'<div class="row" style="{style}">{title}</div>')
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        series = list(data.get(panel["id"], []))
        if panel["type"] == "table":
            inner = table(series, unit=unit)
        else:
            inner = svg_chart(
                series, width=int(w) - 16, height=int(h) - 62, unit=unit, window=window,
                gap=3 * step,
            )  # fmt: skip
            keys = "".join(
                f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>'
                f"{html.escape(name)}</span>"
                for i, (name, _pts) in enumerate(series[:8])
            )
            inner += f'<div class="legend">{keys}</div>'
        boxes.append(f'<div class="panel" style="{style}"><h3>{title}</h3>{inner}</div>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body{{margin:0;background:#111217;color:#ccccdc;font:13px sans-serif}}
header{{padding:10px 16px;font-size:16px}} header small{{color:#8e8e8e;margin-left:12px}}
main{{position:relative;margin:0 8px;height:{bottom + 10}px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;
padding:6px 8px;box-sizing:border-box;overflow:hidden}}
.row{{position:absolute;font-weight:bold;font-size:14px;padding-top:6px}}
h3{{margin:0 0 6px;font-size:13px;font-weight:500}}
polyline{{fill:none;stroke-width:1.6}} .grid{{stroke:#2c3235}} .axis{{fill:#8e8e8e;font-size:10px}}
.legend span{{margin-right:12px;white-space:nowrap;font-size:11px}}
.legend i{{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}}
table{{width:100%;border-collapse:collapse;font-size:11px}}
td{{border-bottom:1px solid #2c3235;padding:2px 4px}} td:last-child{{text-align:right}}
.empty{{color:#8e8e8e;padding:20px}}
</style></head><body><header>{html.escape(dashboard["title"])}
<small>{html.escape(caption)}</small></header><main>{"".join(boxes)}</main></body></html>"""


def screenshot(page_file: Path, out: Path, *, height: int) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        raise SystemExit("dashboard-picture: no `chromium` (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={WIDTH + 16},{height}", f"--screenshot={out}", page_file.as_uri()],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip


# -- the run --------------------------------------------------------------------------------


def _verdict_at(log: Path) -> float | None:
    """When the run printed its verdict (a line PASS or FAIL), once it has."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return time.time() if any(line in ("PASS", "FAIL") for line in lines) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.dashboard_picture")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "dashboard.png")
    parser.add_argument("--workdir", type=Path, help="(default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=900, help="for the whole load run")
    parser.add_argument(
        "run", nargs="*", default=["--scenario", "rollout", "--bad-image"],
        help="arguments of loadtest/run (after --; default: --scenario rollout --bad-image)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleet-dashboard-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    dashboard = json.loads(DASHBOARD.read_text())
    with (workdir / "loadtest.log").open("ab") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "loadtest.run", *args.run, "--workdir", str(run_dir)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        base = wait_for("the operator's /metrics", lambda: metrics_url(run_dir / "operator.log"),
                        timeout=120)  # fmt: skip
        with prometheus(workdir, base.removeprefix("http://")) as prom:
            start = time.time()
            # The picture ends when the run's verdict is out: after it, the swarm and the
            # operator stop, which the panels would show as devices going dark.
            end = wait_for("the run's verdict", lambda: _verdict_at(workdir / "loadtest.log"),
                           timeout=args.timeout)  # fmt: skip
            try:
                code = run.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGTERM)
                code = run.wait(timeout=120)
            data = panel_data(prom, dashboard, start=start, end=end, step=2)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=60)
    verdict = "PASS" if code == 0 else f"FAIL ({code})"
    caption = (f"drawn from a real run: loadtest/run {' '.join(args.run)}, "
               f"{(end - start) / 60:.1f} min, verdict {verdict}")  # fmt: skip
    html_file = workdir / "dashboard.html"
    html_file.write_text(page(dashboard, data, caption=caption, window=(start, end), step=2))
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * ROW_PX
    screenshot(html_file, args.out, height=height + 60)
    print(f"dashboard-picture: {args.out} ({caption}); page {html_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
