"""Per-device values: what rendering a templated score costs the operator, per device.

    .venv/bin/python benchmarks/render_values.py --devices 10000

Prints, for a score without templates and one with four templated strings (image, a
command argument, two env values):

* parse: reading the spec (``parse_spec``: templates compiled once);
* first: every device's value, the first time (rendered, validated, encoded);
* again: every device's value asked again (what each plan and status asks: cached);
* held: Python allocations the renderer holds after the first pass (tracemalloc; the
  labels themselves are the caller's).

A score without templates must cost nothing per device (the same bytes object).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.actors.operator.rendering import Renderer
from fleet.actors.operator.spec import parse_spec
from fleet.contracts import DeviceId

PLAIN = {"type": "podman", "containers": [{"name": "web", "image": "registry.example/web:1",
                                          "env": {"SITE": "lab", "MODE": "edge"}}]}  # fmt: skip
TEMPLATED = {
    "type": "podman",
    "containers": [{
        "name": "web",
        "image": "registry.example/{{ device.labels.region | default('eu') }}/web:1",
        "command": ["serve", "--id={{ device.id }}"],
        "env": {"SITE": "{{ device.labels.site }}",
                "NAME": "{{ device.labels.site | upper }}-{{ device.id | replace('-', '_') }}"},
    }],
}  # fmt: skip


def run(name: str, score: object, devices: list[DeviceId]) -> None:
    started = time.perf_counter()
    spec = parse_spec(name="web", spec_json=json.dumps({"selector": {}, "score": score}).encode())
    parse = time.perf_counter() - started
    labels = {d: {"site": f"site-{i % 50}"} for i, d in enumerate(devices)}
    render = Renderer()
    render.targets(labels)
    started = time.perf_counter()
    render.seed(spec.template, spec.desired)  # renders every target once
    values = [render.value(d, spec.desired) for d in devices]
    first = time.perf_counter() - started
    started = time.perf_counter()
    for d in devices:
        render.value(d, spec.desired)
    again = time.perf_counter() - started
    same = sum(1 for v in values if v is spec.desired)
    del render, values
    tracemalloc.start()  # a second renderer, measured apart (tracemalloc slows it down)
    render = Renderer()
    render.targets(labels)
    render.seed(spec.template, spec.desired)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(devices)
    print(
        f"{name:10} parse {parse * 1e3:7.2f} ms"
        f" | first {first:6.3f} s ({first / n * 1e6:6.1f} us/device)"
        f" | again {again:6.3f} s ({again / n * 1e6:5.2f} us/device)"
        f" | held {held / 2**20:6.1f} MiB | same bytes object: {same}/{n}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    devices = [DeviceId(f"dev-{i:06d}") for i in range(args.devices)]
    run("plain", PLAIN, devices)
    run("templated", TEMPLATED, devices)


if __name__ == "__main__":
    main()
