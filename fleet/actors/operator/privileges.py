"""A Deployment's privileges: what its score may ask beyond an ordinary container.

Why it exists: host network, host devices, added capabilities, privileged mode and host
paths (a volume's ``host_path``) reach outside the container (docs/security.md,
"Privileged workloads"). A score asks for none of them unless its Deployment says it
may, in ``spec.privileges`` (the CRD validates its shape): ``{hostNetwork: true,
devices: true, capabilities: true, privileged: true, hostPaths: true}``, each false when
left out, in the spirit of a Pod's ``securityContext``: nothing is allowed by default
and each grant is spelled out. A score that asks for more is ``InvalidSpec`` naming the
field, and no entry is written for it. The agent applies its own rule on the device
(its ``[policy] allow``), whatever an entry says.

Pure: no I/O. What it must never do: allow a privilege the spec did not name.
"""

from __future__ import annotations

from typing import Final

from fleet.errors import SpecError

from .selectors import shown

GRANTS: Final[dict[str, str]] = {
    "privileged": "privileged",
    "host_network": "hostNetwork",
    "devices": "devices",
    "cap_add": "capabilities",
    "host_path": "hostPaths",
}
"""A score's privileged container field -> the ``spec.privileges`` key that allows it."""


def parse_privileges(value: object) -> frozenset[str]:
    """``spec.privileges`` -> the score fields it allows; :class:`SpecError` if malformed."""
    if value is None:
        return frozenset()
    if not isinstance(value, dict):
        raise SpecError(f"spec.privileges must be an object, got {shown(value)}")
    allowed = set()
    by_key = {key: field for field, key in GRANTS.items()}
    for key, on in value.items():
        if key not in by_key:
            known = ", ".join(sorted(by_key))
            raise SpecError(f"spec.privileges.{key}: unknown privilege (known: {known})")
        if not isinstance(on, bool):
            raise SpecError(f"spec.privileges.{key} must be true or false, got {shown(on)}")
        if on:
            allowed.add(by_key[key])
    return frozenset(allowed)


def check_privileges(score: object, allowed: frozenset[str]) -> None:
    """:class:`SpecError` naming the first privileged field of ``score`` (a Deployment's
    ``spec.score``, validated already) that ``allowed`` lacks."""
    containers = score.get("containers") if isinstance(score, dict) else None
    for index, container in enumerate(containers if isinstance(containers, list) else ()):
        if not isinstance(container, dict):
            continue
        for field, key in GRANTS.items():
            for path in _asked(container, field):
                if field not in allowed:
                    raise SpecError(
                        f"spec.score.containers[{index}].{path} is a privilege this "
                        f"Deployment is not allowed: set spec.privileges.{key}: true to allow it"
                    )


def _asked(container: dict[str, object], field: str) -> list[str]:
    """Where ``container`` asks for the privilege ``field`` (a path in the container)."""
    if field != "host_path":
        return [field] if container.get(field) else []
    volumes = container.get("volumes")
    return [
        f"volumes[{index}].host_path"
        for index, volume in enumerate(volumes if isinstance(volumes, list) else ())
        if isinstance(volume, dict) and volume.get("host_path")
    ]
