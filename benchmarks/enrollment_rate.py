"""How many devices a fleet-operator enrolls per second, through one bootstrap token.

Why it exists: issue 12 asks for enrollments per second. A real ``fleet-operator`` (its
own process, ``--auth-dir``: it holds the authority) answers on a real nats-server in
JWT-auth and TLS mode, with the API emulator as its cluster. This process plays N new
devices: each makes its own nkey, signs an ``EnrollmentRequest`` carrying the same
bootstrap token (N uses), and asks over the bootstrap credential until it is approved
(a token use is a compare-and-swap on one BootstrapToken: N devices at once contend
for it). Printed: the time until every device holds a JWT, the rate, how many asks it
took, the operator's CPU.

    .venv/bin/python benchmarks/enrollment_rate.py --devices 500 --concurrency 50

What it must never do: listen or connect anywhere but 127.0.0.1, or leave a process
behind.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats

from fleet.cli.fleetctl.enrolling import create_token
from fleet.contracts import (
    DeviceId,
    EnrollmentRequest,
    decode_enrollment_reply,
    encode_enrollment,
    signed_bytes,
)
from fleet.devtools.kube_emulator import KubeEmulator
from fleet.devtools.simprofile import SIMULATED_INVENTORY
from fleet.devtools.tls import make_local_ca
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.config import make_api_client
from fleet.runtime.nats import subjects
from fleet.runtime.nats.authority_files import load_or_create
from fleet.runtime.nats.claims import new_seed, public_key, sign
from fleet.runtime.nats.server import LocalNatsServer

INVENTORY = SIMULATED_INVENTORY  # the simulated devices' own (fleet.devtools.simprofile)


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def request_for(index: int, token: str) -> bytes:
    seed = new_seed("user")
    request = EnrollmentRequest(
        device_id=DeviceId(f"bench-{index}"), public_key=public_key(seed, "user"),
        labels={"fleet": "bench"}, inventory=INVENTORY, agent_version="bench",
        at=dt.datetime.now(tz=dt.UTC), token=token,
    )  # fmt: skip
    signed = msgspec.structs.replace(request, signature=sign(seed, signed_bytes(request)))
    return encode_enrollment(signed)


async def enroll_all(
    url: str, ca: Path, bootstrap: Path, token: str, *, devices: int, concurrency: int
) -> tuple[float, int]:
    import ssl

    nc = await nats.connect(
        url, user_credentials=str(bootstrap), tls=ssl.create_default_context(cafile=str(ca)),
        inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX, connect_timeout=5,
    )  # fmt: skip
    asks = 0
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        nonlocal asks
        data = request_for(index, token)
        async with limit:
            for _ in range(200):
                asks += 1
                try:
                    msg = await nc.request(subjects.ENROLL, data, timeout=10)
                except nats.errors.TimeoutError:
                    continue
                reply = decode_enrollment_reply(msg.data)
                if reply.status == "approved":
                    return
                if reply.status in ("denied", "refused"):
                    raise RuntimeError(f"bench-{index}: {reply.status}: {reply.reason}")
                await asyncio.sleep(min(reply.retry_after_s, 0.2))
            raise RuntimeError(f"bench-{index}: not approved after 200 asks")

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(one(i) for i in range(devices)))
    finally:
        await nc.close()
    return time.monotonic() - t0, asks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-enroll-bench-"))
    auth_dir = work / "auth"
    authority = load_or_create(auth_dir)
    ca = make_local_ca(work / "ca")
    server = LocalNatsServer(store_dir=work / "js", auth=authority.server_auth(), tls=ca.server)
    kube = KubeEmulator()
    server.start()
    kube.start()
    log = (work / "operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.operator", "--metrics-address", "127.0.0.1:0",
         "--nats-url", server.url,
         "--kube-url", kube.url, "--auth-dir", str(auth_dir), "--nats-ca", str(ca.ca_cert),
         "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        client = KubeClient(make_api_client(kube_url=kube.url), timeout=10)
        token, _ = create_token(client, ttl=3600, uses=args.devices, labels={"fleet": "bench"})
        cpu0 = None
        deadline = time.monotonic() + 60
        while cpu0 is None and time.monotonic() < deadline:  # wait for it to answer
            try:
                asyncio.run(
                    enroll_all(server.url, ca.ca_cert, auth_dir / "bootstrap.creds", token,
                               devices=0, concurrency=1)
                )  # fmt: skip
                cpu0 = cpu_of(operator.pid)
            except Exception:
                time.sleep(0.5)
        time.sleep(3)  # the operator's own start-up work (syncs) is not the figure
        cpu0 = cpu_of(operator.pid)
        elapsed, asks = asyncio.run(
            enroll_all(server.url, ca.ca_cert, auth_dir / "bootstrap.creds", token,
                       devices=args.devices, concurrency=args.concurrency)
        )  # fmt: skip
        cpu = cpu_of(operator.pid) - cpu0
        print(
            f"{args.devices} devices enrolled through one token in {elapsed:.2f}s: "
            f"{args.devices / elapsed:.0f}/s, {asks} asks ({asks / args.devices:.2f} per "
            f"device), operator CPU {cpu:.1f}s ({1000 * cpu / args.devices:.1f} ms a device), "
            f"{args.concurrency} in flight"
        )
    finally:
        operator.terminate()
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
        log.close()
        kube.stop()
        server.stop()


if __name__ == "__main__":
    main()
