"""``fleetctl device setup USER@HOST``: make a machine reachable by SSH a device of the fleet.

Why it exists: the command line of :class:`fleet.provisioning.setup.FleetDeviceSetupScore`
(docs/provisioning.md). It logs in with the fleet key (``$HARMONY_DATA_DIR/fleet/ssh/``),
runs the setup step by step, then watches the bus (fleetctl's own ``--nats-url``,
``--nats-credentials``, ``--nats-ca``) until the device's info and a new heartbeat show.
``vm create`` runs the same setup on each new VM (:func:`setup_many`).

Exit codes: 0 done; 1 a step failed (a preflight check, an install, no heartbeat); 2 bad
usage; 3 the device or NATS not reachable. Each error is one line that says what to fix.
What it must never do: print the enrollment token or take it from the command line.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    DeviceId,
    decode_heartbeat_entry,
    decode_info_entry,
    device_heartbeat_key,
    device_info_key,
)
from fleet.errors import ConfigError, ContractError, FleetError, PermanentError, TemporaryError
from fleet.runtime.nats.kv import KvEntry

from .connect import Buckets, Unreachable

if TYPE_CHECKING:  # asyncssh (the provision extra) only when setup runs
    from fleet.provisioning.setup import Sighting

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
TOKEN_ENV = "FLEET_ENROLLMENT_TOKEN"


def add_setup_arguments(a: argparse.ArgumentParser, *, vm: bool = False) -> None:
    """The setup options; ``vm``: for ``vm create`` (no target, no id, no host keys)."""
    if not vm:
        a.add_argument("target", metavar="USER@HOST[:PORT]", help="who to log in as, where")
        a.add_argument("--device-id", metavar="ID", help="(default: the device's hostname)")
        a.add_argument("--labels", action="append", default=[], metavar="K=V[,K=V...]",
                       help="the device's labels; repeatable")  # fmt: skip
        a.add_argument("--no-host-key-check", action="store_true",
                       help="do not check or record the device's SSH host key (a throwaway "
                       "machine); by default a new host's key is recorded in "
                       "$HARMONY_DATA_DIR/fleet/ssh/known_hosts and a changed one "
                       "refused")  # fmt: skip
    a.add_argument("--device-nats-url", action="append", metavar="URL",
                   help="NATS as the device dials it; repeatable (default: --nats-url"
                   + (", with 127.0.0.1 and localhost as the VM sees the host: 10.0.2.2)"
                      if vm else ")"))  # fmt: skip
    a.add_argument("--bootstrap-creds", type=Path, metavar="FILE",
                   help="the fleet's bootstrap.creds (fleet-operator --auth-dir): the device "
                   "enrolls with a key of its own; the NATS CA is --nats-ca")  # fmt: skip
    a.add_argument("--enrollment-token-file", type=Path, metavar="FILE",
                   help=f"a bootstrap token (fleetctl token create) that approves the device "
                   f"(default: ${TOKEN_ENV}); never printed")  # fmt: skip
    a.add_argument(
        "--agent-wheel",
        type=Path,
        metavar="FILE",
        help="install this fleet wheel (default: built from this checkout)",
    )
    a.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="a registry podman on the device reaches over plain HTTP; "
                   "repeatable")  # fmt: skip
    a.add_argument("--heartbeat-interval", type=float, default=10.0, metavar="SECONDS",
                   help="(default: 10)")  # fmt: skip
    a.add_argument("--dry-run", action="store_true",
                   help="check the device and print the plan; change nothing")  # fmt: skip
    a.add_argument("--no-wait", action="store_true",
                   help="do not wait for the device's info and heartbeat on the bus")  # fmt: skip
    a.add_argument("--wait-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for them (default: 300)")  # fmt: skip


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        for pair in filter(None, item.split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"--labels {pair!r}: say key=value")
            labels[key.strip()] = value.strip()
    return labels


def read_token(a: argparse.Namespace) -> str | None:
    if a.enrollment_token_file is not None:
        try:
            text = a.enrollment_token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read --enrollment-token-file: {exc}") from exc
        lines = text.splitlines()
        return lines[0].strip() if lines else ""
    return os.environ.get(TOKEN_ENV) or None


def sighting_of(buckets: Buckets) -> Sighting:
    """The revisions of a device's valid info and heartbeat entries (a Sighting)."""

    def seen(device_id: str) -> tuple[int | None, int | None]:
        key = device_info_key(DeviceId(device_id))
        info = _valid(buckets.read(BUCKET_DEVICE_INFO, key).get(key), decode_info_entry)
        key = device_heartbeat_key(DeviceId(device_id))
        beat = _valid(buckets.read(BUCKET_DEVICE_HEARTBEAT, key).get(key), decode_heartbeat_entry)
        return info, beat

    return seen


