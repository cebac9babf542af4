"""Test VMs (issue 15): what the guest image, a VM's boot to SSH, its device setup and
its delete cost.

    .venv/bin/python benchmarks/vm_pool.py --vms 2            # image from the cache
    .venv/bin/python benchmarks/vm_pool.py --vms 2 --rebuild  # the image built anew
    .venv/bin/python benchmarks/vm_pool.py --vms 1 --setup    # and device setup, twice

Prints: the image build (``--rebuild``: into a scratch ``HARMONY_DATA_DIR``, so the
cached one stays), ``vm create`` of ``--vms`` VMs booted in parallel until each lets
``fleet-admin`` in by SSH (per VM and for the whole command), and ``vm delete``. With
``--setup``, ``vm create`` also sets each VM up as a device against a nats-server started
for the run (per VM: the setup's own time, from building the agent's wheelhouse if the
cache lacks it to its heartbeat on the bus), then ``vm setup`` runs again (nothing to
change: what an idempotent re-run costs). Runs
``fleetctl`` as a user would, against the system libvirtd (started for the run and
stopped after, unless it was running: tests/fixtures/kvm.py), in a pool of its own.
Needs root. The machine's load moves these figures a lot: the guest is emulated (TCG).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.provisioning.image import build_guest_image
from fleet.provisioning.paths import FleetPaths
from fleet.runtime.nats.server import LocalNatsServer
from tests.fixtures.kvm import libvirt_world

CACHE = Path("/var/tmp/fleet-harmony")


def fleetctl(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "vm", *args],
        env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"fleetctl vm {' '.join(args)}: {done.stderr.strip()}")
    return time.monotonic() - started, done.stdout


def setups(out: str) -> str:
    """Each setup's closing line: its time and what it changed."""
    done = re.findall(r"done in (\d+ s: .*)", out)
    return "; ".join(done) or "(none printed)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=2)
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--rebuild", action="store_true", help="time an image build too")
    parser.add_argument("--setup", action="store_true", help="time device setup too")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start")
    if args.rebuild:
        with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="fleet-bench-image-") as d:
            started = time.monotonic()
            build_guest_image(FleetPaths(data_dir=Path(d)))
            print(
                f"image build (mmdebstrap, mkfs.ext4 -d, qcow2): {time.monotonic() - started:.0f} s"
            )
    pool = f"harmony-fleet-bench-{os.getpid()}"
    env = dict(os.environ, HARMONY_DATA_DIR=str(CACHE), HARMONY_FLEET_POOL_NAME=pool)
    names = [f"bench-{i}" for i in range(1, args.vms + 1)]
    with libvirt_world(), contextlib.ExitStack() as stack:
        setup = ["--no-setup"]
        if args.setup:
            nats = LocalNatsServer(
                store_dir=Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
            nats.start()
            stack.callback(nats.stop)
            setup = ["--nats-url", nats.url]
        try:
            fleetctl(env, "image", "build")  # the cached one, or built now (not timed)
            took, out = fleetctl(env, "create", *names, "--memory", str(args.memory), *setup)
            per_vm = [int(s) for s in re.findall(r"answers \((\d+) s\)", out)]
            print(f"vm create of {args.vms} (parallel, {args.memory} MiB, 1 vCPU): {took:.0f} s; "
                  f"boot to SSH per VM: {', '.join(f'{s} s' for s in per_vm)}")  # fmt: skip
            if args.setup:
                print(f"device setup per VM (in that create): {setups(out)}")
                took, out = fleetctl(env, "setup", *names, *setup)
                print(f"vm setup again ({took:.0f} s in all): {setups(out)}")
            took, _ = fleetctl(env, "list")
            print(f"vm list: {took:.1f} s")
            took, _ = fleetctl(env, "delete", *names)
            print(f"vm delete of {args.vms}: {took:.1f} s")
        finally:
            subprocess.run(["virsh", "-c", "qemu:///system", "pool-destroy", pool],
                           capture_output=True, check=False)  # fmt: skip
            subprocess.run(["virsh", "-c", "qemu:///system", "pool-undefine", pool],
                           capture_output=True, check=False)  # fmt: skip
            shutil.rmtree(CACHE / "fleet" / "pools" / pool, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
