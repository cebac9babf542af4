"""The real :class:`~fleet.runtime.podman.port.ContainerRuntime`: podman's REST API via podman-py.

Why it exists: it is the one place that speaks to the podman service (its unix socket
or any URL podman-py accepts). It uses the libpod endpoints directly through
podman-py's ``APIClient`` because the higher-level helpers hide errors (a failed pull
returns an empty image) and the agent must tell "registry unreachable" from "image
does not exist" from "port taken".

Blocking by nature: every call runs on the calling thread (an actor's own thread),
never on the event loop. Each thread gets its own HTTP session (``requests`` sessions
are not meant to be shared between threads).

Every value put in a REST path (an image reference, a container id or name) goes
through :func:`path_segment`: one path segment, whatever it holds. podman-py joins
paths with ``urljoin``, which resolves ``..``, and ``requests`` follows the redirect
podman answers to an unclean path; an unescaped ``x/../../../containers/NAME`` once
answered ``/images/{image}/exists`` for a container. Redirects are refused as well.

What it must never do: touch a container without the labels the caller asked for, or
put an unescaped value in a path.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import podman
import podman.errors

from fleet.contracts import ContainerSpec
from fleet.runtime.podman.events import PodmanEventStream
from fleet.runtime.podman.log_stream import PodmanLogFollower
from fleet.runtime.podman.logs import read_log_lines
from fleet.runtime.podman.port import (
    Container,
    ContainerEvent,
    ContainerFailed,
    ImagePullFailed,
    NotAddressable,
    RuntimeUnavailable,
)
from fleet.runtime.podman.specgen import extra_fields

_JSON = {"Content-Type": "application/json"}
_NOT_FOUND = ("manifest unknown", "not found", "name unknown", "invalid reference format")
_RFC3339 = re.compile(r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?Z$")


def _unix_time(value: object) -> float | None:
    """podman's list gives unix seconds; a time before 1970 (Go's zero time) is "never"."""
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _rfc3339_time(value: object) -> float | None:
    """podman's inspect gives RFC 3339 with nanoseconds; Go's zero time is "never"."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    match = _RFC3339.match(value)
    if match is None:
        return None
    try:
        when = dt.datetime.fromisoformat(match["base"]).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return when.timestamp() + float("0." + (match["frac"] or "0"))


def path_segment(value: str) -> str:
    """``value`` as exactly one REST path segment: every reserved character escaped,
    and '.' too, so that ``urljoin`` reads no dot segment. ``requests`` unescapes '.'
    again before sending, so a value that *is* a dot segment (or empty) is refused."""
    if value in ("", ".", ".."):
        raise NotAddressable(f"{value!r} cannot be put in a podman REST path")
    return urllib.parse.quote(value, safe="").replace(".", "%2E")


def _message(response: Any) -> str:
    try:
        body = response.json()
        if not isinstance(body, dict):
            return str(response.text)[:500]
        return str(body.get("message") or body.get("cause") or response.text)
    except ValueError:
        return str(response.text)


