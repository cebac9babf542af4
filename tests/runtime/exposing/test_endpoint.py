"""The HTTP port: /metrics parses, the probes answer 200 or 503 with their reason, it is
bounded (a few clients at a time, each with a timeout) and leaves no thread behind."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from fleet.runtime.prometheus.address import parse_address
from fleet.runtime.prometheus.endpoint import HttpEndpoint

pytestmark = pytest.mark.timeout(30)


class Checks:
    def __init__(self) -> None:
        self.alive: str | None = None
        self.ready: str | None = "initial sync not done"


@pytest.fixture
def checks() -> Checks:
    return Checks()


@pytest.fixture
def endpoint(checks: Checks) -> Iterator[HttpEndpoint]:
    registry = CollectorRegistry()
    Gauge("fleet_test_value", "a value", registry=registry).set(42)
    server = HttpEndpoint(
        host="127.0.0.1", port=0, registry=registry, alive=lambda: checks.alive,
        ready=lambda: checks.ready, max_clients=2, client_timeout=2.0,
    )  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(endpoint: HttpEndpoint, path: str) -> tuple[int, str, str]:
    host, port = endpoint.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_are_prometheus_text(endpoint: HttpEndpoint) -> None:
    status, content_type, body = get(endpoint, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    values = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert values["fleet_test_value"] == 42


def test_probes_answer_what_their_checks_say(endpoint: HttpEndpoint, checks: Checks) -> None:
    assert get(endpoint, "/healthz")[0::2] == (200, "ok\n")
    assert get(endpoint, "/readyz")[0::2] == (503, "initial sync not done\n")
    checks.ready = None
    assert get(endpoint, "/readyz")[0::2] == (200, "ok\n")
    checks.alive = "stopping"
    assert get(endpoint, "/healthz")[0::2] == (503, "stopping\n")
    assert get(endpoint, "/nothing")[0] == 404
    assert get(endpoint, "/readyz?verbose")[0] == 200  # a query is not part of the path


def test_a_failing_check_is_a_500_not_a_dead_server(endpoint: HttpEndpoint) -> None:
    registry = CollectorRegistry()

    def broken() -> str | None:
        raise RuntimeError("boom")

    server = HttpEndpoint(host="127.0.0.1", port=0, registry=registry, alive=broken,
                          ready=broken)  # fmt: skip
    server.start()
    try:
        status, _, body = get(server, "/healthz")
        assert (status, body) == (500, "RuntimeError: boom\n")
        assert get(server, "/metrics")[0] == 200
    finally:
        server.stop()


def test_idle_clients_beyond_the_limit_are_turned_away_then_time_out(
    endpoint: HttpEndpoint,
) -> None:
    host, port = endpoint.address
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both accepted: they hold the two slots, sending nothing
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(endpoint, "/healthz")  # closed at once, not queued behind them
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # their threads end (the peer closed, or the 2 s timeout): slots free
        try:
            if get(endpoint, "/healthz")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        assert time.monotonic() < deadline, "the slots were never given back"
        time.sleep(0.1)


def test_a_port_in_use_fails_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpEndpoint(host="127.0.0.1", port=port, registry=CollectorRegistry(),
                              alive=lambda: None, ready=lambda: None)  # fmt: skip
        with pytest.raises(OSError, match="in use"):
            server.start()
        server.stop()  # nothing started: nothing to stop


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9090", ("0.0.0.0", 9090)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:8080", ("::", 8080)),
        ("", None),
        ("off", None),
        ("OFF", None),
    ],
)
def test_addresses(text: str, parsed: tuple[str, int] | None) -> None:
    assert parse_address(text) == parsed


@pytest.mark.parametrize("text", ["8080", "host:http", "h:70000", "::1:8080", "h:-1"])
def test_bad_addresses_say_why(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|port|brackets"):
        parse_address(text)
