"""A score's file references resolved for one device: ConfigMap keys inlined, Secret keys
sealed to the device's key (files, ``secret_env`` variables, registry credentials).

Why it exists: a Deployment's ``files`` may name a ConfigMap or Secret key
(docs/workloads.md "Files"); what reaches the bus is the content (a ConfigMap's) or the
content sealed to the receiving device's enrollment key (a Secret's, docs/contracts.md
"Sealed values"), so the entry differs per device, like a templated one. :func:`resolve`
does that on a parsed score, given what the operator read (:class:`Sources`) and the
device's public key; whatever it cannot do (an object or key missing, no key known for
the device, a content over the size bound) is :class:`Unresolvable` naming the field,
and the device gets no entry (listed in the status with the reason, as ``unrenderable``).

Plain and synchronous; reading the objects is the caller's (the kube runtime).
What it must never do: put a Secret's value anywhere but inside a sealed envelope, or
into a message, a log line or an error.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import msgspec

from fleet.contracts.files import MAX_FILE_BYTES
from fleet.contracts.pull_auth import canonical_registry
from fleet.contracts.secret_env import MAX_SECRET_ENV_BYTES
from fleet.runtime.sealing import SealError, seal


class Unresolvable(ValueError):
    """A file of the score that cannot be given to this device (the message names it)."""


class Sources(Protocol):
    """The ConfigMaps and Secrets of the Deployment's namespace, as read (None: absent)."""

    def config_map(self, name: str) -> Mapping[str, str] | None: ...

    def secret(self, name: str) -> Mapping[str, bytes] | None: ...


PENDING_NOTE: Final = "not read yet"


class FileSourcesPort(Protocol):
    """The operator's reader of ConfigMaps, Secrets and device keys
    (:class:`fleet.runtime.kube.file_objects.FileObjects`); reads never block."""

    def need(
        self,
        owner: str,
        namespace: str,
        refs: set[tuple[Any, str]],
        on_change: Callable[[frozenset[str] | None], None],
    ) -> None: ...

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | object | None: ...

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | object | None: ...

    def device_key(self, device: str) -> str | None: ...


class _Namespace:
    """:class:`Sources` over one namespace of a :class:`FileSourcesPort`: an object not
    read yet is :class:`Unresolvable` (the device waits, its reason says so)."""

    def __init__(self, port: FileSourcesPort, namespace: str) -> None:
        self._port, self._namespace = port, namespace

    def config_map(self, name: str) -> Mapping[str, str] | None:
        got: Mapping[str, str] | None = self._read(
            self._port.config_map(self._namespace, name), "ConfigMap", name
        )
        return got

    def secret(self, name: str) -> Mapping[str, bytes] | None:
        got: Mapping[str, bytes] | None = self._read(
            self._port.secret(self._namespace, name), "Secret", name
        )
        return got

    @staticmethod
    def _read(got: object, kind: str, name: str) -> Any:
        if got is not None and not isinstance(got, Mapping):
            raise Unresolvable(f"{kind} {name!r} is {PENDING_NOTE} by the operator")
        return got


def resolver(
    port: FileSourcesPort, namespace: str
) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    """The per-device resolution of a Deployment in ``namespace`` (a renderer's hook)."""
    sources = _Namespace(port, namespace)

    def resolve_for(device: Any, tree: dict[str, Any]) -> dict[str, Any]:
        return resolve(tree, sources=sources, public_key=port.device_key(str(device)))

    return resolve_for


DOCKERCONFIGJSON: Final = "kubernetes.io/dockerconfigjson"
DOCKERCONFIG_KEY: Final = ".dockerconfigjson"
MAX_REGISTRY_AUTHS: Final = 16
_MARKERS: Final = (b'"config_map"', b'"secret"', b'"image_pull_secrets"')


def may_reference(source: bytes) -> bool:
    """A cheap test on a score's bytes: False means it names no ConfigMap or Secret."""
    return any(marker in source for marker in _MARKERS)


def has_references(tree: object) -> bool:
    """Whether a parsed score names a ConfigMap or Secret in some file."""
    return bool(references(tree))


