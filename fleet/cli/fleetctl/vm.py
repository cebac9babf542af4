"""``fleetctl vm create|list|delete|image build|preflight``: the VM pool of test devices.

Why it exists: a person (or a test) gets real devices with their own kernel, systemd,
sshd and podman in one command, reachable as ``fleet-admin`` with the fleet key on a
127.0.0.1 port (:mod:`fleet.provisioning`, docs/provisioning.md); then ``create`` sets each
one up as a device (:mod:`.device_setup`: its name the device id, its labels the device's,
NATS as the VM sees the host: 10.0.2.2), unless ``--no-setup``.

Exit codes: 0 done; 1 a step failed (a name taken, an image corrupt, SSH never
answered, a setup step); 2 bad usage (an invalid name or label, a bad environment
value); 3 libvirtd or NATS not reachable. Each error is one line that says what to fix.

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

from . import device_setup
from .connect import Unreachable

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
    create.add_argument("--forward", action="append", default=[], metavar="HOSTPORT:GUESTPORT",
                        help="also forward 127.0.0.1:HOSTPORT to the VM's GUESTPORT (one VM "
                        "only); repeatable")  # fmt: skip
    create.add_argument(
        "--no-setup",
        action="store_true",
        help="stop when SSH answers: no device setup (fleetctl device setup)",
    )
    device_setup.add_setup_arguments(create, vm=True)
    again = actions.add_parser(
        "setup", parents=[common], help="device setup again on VMs of the pool (a repair)"
    )
    again.add_argument("names", nargs="+", metavar="NAME")
    device_setup.add_setup_arguments(again, vm=True)
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
    for p in (create, again, delete, image, pre, actions.choices["list"]):
        p.add_argument("--libvirt-uri", default=DEFAULT_URI, metavar="URI",
                       help=f"libvirtd to use (default: {DEFAULT_URI})")  # fmt: skip


parse_labels = device_setup.parse_labels


def run(args: argparse.Namespace, out: TextIO) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        return _run(args, say)
    except ConfigError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:  # NATS, watched by device setup
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except TemporaryError as exc:  # libvirtd away, or a VM's sshd
        hint = "" if type(exc).__module__.startswith("fleet.runtime.ssh") else (
            " (is libvirtd running? `fleetctl vm preflight`)")  # fmt: skip
        print(f"fleetctl: {exc}{hint}", file=sys.stderr)
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
        if action == "setup":
            vms = _ready(pool, args.names)
        else:
            guest = (
                images.given_image(paths, args.image)
                if args.image
                else images.ensure_guest_image(paths, say=say)
            )
            labels = parse_labels(args.labels)
            vms = []
            for vm in pool.create(
                args.names, image=guest, labels=labels, memory_mib=args.memory,
                vcpus=args.vcpus, ssh_timeout=args.timeout, forwards=parse_forwards(args.forward),
            ):  # fmt: skip
                say(f"vm {vm.name}: ready, ssh -p {vm.ssh_port} fleet-admin@127.0.0.1 "
                    f"-i {pool.keypair.private_key}")  # fmt: skip
                vms.append((vm.name, vm.ssh_port, labels))
    finally:
        pool.close()
    if action == "setup" or not args.no_setup:
        _setup(args, vms, say)
    return 0


def _ready(pool: Any, names: list[str]) -> list[tuple[str, int, dict[str, str]]]:
    found = {v.name: v for v in pool.vms() if v.ready}
    lacking = [n for n in names if n not in found]
    if lacking:
        raise ConfigError(
            f"no ready VM {', '.join(lacking)} in pool {pool.name} (fleetctl vm list)"
        )
    return [(n, found[n].ssh_port, found[n].labels) for n in names]


def parse_forwards(items: list[str]) -> list[tuple[int, int]]:
    pairs = []
    for item in items:
        host, sep, guest = item.partition(":")
        if not (sep and host.isdigit() and guest.isdigit() and len(host + guest) <= 10):
            raise ConfigError(f"--forward {item[:40]!r}: say HOSTPORT:GUESTPORT, e.g. 18080:8080")
        pairs.append((int(host), int(guest)))
    return pairs


def _setups(args: argparse.Namespace, vms: list[tuple[str, int, dict[str, str]]]) -> list[Any]:
    """One setup config per VM: its name the device id, its labels the device's."""
    try:
        from fleet.provisioning.pool import guest_url
        from fleet.provisioning.seed import ADMIN_USER
        from fleet.runtime.ssh import SshTarget
    except ImportError as exc:
        raise ConfigError(
            f"device setup needs asyncssh ({exc}): pip install 'fleet[provision]', "
            "or give --no-setup"
        ) from exc
    urls = args.device_nats_url or [guest_url(u) for u in args.nats_url]
    return [
        device_setup.configs(
            args, {name: SshTarget(ADMIN_USER, "127.0.0.1", port)}, labels=labels,
            device_urls=urls, check_host_key=False,  # new host keys each VM; ports reused
        )[0]
        for name, port, labels in vms
    ]  # fmt: skip


def _setup(args: argparse.Namespace, vms: list[tuple[str, int, dict[str, str]]], say: Any) -> None:
    """Device setup on each VM, in parallel."""
    setups = _setups(args, vms)
    try:
        device_setup.setup_many(args, setups, say)
    except (PermanentError, TemporaryError) as exc:
        names = " ".join(name for name, _port, _labels in vms)
        raise type(exc)(
            f"{exc} [the VMs are up: `fleetctl vm setup {names}` sets them up again]"
        ) from exc


def _precheck(args: argparse.Namespace, paths: Any, say: Any) -> None:
    """Bad names, labels and sizes, then the preflight: before anything is made."""
    from fleet.provisioning.pool import check_vm_labels, check_vm_name
    from fleet.provisioning.preflight import check_fleet_smoke_preflight_for_arch

    for name in args.names:
        check_vm_name(name)
    check_vm_labels(parse_labels(args.labels))
    from fleet.provisioning.pool import check_forwards

    check_forwards(parse_forwards(args.forward))
    if not args.no_setup:  # the setup's values, before minutes of booting
        _setups(args, [(name, 22, parse_labels(args.labels)) for name in args.names])
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
