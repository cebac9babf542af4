"""One SSH connection to a device, run synchronously on a loop thread of its own.

Why it exists: device setup (:mod:`fleet.provisioning.setup`) is a sequence of commands on
a device, each checked before the next; asyncssh (a maintained SSH library, pure Python)
speaks SSH, and this wraps it so that setup reads as plain sequential code. The
connection authenticates with the fleet key only: no agent, no password, no
``~/.ssh/config``.

Host keys: with ``known_hosts`` None (the pool's throwaway VMs, whose keys are new on
each boot and whose ports are reused) nothing is checked. With a file (device setup's
default, ``$HARMONY_DATA_DIR/fleet/ssh/known_hosts``) a host seen for the first time is
recorded there, as OpenSSH's ``StrictHostKeyChecking=accept-new`` does, and a host whose
key changed since is refused (:class:`SshHostKeyChanged`).

What it must never do: hold more than :data:`MAX_OUTPUT` bytes of what a command prints
(the rest is read and dropped), wait without a bound, or put stdin's bytes (a config
with a token) on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncssh

from fleet.errors import ConfigError
from fleet.runtime.aiokit.loop import EventLoopThread

from .errors import SshFailed, SshHostKeyChanged, SshRefused, SshUnreachable

MAX_OUTPUT: Final = 1 << 20  # per stream of one command
CONNECT_TIMEOUT_S: Final = 30.0
LOGIN_TIMEOUT_S: Final = 60.0  # sshd under emulation, loaded, is slow to answer
KEEPALIVE_S: Final = 15.0
_USER: Final = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_IPV6: Final = re.compile(r"^(?=.*:)[0-9A-Fa-f:.]{2,45}$")


@dataclass(frozen=True)
class SshTarget:
    """``USER@HOST[:PORT]``: who to log in as, where."""

    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text: str, *, port: int | None = None) -> SshTarget:
        """``USER@HOST``, ``USER@HOST:PORT`` or ``USER@[V6ADDR]:PORT``; ``port`` overrides."""
        user, at, rest = text.partition("@")
        if not at or not _USER.fullmatch(user):
            raise ConfigError(
                f"{text[:80]!r} is not USER@HOST (USER a login name: lowercase letters, "
                "digits, '_' and '-')"
            )
        host, given = rest, None
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            if not _IPV6.fullmatch(host) or (tail and not tail.startswith(":")):
                raise ConfigError(f"{text[:80]!r}: write an IPv6 address as [ADDR]:PORT")
            if tail == ":":
                raise ConfigError(f"{text[:80]!r}: the port after ':' is missing")
            given = tail[1:] or None
        elif rest.count(":") == 1:
            host, given = rest.split(":")
        if not (_HOST.fullmatch(host) or (rest.startswith("[") and _IPV6.fullmatch(host))):
            raise ConfigError(f"{text[:80]!r}: {host[:80]!r} is not a host name or address")
        if given is not None and not (given.isascii() and given.isdigit() and len(given) <= 5):
            raise ConfigError(f"{text[:80]!r}: the port {given[:8]!r} is not a number")
        chosen = port if port is not None else int(given) if given else 22
        if not 0 < chosen < 65536:
            raise ConfigError(f"{text[:80]!r}: port {chosen} is out of range")
        # OpenSSH compares host names lowercased: so does the known-hosts check
        return cls(user=user, host=host.lower(), port=chosen)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + ("" if self.port == 22 else f":{self.port}")

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH's known_hosts names this host and port."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class Completed:
    """A command's exit status and (bounded) output."""

    code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def last_line(self) -> str:
        """The last line said (stderr first), shortened, anything unprintable (a device's
        escape sequences for the operator's terminal) as '?': for one-line errors."""
        for stream in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in stream.decode("utf-8", "replace").splitlines()]
            lines = [ln for ln in lines if ln]
            if lines:
                return "".join(c if c.isprintable() else "?" for c in lines[-1][:240])
        return f"exit status {self.code}"


class SshSession:
    """Commands on one open connection (:func:`open_session`); :meth:`close` when done."""

    def __init__(
        self,
        target: SshTarget,
        loop: EventLoopThread,
        conn: asyncssh.SSHClientConnection,
        *,
        host_key_recorded: bool,
    ) -> None:
        self.target = target
        self._loop = loop
        self._conn = conn
        self.host_key_recorded = host_key_recorded

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 300.0) -> Completed:
        """Run ``command`` (a shell line, run by the login shell), ``stdin`` fed to it."""
        try:
            return self._loop.run(self._run(command, stdin, timeout), timeout=timeout + 10)
        except TimeoutError as exc:
            raise SshFailed(
                f"{self.target}: a command did not finish within {timeout:.0f} s"
            ) from exc

    async def _run(self, command: str, stdin: bytes, timeout: float) -> Completed:
        try:
            async with asyncio.timeout(timeout):
                process = await self._conn.create_process(command, encoding=None)
                try:
                    process.stdin.write(stdin)
                    process.stdin.write_eof()
                    out, err = await asyncio.gather(
                        _read_bounded(process.stdout), _read_bounded(process.stderr)
                    )
                    done = await process.wait(check=False)
                finally:
                    process.close()
        except TimeoutError:
            raise SshFailed(
                f"{self.target}: a command did not finish within {timeout:.0f} s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise SshFailed(f"{self.target}: the connection broke: {_said(exc)}") from exc
        code = done.exit_status if done.exit_status is not None else 255
        return Completed(code=code, stdout=out, stderr=err)

    def close(self) -> None:
        async def closing() -> None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.wait_closed(), 5)

        with contextlib.suppress(Exception):
            self._loop.run(closing(), timeout=10)
        self._loop.stop()

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


