"""An actor never runs on two worker threads at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fleet.runtime.actorkit.pool import ActorPool, PooledActor

pytestmark = pytest.mark.timeout(30)


class Guarded(PooledActor):
    """Counts handler overlaps with a non-blocking lock held for the whole handler."""

    def __init__(self, *, pool: ActorPool) -> None:
        super().__init__(pool=pool)
        self.busy = threading.Lock()
        self.overlaps = 0
        self.handled = 0
        self.threads: set[str] = set()

    def on_receive(self, message: Any) -> Any:
        if message == "report":
            return self.overlaps, self.handled, self.threads
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            return None
        try:
            self.threads.add(threading.current_thread().name)
            if message % 50 == 0:
                time.sleep(0.0005)  # hand the GIL to the other workers mid-handler
            self.handled += 1
        finally:
            self.busy.release()
        return None


def test_no_actor_is_run_by_two_workers_at_once(pool: ActorPool) -> None:
    refs = [Guarded.start(pool=pool) for _ in range(6)]
    per_thread = 600

    def send() -> None:
        for n in range(per_thread):
            for ref in refs:
                ref.tell(n)

    senders = [threading.Thread(target=send) for _ in range(6)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(20)
    workers: set[str] = set()
    for ref in refs:
        overlaps, handled, threads = ref.ask("report", block=True, timeout=10)
        assert overlaps == 0
        assert handled == per_thread * len(senders)
        workers |= threads
        ref.stop(timeout=5)
    # The check means something only if actors really moved between workers.
    assert len(workers) >= 2, workers
