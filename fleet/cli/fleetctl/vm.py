"""``fleetctl vm create|list|delete|image build|preflight``: the VM pool of test devices.

Why it exists: a person (or a test) gets real devices with their own kernel, systemd,
sshd and podman in one command, reachable as ``fleet-admin`` with the fleet key on a
127.0.0.1 port (:mod:`fleet.provisioning`, docs/provisioning.md). Device setup over SSH
is the next step and is not done here yet.

Exit codes: 0 done; 1 a step failed (a name taken, an image corrupt, SSH never
answered); 2 bad usage (an invalid name or label, a bad environment value); 3 libvirtd
not reachable. Each error is one line that says what to fix.

libvirt's binding is imported only when a ``vm`` command runs: the rest of fleetctl
works without the ``kvm`` extra. What it must never do: print the admin password.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from fleet.errors import ConfigError, PermanentError, TemporaryError

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
DEFAULT_URI = "qemu:///system"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    vm = sub.add_parser("vm", parents=[common], help="test devices: libvirt VMs of the fleet pool")
    actions = vm.add_subparsers(dest="vm_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[common], help="boot VMs, done when fleet-admin gets in by SSH"
    )
    create.add_argument("names", nargs="+", metavar="NAME", help="VM names (DNS labels)")
    create.add_argument("--labels", action="append", default=[], metavar="K=V[,K=V...]",
                        help="labels kept on each VM for device setup; repeatable")  # fmt: skip
    create.add_argument("--image", metavar="PATH|URL",
                        help="a qcow2 cloud image to boot (default: the image fleet builds "
                        "from Debian's packages, built on first use)")  # fmt: skip
    create.add_argument("--memory", type=int, default=1024, metavar="MIB",
                        help="memory of each VM (default: 1024)")  # fmt: skip
    create.add_argument("--vcpus", type=int, default=1, metavar="N", help="(default: 1)")
    create.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                        help="how long to wait for SSH (default: 900: emulation)")  # fmt: skip
    actions.add_parser("list", parents=[common], help="the pool's VMs: state, SSH port, labels")
    delete = actions.add_parser(
        "delete", parents=[common], help="remove VMs with their disks and seeds"
    )
    delete.add_argument("names", nargs="+", metavar="NAME")
    image = actions.add_parser("image", parents=[common], help="the guest image")
    image.add_argument("image_action", choices=("build",), metavar="build",
                       help="build it now (cached: once per machine)")  # fmt: skip
    pre = actions.add_parser(
        "preflight", parents=[common], help="check this machine can run the pool's VMs"
    )
    pre.add_argument("--arch", metavar="ARCH", help="guest architecture (default: this host's)")
    for p in (create, delete, image, pre, actions.choices["list"]):
        p.add_argument("--libvirt-uri", default=DEFAULT_URI, metavar="URI",
                       help=f"libvirtd to use (default: {DEFAULT_URI})")  # fmt: skip


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        for pair in filter(None, item.split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"--labels {pair!r}: say key=value")
            labels[key.strip()] = value.strip()
    return labels


def run(args: argparse.Namespace, out: TextIO) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        return _run(args, say)
    except ConfigError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TemporaryError as exc:  # libvirtd away
        print(f"fleetctl: {exc} (is libvirtd running? `fleetctl vm preflight`)", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PermanentError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace, say: Any) -> int:
    # the kvm extra (libvirt-python) only for these commands
    from fleet.provisioning import image as images
    from fleet.provisioning.paths import FleetPaths
    from fleet.provisioning.pool import ensure_harmony_fleet_pool
    from fleet.provisioning.preflight import (
        check_fleet_smoke_preflight_for_arch,
    )

    paths = FleetPaths.from_env()
    action = args.vm_action
    if action == "preflight":
        report = check_fleet_smoke_preflight_for_arch(
            args.arch, paths=paths, uri=args.libvirt_uri, need_build_tools=True
        )
        for check in report.checks:
            say(check.line())
        return 0 if report.ok else EXIT_FAILED
    if action == "image":
        started = time.monotonic()
        built = images.build_guest_image(paths, say=say)
        say(f"guest image: {built.disk} ({time.monotonic() - started:.0f} s)")
        return 0
    if action == "create":
        _precheck(args, paths, say)
    pool = ensure_harmony_fleet_pool(paths, uri=args.libvirt_uri, say=say)
    try:
        if action == "list":
            return _list(pool.vms(), args, say)
        if action == "delete":
            for name in pool.delete(args.names):
                say(f"vm {name}: deleted (domain, disk and seed)")
            return 0
        if args.image:
            guest = images.given_image(paths, args.image)
        else:
            guest = images.ensure_guest_image(paths, say=say)
        for vm in pool.create(
            args.names, image=guest, labels=parse_labels(args.labels),
            memory_mib=args.memory, vcpus=args.vcpus, ssh_timeout=args.timeout,
        ):  # fmt: skip
            say(f"vm {vm.name}: ready, ssh -p {vm.ssh_port} fleet-admin@127.0.0.1 "
                f"-i {pool.keypair.private_key}")  # fmt: skip
        return 0
    finally:
        pool.close()


def _precheck(args: argparse.Namespace, paths: Any, say: Any) -> None:
    """Bad names, labels and sizes, then the preflight: before anything is made."""
    from fleet.provisioning.pool import check_vm_labels, check_vm_name
    from fleet.provisioning.preflight import check_fleet_smoke_preflight_for_arch

    for name in args.names:
        check_vm_name(name)
    check_vm_labels(parse_labels(args.labels))
    if args.memory < 256 or args.vcpus < 1:
        raise ConfigError("--memory must be at least 256 (MiB) and --vcpus at least 1")
    report = check_fleet_smoke_preflight_for_arch(paths=paths, uri=args.libvirt_uri)
    failed = report.first_failure()
    if failed is not None:
        raise _preflight_error(failed.name, failed.line())
    say(f"guests run with {report.accelerator}")


def _preflight_error(check: str, line: str) -> Exception:
    from fleet.provisioning.errors import ProvisioningFailed

    if check == "libvirtd":
        return TemporaryError(f"preflight: {line}")  # exit 3, as libvirtd away elsewhere
    return ProvisioningFailed(f"preflight: {line}")


def _list(vms: list[Any], args: argparse.Namespace, say: Any) -> int:
    if args.output == "json":
        say(json.dumps([
            {"name": v.name, "state": v.state, "ready": v.ready, "ssh_port": v.ssh_port,
             "labels": v.labels} for v in vms
        ]))  # fmt: skip
        return 0
    rows = [("NAME", "STATE", "SSH", "LABELS")]
    for v in vms:
        state = v.state if v.ready else f"{v.state} (not ready)"
        labels = ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())) or "-"
        rows.append((v.name, state, f"127.0.0.1:{v.ssh_port}", labels))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        say("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0
