"""Locust users that are simulated fleet devices.

Each user is one device (:class:`loadtest.device.SimulatedDevice`): the user's start is
the device's boot (info written, desired-state feed followed, heartbeats every
``--heartbeat-interval`` seconds), the user's stop is the device's power-off. The device
itself runs on the process's asyncio loop (:mod:`loadtest.bridge`): its heartbeats and
rollouts (Pending -> Pulling -> Starting -> Running, or Failed) never cross to gevent,
because at 10,000 devices per process every crossing counts; only its measurements do,
in batches. The user's greenlet sleeps until the run ends.

What locust's statistics (web UI, ``--csv``) show:

* ``KV put  heartbeat``: heartbeat round trip (put to the server's ack);
* ``device  desired->Running`` / ``desired->Failed``: from the moment the device saw a
  desired-state entry to the server's ack of its final report (includes the configured
  Pending/Pulling/Starting delays);
* ``KV put  device-state`` / ``device-info``: each report's put latency (a failure here is a
  swarm failure: the server refused or did not answer).

Run it through ``loadtest/run`` (which also starts NATS, the Kubernetes API emulator
and the operator), or on its own against a running system::

    locust -f loadtest/locustfile.py --headless -u 1000 -r 200 --run-time 60s \
        --nats-url nats://127.0.0.1:4222 --swarm-id load1

Scale out with ``--processes N`` (one loop thread per process) or locust's distributed
mode (``--master`` / ``--worker``): options given to the master reach every worker.

What it must never do: start the bridge at import (locust forks after importing this).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import gevent.lock
import locust.runners
from locust import User, events, task
from locust.runners import WorkerRunner

if __package__ in (None, ""):  # run by path (locust -f loadtest/locustfile.py): find the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.connections import CLIENTS
from loadtest.control import control_subject
from loadtest.device import DeviceBehaviour, SimulatedDevice
from loadtest.plan import MOVED, RING_LABEL, SWARM_LABEL
from loadtest.runtime_mix import parse_mix
from loadtest.swarm import Swarm, SwarmSettings

logging.getLogger("fleet.runtime.nats.bus").setLevel(logging.WARNING)  # one line per connection
logging.getLogger("fleet.runtime.nats.desired_feed").setLevel(
    logging.INFO
)  # a feed retrying matters

# A worker whose process shares 2 cores with the system under test can miss its beats to
# the master for seconds (seen at 100,000 devices, load average 5). With locust's
# liveness of 3 beats the master then declares it missing and re-dispatches its users
# to the other workers: more devices than asked for (10,775 in a 10,000 run). Only the
# master reads this; a worker that really died is still noticed, 30 s later.
locust.runners.HEARTBEAT_LIVENESS = 30

_swarm: Swarm | None = None
_swarm_lock = gevent.lock.Semaphore()


# locust's EventHook.add_listener is unannotated
@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    add = parser.add_argument
    add("--nats-url", default="nats://127.0.0.1:4222", help="NATS server URL(s), comma-separated")
    add("--swarm-id", default="load", help="device id prefix and value of the swarm label")
    add("--device-labels", default="", help="extra labels for every device: k=v,k2=v2")
    add("--devices-per-connection", type=int, default=1, help="devices sharing one NATS connection")
    add(
        "--nats-client",
        choices=CLIENTS,
        default="lite",
        help="the devices' NATS client: lite (loadtest/natsproto.py) or nats-py (the agent's)",
    )
    add("--heartbeat-interval", type=float, default=5.0, help="seconds between heartbeats")
    add("--pending-s", type=float, default=0.05, help="seconds from Pending to Pulling")
    add("--pulling-s", type=float, default=0.3, help="seconds from Pulling to Starting")
    add("--starting-s", type=float, default=0.1, help="seconds from Starting to Running")
    add("--failure-rate", type=float, default=0.0, help="fraction of rollouts that end Failed")
    add("--failing-image", default="", help="an image a share of the devices fail, every time")
    add(
        "--failing-image-rate",
        type=float,
        default=0.0,
        help="the share of devices that fail --failing-image (each by a hash of its id)",
    )
    add(
        "--control",
        action="store_true",
        help="power devices off and on when the run says so (loadtest/control.py)",
    )
    add("--silent-rate", type=float, default=0.0, help="fraction of devices that go silent")
    add("--relabel-rate", type=float, default=0.0, help="fraction of devices that relabel")
    add("--churn-after", type=float, default=10.0, help="seconds after start when churn happens")
    add("--seed", type=int, default=0, help="seed of every device's random choices")
    add("--auth-file", default="", help="device identity on: the run's authority seeds")
    add("--nats-ca", default="", help="the CA the devices trust for TLS")
    add(
        "--runtime-mix",
        default="",
        help="the runtimes devices list, by weight: podman=8,kvm=1,kubernetes=1 (default podman)",
    )


def settings_from(options: Any) -> SwarmSettings:
    labels = {SWARM_LABEL: options.swarm_id, RING_LABEL: "main"}
    for pair in filter(None, (options.device_labels or "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--device-labels: {pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    return SwarmSettings(
        nats_urls=tuple(u.strip() for u in options.nats_url.split(",") if u.strip()),
        prefix=options.swarm_id,
        labels=labels,
        devices_per_connection=options.devices_per_connection,
        client=options.nats_client,
        behaviour=DeviceBehaviour(
            heartbeat_interval_s=options.heartbeat_interval,
            pending_s=options.pending_s,
            pulling_s=options.pulling_s,
            starting_s=options.starting_s,
            failure_rate=options.failure_rate,
            failing_image=options.failing_image,
            failing_image_rate=options.failing_image_rate,
            silent_rate=options.silent_rate,
            relabel_rate=options.relabel_rate,
            churn_after_s=options.churn_after,
            relabel_to=(RING_LABEL, MOVED),
        ),
        seed=options.seed,
        auth_file=options.auth_file,
        tls_ca=options.nats_ca,
        control_subject=control_subject(options.swarm_id) if options.control else "",
        runtime_mix=parse_mix(options.runtime_mix or ""),
    )


def swarm_of(environment: Any) -> Swarm:
    """This process's swarm, built on first use (after locust forked the process)."""
    global _swarm  # noqa: PLW0603 -- one swarm per process is the point
    with _swarm_lock:
        if _swarm is None:
            runner = environment.runner
            index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
            swarm = Swarm(
                settings=settings_from(environment.parsed_options),
                environment=environment,
                process_index=index,
            )
            swarm.start()
            _swarm = swarm
        return _swarm


# locust's EventHook.add_listener is unannotated
@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _close(environment: Any, **_kwargs: Any) -> None:
    if _swarm is not None:
        _swarm.close()


class SimulatedDeviceUser(User):
    """One simulated device: started with the user, stopped with it."""

    swarm: Swarm
    device: SimulatedDevice

    def wait_time(self) -> float:
        return 60.0

    def on_start(self) -> None:
        self.swarm = swarm_of(self.environment)
        n, device_id = self.swarm.next_device_id()
        self.device = self.swarm.bridge.call(self.swarm.start_device, n, device_id, timeout=300)

    def on_stop(self) -> None:
        device = getattr(self, "device", None)
        if device is not None and self.swarm.bridge.running:
            self.swarm.bridge.submit(self.swarm.stop_device, device)  # not awaited: quitting closes

    @task
    def live(self) -> None:
        """Nothing to do on the greenlet: the device lives on the loop."""
