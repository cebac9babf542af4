"""Who a simulated device says it is, and how it acts: its inventory and its behaviour.

Why it exists: the load swarm, the operator tests and the benchmarks each once carried an
``Inventory(...)`` literal of their own; a simulated device has one inventory, here, and
one set of knobs (:class:`Behaviour`: the delays between phases, the failure rate, the
heartbeat interval), checked when made.

What it must never do: hold anything that changes (a device's state lives in the device),
or describe a host that runs containers (nothing here runs any).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.contracts import Inventory

SIMULATED_INVENTORY = Inventory(
    hostname="simulated",
    arch="x86_64",
    os="linux",
    kernel="simulated",
    cpus=1,
    memory_bytes=512 * 1024 * 1024,
    runtime_name="podman",
    runtime_version="simulated",
)
SIMULATED_AGENT_VERSION = "simulated"


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """How a simulated device acts. Delays are seconds, rates are fractions in [0, 1]."""

    pending_s: float = 0.05  # Pending -> Pulling
    pulling_s: float = 0.3  # Pulling -> Starting
    starting_s: float = 0.1  # Starting -> Running (or Failed)
    jitter: float = 0.5  # each delay is scaled by uniform(1 - jitter, 1 + jitter)
    failure_rate: float = 0.0  # chance that one rollout ends Failed
    # The share of devices that fail this image, whenever it is rolled out to them, each
    # decided by a hash of its id and the image (simrollout.told_to_fail); "": none.
    failing_image: str = ""
    failing_image_rate: float = 0.0
    resync_interval_s: float = 300.0
    heartbeat_interval_s: float = 5.0  # 0: no heartbeat of its own (call heartbeat())
    report_attempts: int = 5
    coalesce: bool = True  # latest report per key wins, one write in flight (as the agent)

    def __post_init__(self) -> None:
        self.check(
            rates=("failure_rate", "failing_image_rate", "jitter"),
            delays=("pending_s", "pulling_s", "starting_s"),
        )

    def check(self, *, rates: tuple[str, ...], delays: tuple[str, ...]) -> None:
        """Raise ``ValueError`` naming the first rate outside [0, 1] or negative delay."""
        kind = type(self).__name__
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{kind}.{name} must be within [0, 1], got {value!r}")
        for name in delays:
            if getattr(self, name) < 0:
                raise ValueError(f"{kind}.{name} must be >= 0, got {getattr(self, name)}")
