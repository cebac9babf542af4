"""Every beating device's last heartbeat, as plain numbers in one place: who is online, and
which device actors must hear of a beat.

Why it exists: at 100,000 devices beating every 10 s, one actor message per beat (the
fleet index telling the device actor, the actor waking, its picture marked dirty) was
most of what a heartbeat cost. Whether a device is reachable needs only its last ``at``
against the liveness timeout, so the fleet index keeps that here and tells a device
actor (:mod:`.device`, which owns the fact for its Device resource and its Deployments'
aggregates) only what changes something there:

* a beat that brings the device online (its first, or the first after it went silent);
* a beat at least ``refresh`` seconds newer than the last one its actor was told (the
  ``lastHeartbeat`` of its Device resource: at most ``refresh`` behind while online);
* that it went silent: one check is pending per online device (a heap ordered by when
  its last beat expires), and :meth:`expired` at each tick returns the devices whose
  last beat is older than the timeout; a newer beat just moves the check. So a silent
  device is found at the first tick after its last beat plus the timeout, as before.

Plain and synchronous, no I/O. What it must never do: call a device offline whose
latest beat is within the timeout, or keep anything of a device after :meth:`drop`.
"""

from __future__ import annotations

import heapq

from fleet.contracts import DeviceId


class LivenessBook:
    __slots__ = ("_due", "_heap", "_last", "_told", "refresh", "timeout")

    def __init__(self, *, timeout: float, refresh: float | None = None) -> None:
        self.timeout = timeout
        self.refresh = timeout if refresh is None else refresh
        self._last: dict[DeviceId, float] = {}  # the latest beat's ``at`` (epoch s)
        self._told: dict[DeviceId, float] = {}  # the ``at`` its actor was last told
        self._due: dict[DeviceId, float] = {}  # online devices: when the pending check is
        self._heap: list[tuple[float, DeviceId]] = []  # (due, device); stale ones skipped

    def __len__(self) -> int:
        """Devices online (each with one pending check)."""
        return len(self._due)

    def online(self, device: DeviceId) -> bool:
        return device in self._due

    def beat(self, device: DeviceId, at: float, *, now: float) -> bool:
        """``device`` beat ``at`` (its clock); whether its actor must be told this beat."""
        self._last[device] = at
        due = self._due
        changed = False
        if now - at > self.timeout:  # an old beat: not online (its actor decides the same)
            changed = due.pop(device, None) is not None  # its heap entry is skipped
        elif device not in due:  # comes online: one check armed
            self._arm(device, at + self.timeout)
            changed = True
        told = self._told.get(device)
        if changed or told is None or at - told >= self.refresh or at < told:
            self._told[device] = at
            return True
        return False

    def told(self, device: DeviceId, at: float) -> None:
        """Its actor was started with a beat of ``at`` (from what waited for it)."""
        self._told[device] = at

    def drop(self, device: DeviceId) -> None:
        """Its key was deleted, or it was forgotten: nothing of it is kept."""
        self._last.pop(device, None)
        self._told.pop(device, None)
        self._due.pop(device, None)  # its heap entry is skipped when it comes up

    def expired(self, *, now: float) -> list[DeviceId]:
        """The online devices whose latest beat is now older than the timeout (offline now)."""
        out: list[DeviceId] = []
        heap, due, last, timeout = self._heap, self._due, self._last, self.timeout
        while heap and heap[0][0] <= now:
            when, device = heapq.heappop(heap)
            if due.get(device) != when:
                continue  # dropped, or re-armed since
            at = last.get(device)
            if at is None or now - at > timeout:
                del due[device]
                out.append(device)
            else:
                self._arm(device, at + timeout)
        return out

    def _arm(self, device: DeviceId, when: float) -> None:
        self._due[device] = when
        heapq.heappush(self._heap, (when, device))
        if len(self._heap) > 4 * len(self._due) + 1024:  # stale entries: rebuild, bounded
            self._heap = [(w, d) for d, w in self._due.items()]
            heapq.heapify(self._heap)
