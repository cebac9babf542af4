"""libvirt's Python binding behind :class:`~.port.VirtualMachines`.

Why it exists: the only module that talks to libvirtd. Every call runs on one worker
thread of its own and is bounded by ``timeout`` (a libvirtd that hangs becomes
:class:`~.port.LibvirtUnavailable`, and the connection is opened anew on the next call).
Domains are rendered by :mod:`.domain_xml`: domain type ``kvm`` only where the CPU can
(``vmx``/``svm`` in /proc/cpuinfo and libvirt offers ``kvm``), else ``qemu`` (plain
emulation, TCG), and :meth:`LibvirtMachines.version` says which.

Guests get user-mode networking only. libvirt 9.0 forwards ports of a user-mode interface
only with the ``passt`` backend, so the port forwards are handed to qemu directly
(``-netdev user,hostfwd=tcp:127.0.0.1:H-:G``, the domain XML's ``qemu:commandline``). qemu
then accepts on the host side before the guest does, so whether a guest port *answers*
is read from qemu's own table of user-mode connections (``info usernet``).

What it must never do: touch a domain whose name is not the agent's, or bind a forward to
anything but 127.0.0.1.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import libvirt
import libvirt_qemu

from . import domain_xml, events
from .port import (
    Domain,
    DomainEvent,
    DomainFailed,
    DomainSpec,
    DomainState,
    LibvirtUnavailable,
    device_prefix,
    parse_name,
)

logger = logging.getLogger(__name__)

DEFAULT_URI: Final = "qemu:///system"
T = TypeVar("T")

_STATES: Final[dict[int, DomainState]] = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
}
_ACTIONS: Final = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
_NO_DOMAIN: Final = (libvirt.VIR_ERR_NO_DOMAIN,)
_USERNET_LINE: Final = re.compile(
    r"TCP\[(?P<state>[A-Z_]+)\]\s+\d+\s+\S+\s+(?P<host>\d+)\s+\S+\s+(?P<guest>\d+)"
)


def _hardware_virtualization() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return re.search(r"\b(vmx|svm)\b", flags) is not None


class LibvirtMachines:
    """:class:`~.port.VirtualMachines` over one libvirtd (``uri``)."""

    def __init__(self, *, uri: str = DEFAULT_URI, timeout: float = 30.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self._conn: libvirt.virConnect | None = None
        self._pool = _worker()
        self._domain_type: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the worker thread ---------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        with self._lock:
            pool = self._pool
        future = pool.submit(self._on_worker, fn)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError as exc:
            # The worker is stuck in libvirt: leave it (and its connection) behind, so the
            # next call gets a fresh worker instead of queueing behind it for good.
            with self._lock:
                if self._pool is pool and not self._closed:
                    self._pool = _worker()
            pool.shutdown(wait=False, cancel_futures=True)
            self._drop()
            raise LibvirtUnavailable(
                f"libvirt at {self.uri} did not answer {what} within {self.timeout:.0f}s"
            ) from exc
        except libvirt.libvirtError as exc:
            if exc.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE):
                self._drop()
                raise LibvirtUnavailable(f"libvirt at {self.uri}: {exc}") from exc
            raise DomainFailed(f"{what}: {exc}") from exc

    def _on_worker(self, fn: Callable[[libvirt.virConnect], T]) -> T:
        with self._lock:
            conn = self._conn
        if conn is None or not conn.isAlive():
            events.ensure_running()  # before any connection: see .events
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise LibvirtUnavailable(f"libvirt at {self.uri} is not reachable: {exc}") from exc
            with self._lock:
                self._conn = conn
        return fn(conn)

    def _drop(self) -> threading.Thread | None:
        """Forget the connection; close it on a thread of its own (a close on a connection
        a stuck call holds can block, and never on the caller's thread)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return None
        closer = threading.Thread(
            target=_close_quietly, args=(conn,), name="libvirt-close", daemon=True
        )
        closer.start()
        return closer

    def close(self) -> None:
        """Stop the worker without waiting for a call stuck in libvirt (bounded)."""
        with self._lock:
            self._closed = True
            pool = self._pool
        pool.shutdown(wait=False, cancel_futures=True)
        closer = self._drop()
        if closer is not None:
            closer.join(timeout=self.timeout)

    # -- VirtualMachines -----------------------------------------------------------------

    def _type(self, conn: libvirt.virConnect) -> str:
        if self._domain_type is None:
            offers_kvm = "<domain type='kvm'" in conn.getCapabilities()
            self._domain_type = "kvm" if offers_kvm and _hardware_virtualization() else "qemu"
        return self._domain_type

    def version(self) -> tuple[str, str]:
        def read(conn: libvirt.virConnect) -> str:
            lib, hyper = conn.getLibVersion(), conn.getVersion()
            mode = "KVM" if self._type(conn) == "kvm" else "emulation"
            return f"{_dotted(lib)} (qemu {_dotted(hyper)}, {mode})"

        return "libvirt", self._call("version", read)

    def domains(self, device: str) -> list[Domain]:
        prefix = device_prefix(device)

        def read(conn: libvirt.virConnect) -> list[Domain]:
            found = []
            for dom in conn.listAllDomains(0):
                name = dom.name()
                if not name.startswith(prefix):
                    continue
                try:
                    marks = domain_xml.read_marks(
                        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domain_xml.NS, 0)
                    )
                    state, _reason = dom.state()
                    found.append(
                        Domain(
                            name=name, uuid=dom.UUIDString(), id=dom.ID(),
                            state=_STATES.get(state, "other"), marks=marks,
                            autostart=bool(dom.autostart()),
                            persistent=bool(dom.isPersistent()),
                        )
                    )  # fmt: skip
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() in (*_NO_DOMAIN, libvirt.VIR_ERR_NO_DOMAIN_METADATA):
                        continue  # gone meanwhile, or not ours after all
                    raise
                except ValueError:
                    continue  # metadata that is not ours
            return [d for d in found if d.marks.device == device]

        return self._call("list domains", read)

    def define(self, spec: DomainSpec) -> None:
        def define(conn: libvirt.virConnect) -> None:
            conn.defineXML(domain_xml.render(spec, domain_type=self._type(conn)))

        self._call(f"define {spec.name}", define)

    def _on_domain(self, name: str, what: str, action: Callable[[Any], object]) -> None:
        def run(conn: libvirt.virConnect) -> None:
            try:
                action(conn.lookupByName(name))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in _NO_DOMAIN and what != "start":
                    return
                if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and what in (
                    "destroy",
                ):
                    return  # not running
                raise

        self._call(f"{what} {name}", run)

    def start(self, name: str) -> None:
        self._on_domain(name, "start", lambda dom: dom.create())

    def destroy(self, name: str) -> None:
        self._on_domain(name, "destroy", lambda dom: dom.isActive() and dom.destroy())

    def undefine(self, name: str) -> None:
        def gone(dom: Any) -> None:
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)

        self._on_domain(name, "undefine", gone)

    def set_autostart(self, name: str, *, on: bool) -> None:
        self._on_domain(name, "autostart", lambda dom: dom.setAutostart(int(on)))

    def free_memory_mib(self) -> int:
        return self._call("free memory", lambda conn: int(conn.getFreeMemory() // (1 << 20)))

    def host_port_free(self, port: int, *, protocol: str) -> bool:
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def answers(self, name: str, *, host_port: int, guest_port: int) -> bool:
        try:
            probe = socket.create_connection(("127.0.0.1", host_port), timeout=2.0)
        except OSError:
            return False
        with probe:
            deadline = time.monotonic() + 1.0
            while True:
                out = self._call(
                    f"usernet of {name}",
                    lambda conn: libvirt_qemu.qemuMonitorCommand(
                        conn.lookupByName(name), "info usernet",
                        libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP,
                    ),
                )  # fmt: skip
                states = [
                    m["state"]
                    for m in _USERNET_LINE.finditer(out)
                    if int(m["host"]) == host_port and int(m["guest"]) == guest_port
                ]
                waiting = "SYN_SENT" in states or "SYN_RECEIVED" in states
                if "ESTABLISHED" in states and not waiting:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)

    def events(
        self,
        device: str,
        *,
        on_event: Callable[[DomainEvent], None],
        on_error: Callable[[BaseException], None],
    ) -> LibvirtEventStream:
        return LibvirtEventStream(
            uri=self.uri, device=device, on_event=on_event, on_error=on_error,
            timeout=self.timeout,
        )  # fmt: skip


class LibvirtEventStream:
    """Lifecycle events of one device's domains, on a connection of its own."""

    def __init__(
        self,
        *,
        uri: str,
        device: str,
        on_event: Callable[[DomainEvent], None],
        on_error: Callable[[BaseException], None],
        timeout: float = 30.0,
    ) -> None:
        self._device = device
        self._on_event, self._on_error = on_event, on_error
        self._lock = threading.Lock()
        self._closed = False
        events.ensure_running()
        self._conn = _open_bounded(uri, timeout=timeout)
        try:
            self._conn.setKeepAlive(5, 3)
            self._conn.registerCloseCallback(self._lost, None)
            self._id = self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None
            )
        except libvirt.libvirtError as exc:
            _close_quietly(self._conn)  # not leaked: nothing else will close it
            raise LibvirtUnavailable(f"libvirt at {uri}: cannot listen for events: {exc}") from exc

    def _event(self, conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        name = dom.name()
        parsed = parse_name(name, self._device)
        if parsed is None:
            return
        found = DomainEvent(
            name=name, action=_ACTIONS.get(event, str(event)),
            deployment=parsed[0], machine=parsed[1],
        )  # fmt: skip
        with self._lock:
            if not self._closed:
                self._on_event(found)

    def _lost(self, conn: Any, reason: int, opaque: Any) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._on_error(LibvirtUnavailable(f"libvirt closed the event connection ({reason})"))

    def close(self) -> None:
        with self._lock:
            already, self._closed = self._closed, True
        try:
            if not already:
                self._conn.domainEventDeregisterAny(self._id)
            self._conn.unregisterCloseCallback()
            self._conn.close()
        except libvirt.libvirtError:
            logger.debug("closing libvirt's event connection", exc_info=True)


def _worker() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="libvirt")


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        logger.debug("closing a broken libvirt connection", exc_info=True)


def _open_bounded(uri: str, *, timeout: float) -> Any:
    """``libvirt.open(uri)`` within ``timeout``; one that answers later is closed."""
    done = threading.Event()
    lock = threading.Lock()
    result: dict[str, Any] = {}

    def opening() -> None:
        try:
            conn: Any = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            result["error"] = exc
            done.set()
            return
        with lock:
            abandoned = result.get("abandoned", False)
            if not abandoned:
                result["conn"] = conn
                done.set()
        if abandoned:
            _close_quietly(conn)

    threading.Thread(target=opening, name="libvirt-open", daemon=True).start()
    if not done.wait(timeout):
        with lock:
            if not done.is_set():
                result["abandoned"] = True
                raise LibvirtUnavailable(f"libvirt at {uri} did not answer within {timeout:.0f}s")
    if "error" in result:
        error = result["error"]
        raise LibvirtUnavailable(f"libvirt at {uri}: cannot listen for events: {error}") from error
    return result["conn"]


def _dotted(version: int) -> str:
    return f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"