def references(tree: object) -> list[tuple[str, str]]:
    """(kind, name) of every object the parsed score's files name, kind ``config_map``
    or ``secret``: what the operator must read (and watch) for it."""
    found: list[tuple[str, str]] = []
    pulls = tree.get("image_pull_secrets") if isinstance(tree, dict) else None
    for ref in pulls if isinstance(pulls, list) else ():
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            found.append(("secret", ref["name"]))
    for _, file in _files(tree):
        for kind in ("config_map", "secret"):
            ref = file.get(kind)
            if isinstance(ref, dict) and isinstance(ref.get("name"), str):
                found.append((kind, ref["name"]))
    for _, source in _secret_env(tree):
        ref = source.get("secret")
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            found.append(("secret", ref["name"]))
    return found


def _secret_env(tree: object) -> list[tuple[str, dict[str, Any]]]:
    """(where, source) of every ``secret_env`` variable of the parsed score."""
    out: list[tuple[str, dict[str, Any]]] = []
    containers = tree.get("containers") if isinstance(tree, dict) else None
    for c_index, container in enumerate(containers if isinstance(containers, list) else ()):
        env = container.get("secret_env") if isinstance(container, dict) else None
        for name, source in sorted(env.items()) if isinstance(env, dict) else ():
            if isinstance(source, dict):
                out.append((f"spec.score.containers[{c_index}].secret_env.{name}", source))
    return out


def _files(tree: object) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    containers = tree.get("containers") if isinstance(tree, dict) else None
    for c_index, container in enumerate(containers if isinstance(containers, list) else ()):
        files = container.get("files") if isinstance(container, dict) else None
        for f_index, file in enumerate(files if isinstance(files, list) else ()):
            if isinstance(file, dict):
                out.append((f"spec.score.containers[{c_index}].files[{f_index}]", file))
    return out


def resolve(tree: dict[str, Any], *, sources: Sources, public_key: str | None) -> dict[str, Any]:
    """A copy of the parsed score with every reference resolved for the device whose
    enrollment key is ``public_key`` (None: not known); :class:`Unresolvable` otherwise."""
    resolved = copy.deepcopy(tree)
    pulls = resolved.pop("image_pull_secrets", None)
    if isinstance(pulls, list) and pulls:
        resolved["registry_auth"] = _registry_auth(pulls, sources, public_key)
    for where, file in _files(resolved):
        if isinstance(file.get("config_map"), dict):
            ref = file.pop("config_map")
            data = sources.config_map(str(ref.get("name")))
            if data is None:
                raise Unresolvable(f"{where}.config_map: ConfigMap {ref.get('name')!r} not found")
            value = data.get(str(ref.get("key")))
            if value is None:
                raise Unresolvable(
                    f"{where}.config_map: ConfigMap {ref.get('name')!r} has no key "
                    f"{ref.get('key')!r}"
                )
            _bounded(len(value.encode()), f"{where}.config_map")
            file["content"] = value
        elif isinstance(file.get("secret"), dict):
            ref = file.pop("secret")
            raw = _secret_value(sources, ref, f"{where}.secret")
            _bounded(len(raw), f"{where}.secret")
            file["sealed"] = _sealed(raw, f"{where}.secret", public_key)
    for where, source in _secret_env(resolved):
        if isinstance(source.get("secret"), dict):
            ref = source.pop("secret")
            raw = _secret_value(sources, ref, f"{where}.secret")
            if len(raw) > MAX_SECRET_ENV_BYTES:
                raise Unresolvable(f"{where}.secret: the value is {len(raw)} bytes, at most "
                                   f"{MAX_SECRET_ENV_BYTES} allowed")  # fmt: skip
            if b"\0" in raw:
                raise Unresolvable(f"{where}.secret: the value holds a NUL byte, which an "
                                   "environment variable cannot")  # fmt: skip
            source["sealed"] = _sealed(raw, f"{where}.secret", public_key)
    return resolved


def _secret_value(sources: Sources, ref: dict[str, Any], what: str) -> bytes:
    """The value of a Secret's key; :class:`Unresolvable` (naming ``what``) if the
    Secret is missing, did not opt in, or lacks the key."""
    secret = sources.secret(str(ref.get("name")))
    if secret is None:
        raise Unresolvable(f"{what}: Secret {ref.get('name')!r} not found")
    _refused(secret, f"{what}: Secret {ref.get('name')!r}")
    raw = secret.get(str(ref.get("key")))
    if raw is None:
        raise Unresolvable(f"{what}: Secret {ref.get('name')!r} has no key {ref.get('key')!r}")
    return raw


