"""The ConfigMaps and Secrets Deployments' files name, read and kept fresh for the operator.

Why it exists: a score's ``files`` may name a ConfigMap or Secret key in the Deployment's
namespace (docs/workloads.md "Files"). The operator needs their data to give each device
its files, without blocking an actor on the API and with the least RBAC: ``get`` on
configmaps and secrets (no list, no watch: a watch on Secrets would hand the operator
every Secret of the namespace). So a Deployment says which objects it needs
(:meth:`FileObjects.need`); one thread GETs them, then again every ``interval`` seconds;
a change (an object appears, goes, or its data changes) calls that Deployment's
``on_change`` (the actor re-renders its targets). A changed ConfigMap reaches devices
within ``interval`` (10 s by default) plus a write.

Reads (:meth:`config_map`, :meth:`secret`) are dict lookups under a lock, from any
thread. Bounded: an object's data is read with the client's bounded decoder and at most
:data:`MAX_OBJECT_BYTES`; Secret values are base64-decoded here and kept only in
memory.

A Secret is delivered only if it opts in: labelled ``fleet.nationtech.io/deliver:
"true"`` (:data:`DELIVER_LABEL`), and never a service account token, whatever its labels.
Otherwise any author of a Deployment could have the operator (which may ``get`` every
Secret) hand them a Secret of the namespace they cannot read themselves. A refused
Secret's values are dropped as soon as read; only why it is refused is kept
(:attr:`SecretData.refusal`), for the Deployment's condition.

What it must never do: log or put in an error a Secret's value; read an object no
Deployment named; list or watch Secrets; keep the values of a Secret that did not opt in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import kubernetes.client

from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.decode import decode_loose
from fleet.runtime.kube.errors import KubeNotFound, translate

logger = logging.getLogger(__name__)

Kind = Literal["config_map", "secret"]
MAX_OBJECT_BYTES: Final = 1024 * 1024
"""Kubernetes' own bound on a ConfigMap or Secret."""
DELIVER_LABEL: Final = "fleet.nationtech.io/deliver"
"""The label (value ``"true"``) by which a Secret's owner lets the operator deliver it."""
SERVICE_ACCOUNT_TOKEN: Final = "kubernetes.io/service-account-token"
MAX_BACKOFF: Final = 300.0
"""Seconds: an object whose read fails is tried again after ``interval``, doubling up to
this (a Secret forbidden or malformed is not read again every round)."""
PENDING: Final = object()
"""Not read yet (distinct from None: read, and absent)."""
_Key = tuple[Kind, str, str]  # kind, namespace, name


