"""A real ``fleet-operator`` process against a test's nats-server and API emulator, for
the tests that SIGKILL it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


@contextlib.contextmanager
def operator_process(
    nats_url: str,
    kube_url: str,
    log: Path,
    *,
    liveness: float = 30.0,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli.operator", "--nats-url", nats_url,
             "--kube-url", kube_url, "--liveness-timeout", str(liveness), *extra],
            stdout=out, stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout=30)
