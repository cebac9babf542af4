"""Secrets sealed per device: what sealing and opening cost (issue 14, "Files").

    .venv/bin/python benchmarks/sealing.py --devices 1000

Prints, for a small value (100 B) and the largest a file may hold (16 KiB):

* seal: the operator sealing it to each device's key (nkey -> curve25519 -> sealed box),
  per device, as a Secret-bearing score's entries are rendered;
* resolve: a whole score's references resolved per device (a ConfigMap inlined, a
  Secret sealed, a dockerconfigjson's credential sealed), through the operator's code;
* open: the agent opening one value with its seed.

Pure: no servers.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.actors.operator.file_sources import resolve
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.sealing import Opener, seal


class _Typed(dict[str, bytes]):
    secret_type = "kubernetes.io/dockerconfigjson"


class _Objects:
    def __init__(self, size: int) -> None:
        auth = base64.b64encode(b"user:password").decode()
        self.registry = _Typed({".dockerconfigjson": json.dumps(
            {"auths": {"registry.example:5000": {"auth": auth}}}).encode()})  # fmt: skip
        self.value = b"k" * size

    def config_map(self, _name: str) -> Mapping[str, str] | None:
        return {"site.conf": "mode=edge\n"}

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        return self.registry if name == "regcred" else {"key.pem": self.value}


SCORE = {
    "type": "podman",
    "image_pull_secrets": [{"name": "regcred"}],
    "containers": [{"name": "gw", "image": "registry.example:5000/gw:1", "files": [
        {"path": "/etc/site.conf", "config_map": {"name": "site", "key": "site.conf"}},
        {"path": "/etc/key.pem", "secret": {"name": "tls", "key": "key.pem"}},
    ]}],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    keys = [public_key(new_seed("user"), "user") for _ in range(args.devices)]
    for size in (100, 16 * 1024):
        value = b"x" * size
        started = time.perf_counter()
        for key in keys:
            seal(value, public_key=key)
        per_seal = (time.perf_counter() - started) / len(keys)
        objects = _Objects(size)
        started = time.perf_counter()
        for key in keys:
            resolve(SCORE, sources=objects, public_key=key)
        per_resolve = (time.perf_counter() - started) / len(keys)
        seed = new_seed("user")
        opener, sealed = Opener(seed), seal(value, public_key=public_key(seed, "user"))
        started = time.perf_counter()
        for _ in range(1000):
            opener.open(sealed)
        per_open = (time.perf_counter() - started) / 1000
        print(
            f"{size:>6} B: seal {per_seal * 1e6:.0f} us/device, resolve a score "
            f"{per_resolve * 1e6:.0f} us/device, open {per_open * 1e6:.0f} us"
        )


if __name__ == "__main__":
    main()