class FileObjects:
    """See the module doc. ``start`` and ``stop`` from one thread; the rest from any."""

    def __init__(
        self,
        client: KubeClient,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._failing: dict[_Key, tuple[float, float]] = {}  # key: (retry at, delay)
        self._core = kubernetes.client.CoreV1Api(client.api_client)
        self._timeout = client.timeout
        self._interval = interval
        self._lock = threading.Condition()
        self._data: dict[_Key, dict[str, Any] | None] = {}
        self._digests: dict[_Key, str] = {}
        self._needs: dict[str, tuple[frozenset[_Key], Callable[[frozenset[str] | None], None]]] = {}
        self._keys: dict[str, str] = {}
        self._stopping = False
        self._asked = False
        self._thread: threading.Thread | None = None

    # -- what Deployments need -------------------------------------------------------

    def need(
        self,
        owner: str,
        namespace: str,
        refs: set[tuple[Kind, str]],
        on_change: Callable[[frozenset[str] | None], None],
    ) -> None:
        """``owner`` (a Deployment) needs these objects of ``namespace`` (empty: none)."""
        keys = frozenset((kind, namespace, name) for kind, name in refs)
        with self._lock:
            if not keys:
                self._needs.pop(owner, None)
            else:
                if self._needs.get(owner, (None,))[0] != keys:
                    self._asked = True  # new objects: read them now, not in `interval`
                self._needs[owner] = (keys, on_change)
            self._lock.notify()

    # -- device keys (from the Device resources enrollment watches) --------------------

    def set_keys(self, keys: Mapping[str, str], *, listed: bool = False) -> None:
        """Devices' enrollment public keys ("" or absent: none); ``listed``: all there
        are. A change tells every Deployment that needs a Secret which devices' keys
        changed: only their entries are sealed again."""
        with self._lock:
            before = dict(self._keys)
            if listed:
                self._keys = {}
            for device, key in keys.items():
                if key:
                    self._keys[device] = key
                else:
                    self._keys.pop(device, None)
            changed = frozenset(
                d for d in before.keys() | self._keys.keys() if before.get(d) != self._keys.get(d)
            )
            callbacks = [cb for keys_, cb in self._needs.values() if changed and any(
                k[0] == "secret" for k in keys_)]  # fmt: skip
        for callback in callbacks:
            _tell(callback, changed)

    def device_key(self, device: str) -> str | None:
        with self._lock:
            return self._keys.get(device)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | object | None:
        return self._get(("config_map", namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | object | None:
        return self._get(("secret", namespace, name))

    def _get(self, key: _Key) -> object:
        with self._lock:
            return self._data.get(key, PENDING)

    # -- the reading thread ----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="file-objects", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def refresh(self) -> None:
        """Read every needed object now (and tell who needs a changed one)."""
        with self._lock:
            needs = dict(self._needs)
        wanted = {key for keys, _ in needs.values() for key in keys}
        changed: set[_Key] = set()
        for key in sorted(wanted):
            now = self._clock()
            failing = self._failing.get(key)
            if failing is not None and now < failing[0]:
                continue  # failed lately: tried again after its backoff, not every round
            try:
                data = self._read(key)
            except Exception as exc:  # kept as it was; retried after a backoff
                delay = min(MAX_BACKOFF, 2 * failing[1] if failing else self._interval)
                self._failing[key] = (now + delay, delay)
                logger.warning("reading %s %s/%s (again in %gs): %s", key[0], key[1], key[2],
                               delay, exc)  # fmt: skip
                continue
            self._failing.pop(key, None)
            digest = _digest(data)
            with self._lock:
                if self._digests.get(key) != digest or key not in self._data:
                    changed.add(key)
                self._data[key], self._digests[key] = data, digest
        with self._lock:
            for key in [k for k in self._data if k not in wanted]:
                self._data.pop(key, None)
                self._digests.pop(key, None)
            for key in [k for k in self._failing if k not in wanted]:
                self._failing.pop(key, None)
        for keys, on_change in needs.values():
            if keys & changed:
                _tell(on_change, None)

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a bug: logged, and the next round tries again
                logger.exception("reading the objects Deployments' files name failed")
            with self._lock:
                self._lock.wait_for(lambda: self._stopping or self._asked, timeout=self._interval)
                self._asked = False
                if self._stopping:
                    return

    def _read(self, key: _Key) -> dict[str, Any] | None:
        kind, namespace, name = key
        what = f"get {kind} {namespace}/{name}"
        fn: Callable[..., Any] = (
            self._core.read_namespaced_config_map
            if kind == "config_map"
            else self._core.read_namespaced_secret
        )
        try:
            resp = fn(name, namespace, _preload_content=False, _request_timeout=self._timeout)
            body = resp.read(MAX_OBJECT_BYTES + 1)
            resp.release_conn()
        except Exception as exc:  # translated: not found is an answer
            error = translate(exc, what=what)
            if isinstance(error, KubeNotFound):
                return None
            raise error from exc
        if len(body) > MAX_OBJECT_BYTES:
            raise ValueError(f"{what}: larger than {MAX_OBJECT_BYTES} bytes")
        decoded = decode_loose(body)
        obj: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        data = obj.get("data")
        if not isinstance(data, dict):
            data = {}
        if kind == "config_map":
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
        values = SecretData()
        kind_ = obj.get("type")
        values.secret_type = kind_ if isinstance(kind_, str) else ""
        values.refusal = _refusal(obj, values.secret_type)
        if values.refusal:
            return values  # its values are not kept
        for k, v in data.items():
            if isinstance(v, str):
                try:
                    values[str(k)] = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    continue  # not base64: the key is as good as missing
        return values


def _refusal(obj: dict[str, Any], secret_type: str) -> str:
    """Why this Secret may not be delivered ("" if it may)."""
    if secret_type == SERVICE_ACCOUNT_TOKEN:
        return f"is a {SERVICE_ACCOUNT_TOKEN}, which is never delivered"
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not isinstance(labels, dict) or labels.get(DELIVER_LABEL) != "true":
        return (
            f'is not labelled {DELIVER_LABEL}: "true" (only Secrets that opt in are '
            "delivered: docs/security.md)"
        )
    return ""


def _tell(
    callback: Callable[[frozenset[str] | None], None], devices: frozenset[str] | None
) -> None:
    """Call a Deployment's ``on_change`` (``devices``: whose keys changed; None: an
    object did); one that stopped meanwhile is not an error."""
    try:
        callback(devices)
    except Exception:  # an actor that stopped (pykka's ActorDeadError), or a bug
        logger.debug("a Deployment could not be told its files changed", exc_info=True)


class SecretData(dict[str, bytes]):
    """A Secret's values (decoded), its ``type`` (``kubernetes.io/dockerconfigjson``), and
    why it may not be delivered (``refusal``; then it holds no values)."""

    secret_type: str = ""
    refusal: str = ""


def _digest(data: Mapping[str, Any] | None) -> str:
    if data is None:
        return "absent"
    digest = hashlib.sha256()
    for k in sorted(data):
        v = data[k]
        digest.update(k.encode() + b"\0" + (v if isinstance(v, bytes) else str(v).encode()) + b"\0")
    digest.update(getattr(data, "refusal", "").encode())  # a label added or removed: a change
    return digest.hexdigest()
