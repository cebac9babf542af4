"""What a read costs on the API emulator with many objects: the operator's plain JSON list
(which issue 19's kubectl work must not slow down), kubectl's Table list, a label-selected
list, and a get by name. Prints medians; the emulator runs in its own thread, as in tests.

    .venv/bin/python benchmarks/kube_emulator_reads.py [--devices 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time

from fleet.devtools.kube_emulator import KubeEmulator

PATH = "/apis/fleet.nationtech.io/v1alpha1/devices"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def timed(conn: http.client.HTTPConnection, path: str, accept: str, rounds: int) -> float:
    """The median milliseconds of ``rounds`` GETs of ``path`` (the body read whole)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Accept": accept})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, body[:300]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    server = KubeEmulator()
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        started = time.perf_counter()
        for i in range(args.devices):
            body = {
                "apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "Device",
                "metadata": {"name": f"d{i:05d}", "labels": {"site": f"s{i % 10}"}},
                "spec": {"deviceId": f"d{i:05d}"},
            }  # fmt: skip
            conn.request("POST", PATH, json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status in (200, 201), response.status
        created = time.perf_counter() - started
        plain = timed(conn, PATH, "application/json", args.rounds)
        table = timed(conn, PATH, TABLE, args.rounds)
        selected = timed(conn, f"{PATH}?labelSelector=site%3Ds3", "application/json", args.rounds)
        get = timed(conn, f"{PATH}/d00042", "application/json", args.rounds * 10)
        conn.close()
    finally:
        server.stop()
    print(f"devices {args.devices}: created in {created:.1f} s "
          f"({args.devices / created:.0f}/s, one connection)")  # fmt: skip
    print(f"  list, plain JSON (the operator's)  {plain:8.1f} ms median of {args.rounds}")
    print(f"  list, as a Table (kubectl get)     {table:8.1f} ms")
    print(f"  list, labelSelector site=s3 (1/10) {selected:8.1f} ms")
    print(f"  get by name                        {get:8.2f} ms median of {args.rounds * 10}")


if __name__ == "__main__":
    main()
