"""The desired-state tap of the load swarm (:class:`loadtest.tap.DesiredTap`: every write,
in order, from a core subscription), with the questions the rollout tests ask of it."""

from __future__ import annotations

from collections import Counter

from loadtest.tap import DesiredTap as _Tap


class DesiredTap(_Tap):
    def devices_given(self, deployment: str, value: bytes) -> set[str]:
        """Every device that was ever written ``value`` for ``deployment``."""
        return {w.device for w in self.writes(deployment) if w.value == value}

    def puts_per_device(self, deployment: str, value: bytes) -> Counter[str]:
        return Counter(w.device for w in self.writes(deployment) if w.value == value)