def _sealed(raw: bytes, what: str, public_key: str | None) -> Any:
    """``raw`` sealed to the device's key, as JSON builtins; :class:`Unresolvable` if the
    device has no known key or it is not usable."""
    if public_key is None:
        raise Unresolvable(
            f"{what}: the device has no known enrollment key to seal it to "
            "(enroll it: docs/security.md)"
        )
    try:
        return msgspec.to_builtins(seal(raw, public_key=public_key))
    except SealError as exc:
        raise Unresolvable(f"{what}: cannot seal to the device's key: {exc}") from None


def _refused(secret: Mapping[str, bytes], what: str) -> None:
    """Unresolvable if the Secret did not opt in to delivery (the reader says why)."""
    refusal = getattr(secret, "refusal", "")
    if refusal:
        raise Unresolvable(f"{what} {refusal}")


def _registry_auth(
    pulls: list[Any], sources: Sources, public_key: str | None
) -> list[dict[str, Any]]:
    """Each registry of the named dockerconfigjson Secrets, its credential sealed."""
    found: dict[str, bytes] = {}
    for index, ref in enumerate(pulls):
        where = f"spec.score.image_pull_secrets[{index}]"
        name = str(ref.get("name")) if isinstance(ref, dict) else ""
        secret = sources.secret(name)
        if secret is None:
            raise Unresolvable(f"{where}: Secret {name!r} not found")
        _refused(secret, f"{where}: Secret {name!r}")
        kind = getattr(secret, "secret_type", DOCKERCONFIGJSON)
        raw = secret.get(DOCKERCONFIG_KEY)
        if kind != DOCKERCONFIGJSON or raw is None:
            raise Unresolvable(
                f"{where}: Secret {name!r} is not of type {DOCKERCONFIGJSON} with a "
                f"{DOCKERCONFIG_KEY} key (type {kind!r})"
            )
        for registry, credential in _parse_dockerconfig(raw, where).items():
            found.setdefault(registry, credential)  # the first Secret naming it wins
    if public_key is None:
        raise Unresolvable(
            "spec.score.image_pull_secrets: the device has no known enrollment key to seal "
            "the credentials to (enroll it: docs/security.md)"
        )
    out = []
    for registry, credential in sorted(found.items())[:MAX_REGISTRY_AUTHS]:
        try:
            sealed = seal(credential, public_key=public_key)
        except SealError as exc:
            why = f"spec.score.image_pull_secrets: cannot seal to the device's key: {exc}"
            raise Unresolvable(why) from None
        out.append({"registry": registry, "sealed": msgspec.to_builtins(sealed)})
    return out


def _parse_dockerconfig(raw: bytes, where: str) -> dict[str, bytes]:
    """``{"auths": {registry: {"auth": b64(user:pass)} | {"username", "password"}}}`` ->
    registry -> ``{"username", "password"}`` (JSON). Errors never quote the Secret."""
    try:
        config = msgspec.json.decode(raw[:MAX_FILE_BYTES]) if len(raw) <= MAX_FILE_BYTES else None
    except (msgspec.DecodeError, RecursionError):
        config = None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict) or not auths:
        raise Unresolvable(f"{where}: {DOCKERCONFIG_KEY} is not a docker config with auths")
    out: dict[str, bytes] = {}
    for key, entry in auths.items():
        registry = canonical_registry(str(key).removeprefix("https://").removeprefix("http://")
                                      .split("/", 1)[0])  # fmt: skip
        username, password = _credential(entry)
        if not registry or username is None or password is None:
            raise Unresolvable(
                f"{where}: {DOCKERCONFIG_KEY} auths[{str(key)[:60]!r}] has no username and "
                "password (nor an auth of user:password)"
            )
        out[registry] = msgspec.json.encode({"username": username, "password": password})
    return out


def _credential(entry: object) -> tuple[str | None, str | None]:
    if not isinstance(entry, dict):
        return None, None
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and user:
        return user, password
    auth = entry.get("auth")
    if isinstance(auth, str):
        try:
            user_, _, password_ = base64.b64decode(auth, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        if user_ and _:
            return user_, password_
    return None, None


def _bounded(size: int, where: str) -> None:
    if size > MAX_FILE_BYTES:
        raise Unresolvable(f"{where}: the value is {size} bytes, at most {MAX_FILE_BYTES} allowed")