async def _read_bounded(stream: Any) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < MAX_OUTPUT:
            kept += chunk[: MAX_OUTPUT - len(kept)]
    return bytes(kept)


def open_session(
    target: SshTarget,
    *,
    private_key: Path,
    known_hosts: Path | None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> SshSession:
    """Connect to ``target`` with ``private_key`` only (see the module for host keys)."""
    loop = EventLoopThread(name=f"ssh-{target.host}")
    loop.start()
    try:
        conn, recorded = loop.run(
            _connect(target, private_key, known_hosts, connect_timeout),
            timeout=connect_timeout + LOGIN_TIMEOUT_S + 15,
        )
    except TimeoutError as exc:
        loop.stop()
        raise SshUnreachable(
            f"{target}: no SSH answer within {connect_timeout + LOGIN_TIMEOUT_S:.0f} s "
            "(is the device on and sshd running?)"
        ) from exc
    except BaseException:
        loop.stop()
        raise
    return SshSession(target, loop, conn, host_key_recorded=recorded)


def _recorded(known_hosts: Path, name: str) -> bool:
    try:
        lines = known_hosts.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot read the known hosts file {known_hosts}: {exc}") from exc
    return any(name in line.split(maxsplit=1)[0].split(",") for line in lines if line.strip())


async def _connect(
    target: SshTarget, private_key: Path, known_hosts: Path | None, connect_timeout: float
) -> tuple[asyncssh.SSHClientConnection, bool]:
    if known_hosts is None:
        return await _connect_checked(target, private_key, None, connect_timeout)
    # check, connect and record under one lock: two first contacts at once (setups in
    # parallel) must not each record the key they saw
    try:
        known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = known_hosts.with_name(known_hosts.name + ".lock").open("a")
    except OSError as exc:
        raise ConfigError(f"cannot lock the known hosts file {known_hosts}: {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return await _connect_checked(target, private_key, known_hosts, connect_timeout)


async def _connect_checked(
    target: SshTarget, private_key: Path, known_hosts: Path | None, connect_timeout: float
) -> tuple[asyncssh.SSHClientConnection, bool]:
    check = known_hosts is not None and _recorded(known_hosts, target.known_hosts_name)
    try:
        key = asyncssh.read_private_key(str(private_key))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ConfigError(f"cannot read the SSH key {private_key}: {exc}") from exc
    try:
        conn = await asyncssh.connect(
            target.host, target.port, username=target.user, client_keys=[key],
            known_hosts=str(known_hosts) if check else None, agent_path=None,
            password=None, kbdint_auth=False, gss_auth=False, host_based_auth=False,
            config=None, preferred_auth="publickey", connect_timeout=connect_timeout,
            login_timeout=LOGIN_TIMEOUT_S, keepalive_interval=KEEPALIVE_S,
            keepalive_count_max=4,
        )  # fmt: skip
    except asyncssh.PermissionDenied as exc:
        raise SshRefused(
            f"{target} refused the fleet key {private_key}.pub: add it to "
            f"~{target.user}/.ssh/authorized_keys on the device (ssh-copy-id -i "
            f"{private_key}.pub {target}), or give the right user"
        ) from exc
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SshHostKeyChanged(
            f"{target}: the host key is not the one recorded in {known_hosts}: if the "
            f"device was reinstalled, remove its line ({target.known_hosts_name}) there; "
            "otherwise this may not be the device you meant"
        ) from exc
    except ValueError as exc:  # a known_hosts line asyncssh cannot read
        raise ConfigError(f"cannot read the known hosts file {known_hosts}: {exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise SshUnreachable(
            f"cannot reach {target}: {_said(exc)} (is the device on, the address and "
            "port right, and sshd running?)"
        ) from exc
    except asyncssh.Error as exc:
        raise SshFailed(f"{target}: SSH failed: {_said(exc)}") from exc
    recorded = False
    if known_hosts is not None and not check:
        host_key = conn.get_server_host_key()
        if host_key is not None:
            line = f"{target.known_hosts_name} {host_key.export_public_key().decode().strip()}\n"
            try:
                known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with known_hosts.open("a", encoding="utf-8") as file:
                    file.write(line)
            except OSError as exc:
                conn.close()
                raise ConfigError(f"cannot record the host key in {known_hosts}: {exc}") from exc
            recorded = True
    return conn, recorded


def _said(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", "") or exc or type(exc).__name__)
    return " ".join(text.split())[:200] or type(exc).__name__
