"""The two ports the enrollment rules work through: the resources, and the authority.

Unlike :mod:`fleet.actors.operator.ports`, these block: the rules that use them run on
the enrollment desk's worker threads (``desk.py``), never on an actor's thread or the
loop. Implemented by :class:`fleet.runtime.kube.enrollment_store.KubeEnrollmentStore`
and :class:`fleet.runtime.nats.signer.DeviceSigner`; unit tests pass small fakes.

What it must never do: grow a method that decides anything (the rules decide).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fleet.runtime.kube.enrollment_store import EnrollmentRecord, TokenRecord


class EnrollmentStorePort(Protocol):
    def get_request(self, name: str) -> EnrollmentRecord | None: ...

    def list_requests(self) -> list[EnrollmentRecord]: ...

    def count_pending(self) -> int: ...

    def create_request(self, name: str, spec: Mapping[str, Any]) -> None:
        """Create it, status Pending; ``KubeConflict`` if it exists."""
        ...

    def set_status(self, name: str, status: Mapping[str, Any]) -> None: ...

    def get_token(self, name: str) -> TokenRecord | None: ...

    def consume_token(self, token: TokenRecord, device_id: str) -> None:
        """One use, only if ``token`` is unchanged since read (``KubeConflict``)."""
        ...

    def device_key(self, name: str) -> str | None:
        """The Device's key ("" unbound; None: no Device)."""
        ...

    def device_names(self) -> set[str]: ...

    def bind_device(
        self, name: str, *, device_id: str, public_key: str, labels: Mapping[str, str]
    ) -> None:
        """Record the key and the approved labels in the Device (labels only when it is
        first bound: a person may have changed them since); ``KubeConflict`` if bound to
        another key."""
        ...


class SignerPort(Protocol):
    def device_jwt(self, device_id: str, public_key: str, *, expires_in: float) -> tuple[str, str]:
        """(JWT, expiry RFC 3339)."""
        ...

    def revoked(self, public_key: str) -> bool: ...

    def revoke(self, public_key: str) -> None:
        """Written down, then pushed to the server."""
        ...

    def revoke_quietly(self, public_keys: list[str]) -> int: ...

    def push(self) -> None: ...