def _valid(entry: KvEntry | None, decode: Callable[[str, bytes], object]) -> int | None:
    """The entry's revision, if it is there and decodes (a bad one counts as absent)."""
    if entry is None or entry.deleted:
        return None
    try:
        decode(entry.key, entry.value)
    except ContractError:
        return None
    return entry.revision


def configs(
    a: argparse.Namespace,
    targets: Mapping[str, Any],
    *,
    labels: Mapping[str, str],
    device_urls: Sequence[str],
    check_host_key: bool,
) -> list[Any]:
    """One setup config per (device id or None) -> SshTarget."""
    from fleet.provisioning.setup import FleetDeviceSetupConfig

    token = read_token(a)
    return [
        FleetDeviceSetupConfig(
            target=target, nats_urls=tuple(device_urls), device_id=device_id,
            labels=dict(labels), nats_ca=a.nats_ca, bootstrap_credentials=a.bootstrap_creds,
            enrollment_token=token, agent_wheel=a.agent_wheel,
            insecure_registries=tuple(a.insecure_registry),
            heartbeat_interval_s=a.heartbeat_interval, check_host_key=check_host_key,
            dry_run=a.dry_run, wait=not a.no_wait, wait_timeout_s=a.wait_timeout,
        )
        for device_id, target in targets.items()
    ]  # fmt: skip


def setup_many(a: argparse.Namespace, setups: list[Any], say: Callable[[str], None]) -> None:
    """Run each setup (in parallel), watching the bus with fleetctl's connection; raise
    the first failure after all ended."""
    from fleet.provisioning.paths import FleetPaths
    from fleet.provisioning.setup import setup_device

    paths = FleetPaths.from_env()
    buckets = None
    if not a.no_wait and not a.dry_run:
        try:
            buckets = Buckets(
                urls=a.nats_url, timeout=a.connect_timeout, credentials=a.nats_credentials,
                tls_ca=a.nats_ca,
            ).__enter__()  # fmt: skip
        except Unreachable as exc:
            raise Unreachable(f"{exc}; or --no-wait: set up without watching the bus") from exc
    try:
        sighting = sighting_of(buckets) if buckets is not None else None

        def one(config: Any) -> Any:
            name = config.device_id or str(config.target)
            prefix = f"{name}: " if len(setups) > 1 else ""
            return setup_device(config, paths=paths, sighting=sighting,
                                say=lambda line: say(prefix + line))  # fmt: skip

        with concurrent.futures.ThreadPoolExecutor(max(1, len(setups))) as pool:
            futures = [pool.submit(one, c) for c in setups]
            errors = [(c, f.exception()) for c, f in zip(setups, futures, strict=True)]
        failed = [(c, e) for c, e in errors if e is not None]
        for config, error in failed[:-1]:  # all but the one raised: said, not lost
            say(f"{config.device_id or config.target}: failed: {error}")
        if failed:
            config, error = failed[-1]
            if len(setups) > 1 and isinstance(error, FleetError):
                raise type(error)(f"{config.device_id}: {error}") from error
            raise error
    finally:
        if buckets is not None:
            buckets.close()


def run(a: argparse.Namespace, out: TextIO) -> int:
    """``fleetctl device setup``."""

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        from fleet.runtime.ssh import SshTarget

        target = SshTarget.parse(a.target)
        urls = a.device_nats_url or a.nats_url
        setups = configs(
            a, {a.device_id: target}, labels=parse_labels(a.labels), device_urls=urls,
            check_host_key=not a.no_host_key_check,
        )  # fmt: skip
        setup_many(a, setups, say)
        return 0
    except ImportError as exc:
        print(f"fleetctl: device setup needs asyncssh: pip install 'fleet[provision]' ({exc})",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TemporaryError, Unreachable) as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PermanentError as exc:
        print(f"fleetctl: {exc}", file=sys.stderr)
        return EXIT_FAILED