class PodmanRuntime:
    """The container runtime over a podman service URL (``unix:///run/podman/podman.sock``)."""

    def __init__(self, *, url: str, timeout: float = 30.0) -> None:
        self._url = url
        self._timeout = timeout
        self._local = threading.local()

    def _api(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = podman.PodmanClient(base_url=self._url, timeout=self._timeout)
            client.api.max_redirects = 0  # a redirect means a path we did not mean
            self._local.client = client
        return client.api

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._api(), method)(path, **kwargs)
        except podman.errors.APIError as exc:
            raise RuntimeUnavailable(
                f"podman service at {self._url} unreachable ({method.upper()} {path}): {exc}",
                delay=1.0,
            ) from exc
        except OSError as exc:
            raise RuntimeUnavailable(f"podman service at {self._url}: {exc}") from exc

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def version(self) -> tuple[str, str]:
        response = self._call("get", "/version")
        return "podman", str(response.json().get("Version", "unknown"))

    def storage_roots(self) -> list[str]:
        response = self._call("get", "/info")
        if not response.ok:
            raise RuntimeUnavailable(f"asking podman for its storage: {_message(response)[:300]}")
        info = _json_answer(response, what="asking podman for its storage")
        store = info.get("store") if isinstance(info, dict) else None
        roots = [store.get(k) for k in ("graphRoot", "runRoot", "volumePath")] if isinstance(
            store, dict) else []  # fmt: skip
        found = [r for r in roots if isinstance(r, str) and r.startswith("/")]
        if not found:
            raise RuntimeUnavailable("asking podman for its storage: no graphRoot in /info")
        return found

    def list_containers(self, *, labels: Mapping[str, str]) -> list[Container]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        response = self._call("get", "/containers/json", params={"all": True, "filters": filters})
        if not response.ok:
            raise RuntimeUnavailable(f"listing containers: {_message(response)}")
        return [
            Container(
                id=item["Id"],
                name=(item.get("Names") or [""])[0],
                labels=dict(item.get("Labels") or {}),
                state=str(item.get("State", "unknown")),
                exit_code=item.get("ExitCode"),
                started_at=str(item.get("StartedAt", "")),
                exited_at=_unix_time(item.get("ExitedAt")),
            )
            for item in response.json() or []
        ]

    def image_present(self, image: str) -> bool:
        response = self._call("get", f"/images/{path_segment(image)}/exists")
        return bool(response.status_code == 204)

    def pull(self, image: str, *, timeout: float, auth: Mapping[str, str] | None = None) -> None:
        headers = {}
        if auth is not None:  # this pull only: podman keeps it nowhere (no auth.json)
            token = json.dumps({"username": auth["username"], "password": auth["password"]})
            headers["X-Registry-Auth"] = base64.urlsafe_b64encode(token.encode()).decode()
        response = self._call(
            "post",
            "/images/pull",
            params={"reference": image, "policy": "always", "quiet": True},
            headers=headers,
            timeout=timeout,
        )
        if not response.ok:
            message = _message(response)
            raise ImagePullFailed(
                f"pulling {image}: {message}",
                not_found=any(s in message for s in _NOT_FOUND),
            )
        for line in reversed(response.text.splitlines()):
            item = json.loads(line) if line.strip() else {}
            if "error" in item:
                error = str(item["error"])
                raise ImagePullFailed(
                    f"pulling {image}: {error}", not_found=any(s in error for s in _NOT_FOUND)
                )
            if "id" in item:
                return
        raise ImagePullFailed(f"pulling {image}: podman reported neither an image nor an error")

    def create(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        labels: Mapping[str, str],
        mounts: Sequence[tuple[str, str]] = (),
        secret_env: Mapping[str, str] | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "name": name,
            "image": spec.image,
            "labels": dict(labels),
            "env": dict(spec.env or {}),
            "restart_policy": spec.restart_policy,
            "portmappings": [
                {
                    "host_port": p.host_port,
                    "container_port": p.container_port,
                    "protocol": p.protocol,
                }
                for p in spec.ports or ()
            ],
        }
        if spec.command is not None:
            body["command"] = list(spec.command)
        body.update(extra_fields(spec, labels))
        if mounts:  # the score's files, written by the agent (container_files)
            body["mounts"] = body.get("mounts", []) + [
                {"Type": "bind", "Source": source, "Destination": target,
                 "Options": ["ro", "rbind"]}
                for source, target in mounts
            ]  # fmt: skip
        if secret_env:  # podman secrets (ensure_secret): the values are not in this body
            body["secret_env"] = dict(secret_env)
        response = self._call("post", "/containers/create", data=json.dumps(body), headers=_JSON)
        if not response.ok:
            raise ContainerFailed(f"podman could not create container {name}: {_message(response)}")
        return str(response.json()["Id"])

    def ensure_secret(self, name: str, *, data: bytes, labels: Mapping[str, str]) -> None:
        found = self._secret_labels(name)
        if found is None:
            response = self._call(
                "post", "/secrets/create",
                params={"name": name, "driver": "file", "labels": json.dumps(dict(labels))},
                data=data,
            )  # fmt: skip
            if response.ok:
                return
            if "in use" not in _message(response):  # never the value: podman's words only
                raise ContainerFailed(f"podman could not create secret {name}: "
                                      f"{_message(response)[:300]}")  # fmt: skip
            found = self._secret_labels(name)  # made meanwhile (another pass): check it
        differ = sorted(k for k, v in labels.items() if (found or {}).get(k) != v)
        if differ:
            raise ContainerFailed(
                f"secret {name} exists but is not this deployment's (its {differ[0]} label "
                f"is {str((found or {}).get(differ[0]))[:80]!r}, not {labels[differ[0]]!r})"
            )

    def _secret_labels(self, name: str) -> dict[str, str] | None:
        """The labels of secret ``name``; None if it does not exist."""
        response = self._call("get", f"/secrets/{path_segment(name)}/json")
        if response.status_code == 404:
            return None
        if not response.ok:
            raise RuntimeUnavailable(f"inspecting secret {name}: {_message(response)[:300]}")
        found = _json_answer(response, what=f"inspecting secret {name}")
        spec = found.get("Spec") if isinstance(found, dict) else None
        marks = spec.get("Labels") if isinstance(spec, dict) else None
        return {str(k): str(v) for k, v in marks.items()} if isinstance(marks, dict) else {}

    def list_secrets(self, *, prefix: str) -> list[tuple[str, dict[str, str]]]:
        response = self._call("get", "/secrets/json")
        if not response.ok:
            raise RuntimeUnavailable(f"listing secrets: {_message(response)[:300]}")
        answer = _json_answer(response, what="listing secrets") or []
        if not isinstance(answer, list):
            raise RuntimeUnavailable("listing secrets: podman answered something not a list")
        found: list[tuple[str, dict[str, str]]] = []
        for item in answer:
            spec = item.get("Spec") if isinstance(item, dict) else None
            name = spec.get("Name") if isinstance(spec, dict) else None
            if not isinstance(name, str):
                raise RuntimeUnavailable("listing secrets: an entry without a Name")
            if name.startswith(prefix):
                # podman 4's list leaves the labels out: read them from each one
                labels = self._secret_labels(name)
                if labels is not None:
                    found.append((name, labels))
        return found

    def remove_secret(self, name: str) -> None:
        response = self._call("delete", f"/secrets/{path_segment(name)}")
        if not response.ok and response.status_code != 404:
            raise ContainerFailed(
                f"podman could not remove secret {name}: {_message(response)[:300]}"
            )

    def ensure_volume(self, name: str, *, labels: Mapping[str, str]) -> None:
        exists = self._call("get", f"/volumes/{path_segment(name)}/exists")
        if exists.status_code == 204:
            self._check_volume_owner(name, labels=labels)
            return
        body = json.dumps({"Name": name, "Label": dict(labels)})
        response = self._call("post", "/volumes/create", data=body, headers=_JSON)
        if not response.ok and "already exists" not in _message(response):
            raise ContainerFailed(f"podman could not create volume {name}: {_message(response)}")

    def _check_volume_owner(self, name: str, *, labels: Mapping[str, str]) -> None:
        """A volume of that name made for another deployment (or by hand) is not ours."""
        response = self._call("get", f"/volumes/{path_segment(name)}/json")
        if not response.ok:
            raise RuntimeUnavailable(f"inspecting volume {name}: {_message(response)}")
        found = _json_answer(response, what=f"inspecting volume {name}")
        have = found.get("Labels") if isinstance(found, dict) else None
        have = have if isinstance(have, dict) else {}
        differ = sorted(k for k, v in labels.items() if have.get(k) != v)
        if differ:
            raise ContainerFailed(
                f"volume {name} exists but is not this deployment's (its {differ[0]} label "
                f"is {str(have.get(differ[0]))[:80]!r}, not {labels[differ[0]]!r})"
            )

    def list_volumes(self, *, labels: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})
        response = self._call("get", "/volumes/json", params={"filters": filters})
        if not response.ok:
            raise RuntimeUnavailable(f"listing volumes: {_message(response)}")
        answer = _json_answer(response, what="listing volumes") or []
        if not isinstance(answer, list):
            raise RuntimeUnavailable("listing volumes: podman answered something not a list")
        found: list[tuple[str, dict[str, str]]] = []
        for v in answer:
            name = v.get("Name") if isinstance(v, dict) else None
            if not isinstance(name, str):
                raise RuntimeUnavailable("listing volumes: an entry without a Name")
            marks = v.get("Labels") or {}
            if not isinstance(marks, dict):
                raise RuntimeUnavailable(f"listing volumes: {name}'s Labels is not an object")
            found.append((name, {str(k): str(x) for k, x in marks.items()}))
        return [(n, lb) for n, lb in found if all(lb.get(k) == v for k, v in labels.items())]

    def remove_volume(self, name: str) -> None:
        response = self._call("delete", f"/volumes/{path_segment(name)}")
        if not response.ok and response.status_code != 404:
            raise ContainerFailed(f"podman could not remove volume {name}: {_message(response)}")

    def health(self, container_id: str, *, timeout: float) -> str | None:
        """Run the container's health check now; its status after (healthy, unhealthy,
        starting), or None when it has none or is gone."""
        path = f"/containers/{path_segment(container_id)}"
        response = self._call(  # this run's result only...
            "get", f"{path}/healthcheck", timeout=timeout + self._timeout
        )
        if not response.ok:  # 404 gone, 409 no check defined
            return None
        response = self._call("get", f"{path}/json")  # ...the verdict, retries and start
        if not response.ok:  # period applied, is the container's
            return None
        found = _json_answer(response, what="inspecting the container")
        state = (found.get("State") if isinstance(found, dict) else None) or {}
        health = (
            (state.get("Health") or state.get("Healthcheck")) if isinstance(state, dict) else None
        ) or {}
        status = health.get("Status") if isinstance(health, dict) else None
        return str(status) if status in ("healthy", "unhealthy", "starting") else None

    def start(self, container_id: str) -> None:
        response = self._call("post", f"/containers/{path_segment(container_id)}/start")
        if not response.ok:
            raise ContainerFailed(f"podman could not start the container: {_message(response)}")

    def stop(self, container_id: str, *, timeout: float) -> None:
        response = self._call(
            "post",
            f"/containers/{path_segment(container_id)}/stop",
            params={"timeout": int(timeout)},
            timeout=timeout + self._timeout,
        )
        if not response.ok and response.status_code != 404:
            raise ContainerFailed(f"podman could not stop the container: {_message(response)}")

    def remove(self, container_id: str) -> None:
        response = self._call(
            "delete",
            f"/containers/{path_segment(container_id)}",
            params={"force": True, "timeout": 0},
        )
        if not response.ok and response.status_code != 404:
            raise ContainerFailed(f"podman could not remove the container: {_message(response)}")

    def rename(self, container_id: str, name: str) -> None:
        response = self._call(
            "post", f"/containers/{path_segment(container_id)}/rename", params={"name": name}
        )
        if not response.ok:
            raise ContainerFailed(
                f"podman could not rename the container to {name}: {_message(response)}"
            )

    def logs(self, container_id: str, *, tail: int) -> list[str]:
        response = self._call(
            "get",
            f"/containers/{path_segment(container_id)}/logs",
            params={"stdout": True, "stderr": True, "tail": int(tail)},
        )
        if response.status_code == 404:
            return []
        if not response.ok:
            raise RuntimeUnavailable(f"logs of {container_id}: {_message(response)}")
        return read_log_lines(response.content, tail=tail)

    def open_logs(
        self, container_id: str, *, tail: int, follow: bool, max_lines: int
    ) -> PodmanLogFollower:
        """The container's output on a thread of its own (:mod:`.log_stream`)."""
        path = f"/containers/{path_segment(container_id)}/logs"
        follower = PodmanLogFollower(
            client=podman.PodmanClient(base_url=self._url, timeout=None if follow else 30),
            path=path, tail=tail, follow=follow, max_lines=max_lines,
        )  # fmt: skip
        follower.start()
        return follower

    def inspect(self, container_id: str) -> Container | None:
        response = self._call("get", f"/containers/{path_segment(container_id)}/json")
        if response.status_code == 404:
            return None
        if not response.ok:
            raise RuntimeUnavailable(f"inspecting {container_id}: {_message(response)}")
        item = response.json()
        state = item.get("State") or {}
        return Container(
            id=item["Id"],
            name=str(item.get("Name", "")),
            labels=dict((item.get("Config") or {}).get("Labels") or {}),
            state=str(state.get("Status", "unknown")),
            exit_code=state.get("ExitCode"),
            started_at=str(state.get("StartedAt", "")),
            restart_count=int(item.get("RestartCount") or 0),
            exited_at=_rfc3339_time(state.get("FinishedAt")),
        )

    def events(
        self,
        *,
        labels: Mapping[str, str],
        on_event: Callable[[ContainerEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> PodmanEventStream:
        stream = PodmanEventStream(
            client=podman.PodmanClient(base_url=self._url, timeout=None),
            labels=labels,
            on_event=on_event,
            on_error=on_error,
        )
        stream.start()
        return stream


def _json_answer(response: Any, *, what: str) -> Any:
    """The JSON body of a podman answer; one that is not JSON: podman unusable."""
    try:
        return response.json()
    except ValueError as exc:
        raise RuntimeUnavailable(f"{what}: podman answered something not JSON") from exc
