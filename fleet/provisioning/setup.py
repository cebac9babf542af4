"""``FleetDeviceSetupScore``: make a Linux machine reachable by SSH a device of the fleet.

Why it exists: without it a person copies ``deploy/agent/install.sh`` to each device by
hand. The score (its config: :class:`FleetDeviceSetupConfig`; setup interpret name
``FleetDeviceSetup``, as in the system fleet is built from) says what the device should
hold; interpreting it over SSH (:mod:`fleet.runtime.ssh`, with the fleet key) brings the
device there, step by step, and says what each step found and did:

1. ``connect``: log in with the fleet key; a user other than root needs sudo without a
   password.
2. ``preflight``: architecture, OS, init system, Python, podman: one line per check, and
   what to do about a failed one. Nothing is changed before every check passed.
3. ``packages``: podman, and what rootless podman and the agent's venv need (``uidmap``,
   ``slirp4netns``, ``python3-venv``), with apt, when missing.
4. ``user``: the system user ``fleet-agent`` with subordinate ids, lingering, and its
   rootless podman socket (``podman.socket`` of its own systemd instance).
5. ``agent``: the agent's wheelhouse (:mod:`.wheels`: fleet built from this checkout, or a
   wheel given) installed offline into ``/opt/fleet-agent/venvs/<key>``, which the link
   ``/opt/fleet-agent/venv`` then names.
6. ``files``: the config (id, labels, NATS URLs, CA, bootstrap credential and enrollment
   token), the unit and its drop-in, podman's registries drop-in (:mod:`.device_files`).
7. ``service``: enabled, and (re)started when anything it runs changed.
8. ``bus``: waits until the device's info and a new heartbeat show on the bus.

Idempotent: each step reads what is there first and changes only what differs, so a
second run changes nothing and says so. ``dry_run`` runs the read-only part and prints
the plan. Crash safety: every file is written to a temporary name and renamed; the agent
is installed into a new venv marked complete last, and the link to it renamed into place
(:func:`_install_agent`), so a run killed at any point leaves a device the next run repairs.

What it must never do: change anything on a device that failed a preflight check, print
the enrollment token or a credential, or run a command built from unquoted input.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from fleet.contracts.names import check_device_id
from fleet.errors import ConfigError, ContractError
from fleet.runtime.ssh import Completed, SshSession, SshTarget, open_session

from . import device_files as files
from .errors import ProvisioningFailed
from .keypair import ensure_fleet_ssh_keypair
from .paths import FleetPaths
from .wheels import ARCHES, Wheelhouse, ensure_wheelhouse, wheelhouse_key

NAME: Final = "FleetDeviceSetup"
STEPS: Final = ("connect", "preflight", "packages", "user", "agent", "files", "service", "bus")
MIN_PYTHON: Final = (3, 11)
INSTALL_TIMEOUT: Final = 1800.0  # apt-get or pip on a slow device (a VM under emulation)
SOCKET_WAIT_S: Final = 120
VENVS_BASE: Final = "/opt/fleet-agent"
MAX_FACT: Final = 200
# One changing script at a time on a device: a killed run's script goes on (sshd does not
# end an exec session's processes when the client dies) and the next run waits for it.
DEVICE_LOCK: Final = "/run/fleet-device-setup.lock"
LOCK_WAIT_S: Final = 900
PENDING: Final = "/opt/fleet-agent/.restart-pending"
DEFAULT_HOSTNAMES: Final = frozenset({"raspberrypi", "ubuntu", "debian", "localhost", "dietpi"})

Say = Callable[[str], None]


class Sighting(Protocol):
    """The revisions of a device's valid info and heartbeat entries on the bus (None:
    none there)."""

    def __call__(self, device_id: str) -> tuple[int | None, int | None]: ...


@dataclass(frozen=True)
class FleetDeviceSetupConfig:
    """What a device set up by :class:`FleetDeviceSetupScore` holds, and how to reach it."""

    target: SshTarget
    nats_urls: tuple[str, ...]  # as the device dials them
    device_id: str | None = None  # default: the device's short hostname
    labels: Mapping[str, str] = field(default_factory=dict)
    nats_ca: Path | None = None
    bootstrap_credentials: Path | None = None
    enrollment_token: str | None = field(default=None, repr=False)
    agent_wheel: Path | None = None  # default: fleet built from this checkout
    insecure_registries: tuple[str, ...] = ()
    heartbeat_interval_s: float = 10.0
    check_host_key: bool = True  # False for the pool's throwaway VMs
    dry_run: bool = False
    wait: bool = True
    wait_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.enrollment_token is not None and self.bootstrap_credentials is None:
            raise ConfigError(
                "an enrollment token needs --bootstrap-creds (the credential it asks to join with)"
            )
        for path in (self.nats_ca, self.bootstrap_credentials, self.agent_wheel):
            if path is None:
                continue
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"cannot read the file {path}: {exc.strerror}") from exc
        beat = self.heartbeat_interval_s
        if not (math.isfinite(beat) and 0.1 <= beat <= 3600):
            raise ConfigError("the heartbeat interval must be between 0.1 and 3600 seconds")
        # refused here, before anything is changed on the device (the id may come later,
        # from the device's hostname: checked again then)
        files.check_setup_values(
            device_id=self.device_id or "placeholder", labels=self.labels,
            nats_urls=self.nats_urls, token=self.enrollment_token,
        )  # fmt: skip
        if self.insecure_registries:
            files.registries_dropin(self.insecure_registries)


@dataclass
class SetupOutcome:
    """What one run did: the device, the steps that changed something, whether on the bus."""

    device_id: str
    changed: list[str]
    dry_run: bool
    on_bus: bool
    seconds: float


@dataclass(frozen=True)
class Facts:
    """What the preflight read off the device."""

    values: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.values.get(key, "")

    @property
    def uid(self) -> int:
        uid = _uid(self["uid"])
        return -1 if uid is None else uid

    @property
    def python(self) -> tuple[int, int] | None:
        m = re.fullmatch(r"(\d+)\.(\d+)", self["python"])
        return (int(m[1]), int(m[2])) if m else None

    def missing_packages(self) -> list[str]:
        missing = []
        if not self["podman"]:
            missing.append("podman")
        if self["uidmap"] != "yes":
            missing.append("uidmap")
        if self["slirp4netns"] != "yes":
            missing.append("slirp4netns")
        if self["venv"] != "yes":
            missing.append("python3-venv")
        if self["dbus"] != "yes":
            missing.append("dbus")  # logind and user@.service (the podman socket's) need it
        if self["dbus_user"] != "yes":
            missing.append("dbus-user-session")  # rootless podman's systemd cgroups
        return missing


FACTS_SCRIPT: Final = r"""
echo "arch=$(uname -m)"
if [ -r /etc/os-release ]; then . /etc/os-release
  echo "os_id=${ID:-}"; echo "os_like=${ID_LIKE:-}"; echo "os_name=${PRETTY_NAME:-}"; fi
if [ -d /run/systemd/system ]; then echo init=systemd
else echo "init=$(cat /proc/1/comm 2>/dev/null || echo unknown)"; fi
if command -v python3 >/dev/null 2>&1; then
  echo "python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && echo venv=yes
  echo "bits=$(python3 -c 'import struct; print(struct.calcsize("P") * 8)' 2>/dev/null)"
fi
command -v podman >/dev/null 2>&1 && \
  echo "podman=$(podman --version 2>/dev/null | awk '{print $NF}')"
command -v newuidmap >/dev/null 2>&1 && echo uidmap=yes
command -v slirp4netns >/dev/null 2>&1 && echo slirp4netns=yes
test -e /usr/lib/systemd/system/dbus.service && echo dbus=yes
test -e /usr/lib/systemd/user/dbus.socket && echo dbus_user=yes
for pm in apt-get dnf zypper apk; do
  if command -v $pm >/dev/null 2>&1; then echo "pkg=$pm"; break; fi; done
echo "uid=$(id -u)"
echo "hostname=$(hostname -s 2>/dev/null || hostname)"
"""

USER_STATE: Final = rf"""
id -u {files.AGENT_USER} >/dev/null 2>&1 && echo "uid=$(id -u {files.AGENT_USER})"
grep -q '^{files.AGENT_USER}:' /etc/subuid 2>/dev/null && echo subuid=yes
grep -q '^{files.AGENT_USER}:' /etc/subgid 2>/dev/null && echo subgid=yes
test -e /var/lib/systemd/linger/{files.AGENT_USER} && echo linger=yes
test -L {files.HOME}/.config/systemd/user/sockets.target.wants/podman.socket && echo socket=yes
test -d {files.STATE_DIR} && echo state=yes
u=$(id -u {files.AGENT_USER} 2>/dev/null) && \
  test -S /run/user/$u/podman/podman.sock && echo live=yes
true
"""

# Idempotent as a whole: each part checks first. Subordinate ids start past every range
# given already, so they never overlap another user's.
USER_APPLY: Final = rf"""
set -e
user={files.AGENT_USER}; home={files.HOME}
id -u $user >/dev/null 2>&1 || useradd --system --user-group --home-dir $home \
  --create-home --shell /usr/sbin/nologin --comment "fleet agent" $user
for kind in uid gid; do
  # usermod refuses --add-sub*ids without the file (an image where useradd never ran)
  test -e /etc/sub$kind || {{ : > /etc/sub$kind; chmod 0644 /etc/sub$kind; }}
  if ! grep -q "^$user:" /etc/sub$kind; then
    next=$(awk -F: 'BEGIN {{ m = 100000 }} {{ e = $2 + $3; if (e > m) m = e }} END {{ print m }}' \
      /etc/sub$kind)
    usermod --add-sub${{kind}}s "$next-$((next + 65535))" $user
  fi
done
mkdir -p $home/.config/systemd/user/sockets.target.wants {files.STATE_DIR}
ln -sfn /usr/lib/systemd/user/podman.socket \
  $home/.config/systemd/user/sockets.target.wants/podman.socket
chown $user:$user $home $home/.config $home/.config/systemd $home/.config/systemd/user \
  $home/.config/systemd/user/sockets.target.wants {files.STATE_DIR}
chown -h $user:$user $home/.config/systemd/user/sockets.target.wants/podman.socket
chmod 0750 $home {files.STATE_DIR}
# the system bus (user@.service needs it) may be installed but not started yet
test -S /run/dbus/system_bus_socket || systemctl start dbus.socket dbus.service
# what enable-linger does, by hand where logind is not on a bus (a minimal image, no dbus)
loginctl enable-linger $user 2>/dev/null || {{ mkdir -p /var/lib/systemd/linger; \
  touch /var/lib/systemd/linger/$user; }}
uid=$(id -u $user)
systemctl start user@$uid.service
# a manager that ran before the socket was enabled, or a socket stopped since: start it
# through the manager's own socket (no user bus needed)
runuser -u $user -- env XDG_RUNTIME_DIR=/run/user/$uid systemctl --user start podman.socket \
  2>/dev/null || true
i=0
until test -S /run/user/$uid/podman/podman.sock; do
  i=$((i + 1))
  test $i -le {SOCKET_WAIT_S} || {{ echo "podman.socket of $user did not start" >&2; exit 3; }}
  sleep 1
done
"""


def _locked(script: str) -> str:
    """``script`` under the device's setup lock (util-linux's flock, on every Debian)."""
    return (
        f"exec 9>{DEVICE_LOCK}; flock -w {LOCK_WAIT_S} 9 || "
        f"{{ echo 'another device setup has held {DEVICE_LOCK} for {LOCK_WAIT_S} s' >&2; "
        f"exit 75; }}\n{script}"
    )


def _install_agent(wheel: str, key: str) -> str:
    """Install the uploaded wheelhouse into a venv of its own, ``venvs/<key>``, marked
    complete last, then point the link ``venv`` at it (renamed into place). A run killed
    at any point leaves the running agent's venv as it was and a new one the next run
    makes again. Venvs other than the new one and the one running are removed first."""
    base, target = VENVS_BASE, f"{VENVS_BASE}/venvs/{key}"
    return rf"""
set -e
running=$(readlink {files.VENV} 2>/dev/null || true)
# a venv the agent may still run from (a restart pending) is kept until it restarted
if [ ! -e {PENDING} ]; then
  for old in {base}/venvs/*; do
    name=venvs/$(basename "$old")
    if [ -e "$old" ] && [ "$name" != venvs/{key} ] && [ "$name" != "$running" ]; then
      rm -rf "$old"
    fi
  done
fi
if [ ! -e {target}/.complete ]; then
  rm -rf {target}
  mkdir -p {base}/venvs
  python3 -m venv {target}
  {target}/bin/pip install --quiet --disable-pip-version-check --no-index \
    --find-links {base}/wheelhouse {base}/wheelhouse/{shlex.quote(wheel)}
  test -x {target}/bin/fleet-agent
  touch {target}/.complete
fi
touch {PENDING}  # from here the agent runs old code until the service step restarts it
ln -sfn venvs/{key} {base}/venv.fleet-new
if [ -d {files.VENV} ] && [ ! -L {files.VENV} ]; then rm -rf {files.VENV}; fi
mv -T {base}/venv.fleet-new {files.VENV}
ln -sfn {files.VENV}/bin/fleet-agent {files.LINK}
rm -rf {base}/wheelhouse
"""


def _installed(key: str) -> str:
    """Exit 0 when ``venv`` is the complete venv of ``key`` and the link is there."""
    return (
        f"test -e {VENVS_BASE}/venvs/{key}/.complete && "
        f'test "$(readlink {files.VENV})" = venvs/{key} && test -x {files.LINK}'
    )


class FleetDeviceSetupScore:
    """Device setup as a score: :meth:`create_interpret` brings a device to it."""

    name: Final = NAME

    def __init__(self, config: FleetDeviceSetupConfig) -> None:
        self.config = config

    def create_interpret(
        self,
        *,
        paths: FleetPaths,
        sighting: Sighting | None = None,
        say: Say = lambda _line: None,
    ) -> FleetDeviceSetupInterpret:
        return FleetDeviceSetupInterpret(self.config, paths=paths, sighting=sighting, say=say)


class FleetDeviceSetupInterpret:
    """One run of device setup (:meth:`execute`)."""

    def __init__(
        self,
        config: FleetDeviceSetupConfig,
        *,
        paths: FleetPaths,
        sighting: Sighting | None,
        say: Say,
    ) -> None:
        self.config = config
        self.paths = paths
        self.sighting = sighting
        self._say = say
        self.changed: list[str] = []
        self.restart = False
        self._session: SshSession | None = None
        self._facts = Facts({})

    # -- output ---------------------------------------------------------------------------

    def say(self, step: str, line: str) -> None:
        self._say(f"[{STEPS.index(step) + 1}/{len(STEPS)}] {step}: {line}")

    def did(self, step: str, line: str) -> None:
        """A change made (or, in a dry run, one that would be)."""
        if step not in self.changed:
            self.changed.append(step)
        self.say(step, ("would " if self.config.dry_run else "") + line)

    # -- the device ---------------------------------------------------------------------

    def sh(self, script: str, *, root: bool = False, stdin: bytes = b"",
           timeout: float = 300.0) -> Completed:  # fmt: skip
        assert self._session is not None
        command = "sh -c " + shlex.quote(script)
        if root and self._facts.uid != 0:
            command = "sudo -n " + command
        return self._session.run(command, stdin=stdin, timeout=timeout)

    def must(self, step: str, script: str, *, what: str, root: bool = True,
             stdin: bytes = b"", timeout: float = 300.0) -> Completed:  # fmt: skip
        """A changing script, run under the device's setup lock."""
        done = self.sh(_locked(script), root=root, stdin=stdin, timeout=timeout + LOCK_WAIT_S)
        if not done.ok:
            raise ProvisioningFailed(
                f"{self.config.target}: {step}: {what} failed: {done.last_line()} "
                "(fix it and run setup again: it goes on from what is done)"
            )
        return done

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> SetupOutcome:
        started = time.monotonic()
        c = self.config
        keypair = ensure_fleet_ssh_keypair(self.paths)
        known_hosts = self.paths.ssh / "known_hosts" if c.check_host_key else None
        session = open_session(c.target, private_key=keypair.private_key, known_hosts=known_hosts)
        self._session = session
        try:
            recorded = (
                f"; its host key recorded in {known_hosts}" if session.host_key_recorded else ""
            )
            self.say("connect", f"{c.target} with the fleet key {keypair.private_key}{recorded}")
            self._facts = facts = self.preflight()
            device_id = c.device_id or facts["hostname"]
            if c.device_id is None and device_id in DEFAULT_HOSTNAMES:
                raise ConfigError(
                    f"{c.target}: the device's hostname is {device_id!r}, a stock image's "
                    "default that other devices share: give --device-id"
                )
            try:
                check_device_id(device_id)
            except ContractError as exc:
                raise ConfigError(
                    f"{c.target}: the device's hostname {device_id[:64]!r} is not a device "
                    f"id ({exc}): give --device-id"
                ) from exc
            self._say(f"{NAME}: {c.target} as device {device_id}")
            self.packages()
            uid = self.user()
            self.agent()
            self.files(device_id, uid)
            self.service()
            on_bus = self.bus(device_id) if c.wait and not c.dry_run else False
        finally:
            session.close()
            self._session = None
        seconds = time.monotonic() - started
        if c.dry_run:
            self._say(f"dry run: nothing was changed on {c.target}")
        elif self.changed:
            self._say(f"done in {seconds:.0f} s: changed {', '.join(self.changed)}")
        else:
            self._say(f"done in {seconds:.0f} s: nothing changed, {c.target} was set up already")
        return SetupOutcome(
            device_id=device_id, changed=list(self.changed), dry_run=c.dry_run,
            on_bus=on_bus, seconds=seconds,
        )  # fmt: skip

    def preflight(self) -> Facts:
        facts = Facts(_values(self.sh(FACTS_SCRIPT).text))
        self._facts = facts
        failures = []
        for name, ok, line in self.checks(facts):
            self.say("preflight", f"{name}: {line}")
            if not ok:
                failures.append(f"{name}: {line}")
        if failures:
            raise ProvisioningFailed(
                f"{self.config.target}: preflight failed, nothing was changed: "
                + "; ".join(failures)
            )
        return facts

    def checks(self, facts: Facts) -> list[tuple[str, bool, str]]:
        """(check, passed, line) for each preflight check, in order."""
        arch, init, python = facts["arch"], facts["init"], facts.python
        bits32 = facts["bits"] == "32"
        out = [
            ("architecture", arch in ARCHES and not bits32,
             f"{arch}: ok" if arch in ARCHES and not bits32 else
             f"{arch}, with a 32-bit userland: install the device's 64-bit OS" if bits32 else
             f"{arch or 'unknown'} is not supported: fleet-agent runs on x86_64 and aarch64 "
             "(the wheels of msgspec and uvloop)"),
            ("os", True, facts["os_name"] or facts["os_id"] or "unknown"),
            ("init", init == "systemd", "systemd: ok" if init == "systemd" else
             f"{init or 'unknown'}: fleet-agent runs as a systemd unit; set up a device that "
             "boots with systemd"),
        ]  # fmt: skip
        if python is None:
            out.append(("python", False, "python3 not found: install Python >= 3.11"))
        elif python < MIN_PYTHON:
            old = f"{python[0]}.{python[1]}"
            out.append(("python", False, f"{old} is too old: install Python >= 3.11 "
                        "(Debian 12, Ubuntu 24.04, Raspberry Pi OS 12 have it)"))  # fmt: skip
        else:
            out.append(("python", True, f"{python[0]}.{python[1]}: ok"))
        out.append(self._podman_check(facts))
        out.append(self._sudo_check(facts))
        return out

    @staticmethod
    def _podman_check(facts: Facts) -> tuple[str, bool, str]:
        missing, podman = facts.missing_packages(), facts["podman"]
        if not missing:
            return ("podman", True, f"{podman}: ok (with uidmap, slirp4netns and dbus)")
        have = f"{podman}, " if podman else ""
        if facts["pkg"] == "apt-get":
            return ("podman", True, f"{have}missing {', '.join(missing)}: to install (apt-get)")
        return ("podman", False, f"{have}missing {', '.join(missing)} and no apt-get here: "
                "install them with the device's package manager, then run setup again")  # fmt: skip

    def _sudo_check(self, facts: Facts) -> tuple[str, bool, str]:
        if facts.uid == 0:
            return ("sudo", True, "root: not needed")
        if self.sh("sudo -n true").ok:
            return ("sudo", True, "ok (without a password)")
        user = self.config.target.user
        return ("sudo", False, f"{user} cannot sudo without a password: give it NOPASSWD sudo "
                f"(a line '{user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/{user}) "
                "or log in as root")  # fmt: skip

    def packages(self) -> None:
        missing = self._facts.missing_packages()
        if not missing:
            self.say("packages", "nothing to install")
            return
        names = " ".join(missing)
        if self.config.dry_run:
            self.did("packages", f"install {names} (apt-get)")
            return
        self.say("packages", f"installing {names} (apt-get; minutes on a slow device)")
        # wait for dpkg's lock (unattended-upgrades on a fresh image) rather than fail on it,
        # and finish what an interrupted dpkg left
        install = (
            "apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends " + names
        )
        done = self.sh(
            _locked(
                f"export DEBIAN_FRONTEND=noninteractive; dpkg --configure -a; {install} || "
                f"{{ apt-get -o DPkg::Lock::Timeout=600 update -q && {install}; }}"
            ),
            root=True, timeout=INSTALL_TIMEOUT + LOCK_WAIT_S,
        )  # fmt: skip
        if not done.ok:
            raise ProvisioningFailed(
                f"{self.config.target}: packages: apt-get could not install {names} "
                f"({done.last_line()}): give the device a reachable apt source, or install "
                "them by hand, then run setup again"
            )
        self.did("packages", f"installed {names}")

    def user(self) -> int | None:
        state = _values(self.sh(USER_STATE, root=True).text)
        wanted = ("subuid", "subgid", "linger", "socket", "state", "live")
        uid = _uid(state.get("uid", ""))
        if uid is not None and all(state.get(k) == "yes" for k in wanted):
            self.say("user", f"{files.AGENT_USER} (uid {uid}), lingering, podman.socket: ok")
            return uid
        lacking = [k for k in ("uid", *wanted) if k not in state]
        what = {"uid": "the user", "subuid": "subordinate uids", "subgid": "subordinate gids",
                "linger": "lingering", "socket": "podman.socket enabled",
                "state": "its state folder", "live": "podman.socket running"}  # fmt: skip
        todo = ", ".join(what[k] for k in lacking)
        if self.config.dry_run:
            self.did("user", f"make {files.AGENT_USER}: {todo}")
            return uid
        self.must("user", USER_APPLY, what=f"making {files.AGENT_USER} ({todo})")
        uid = _uid(_values(self.sh(USER_STATE, root=True).text).get("uid", ""))
        if uid is None:
            raise ProvisioningFailed(f"{self.config.target}: user: {files.AGENT_USER} missing")
        self.did("user", f"made {files.AGENT_USER} (uid {uid}): {todo}")
        return uid

    def agent(self) -> None:
        c = self.config
        python = self._facts.python
        assert python is not None
        tag, arch = f"cp{python[0]}{python[1]}", self._facts["arch"]
        key = wheelhouse_key(python_tag=tag, arch=arch, wheel=c.agent_wheel)
        if self.sh(_installed(key), root=True).ok:
            self.say("agent", f"{key}: installed")
            return
        if c.dry_run:  # the plan needs the key only: no wheel is built
            self.did("agent", f"install the agent ({key}) into {files.VENV}")
            return
        house = ensure_wheelhouse(
            self.paths, python_tag=tag, arch=arch, wheel=c.agent_wheel,
            say=lambda line: self.say("agent", line),
        )  # fmt: skip
        self._upload(house)
        self.say("agent", f"installing into {VENVS_BASE}/venvs/{house.key} (pip, offline)")
        self.must("agent", _install_agent(house.fleet_wheel, house.key),
                  what=f"installing {house.fleet_wheel}", timeout=INSTALL_TIMEOUT)  # fmt: skip
        self.did("agent", f"installed {house.fleet_wheel} ({house.key}) into {files.VENV}")
        self.restart = True

    def _upload(self, house: Wheelhouse) -> None:
        tar = house.tar()
        self.say("agent", f"copying the wheelhouse ({len(tar) / 1e6:.1f} MB)")
        self.must(
            "agent", "set -e; rm -rf /opt/fleet-agent/wheelhouse; "
            "mkdir -p /opt/fleet-agent/wheelhouse; tar -x -C /opt/fleet-agent/wheelhouse",
            what="copying the wheelhouse", stdin=tar, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip

    def wanted_files(self, device_id: str, uid: int | None) -> list[files.DeviceFile]:
        c = self.config
        owner = f"root:{files.AGENT_USER}"
        socket = (
            files.podman_socket(uid)
            if uid is not None
            else "unix:///run/user/UID/podman/podman.sock"
        )
        token = c.enrollment_token
        out = [
            files.DeviceFile(files.CONFIG, files.agent_config(
                device_id=device_id, labels=c.labels, nats_urls=c.nats_urls,
                podman_socket=socket, ca=c.nats_ca is not None,
                bootstrap=c.bootstrap_credentials is not None, token=token,
                heartbeat_interval_s=c.heartbeat_interval_s,
            ), "640", owner),
            files.DeviceFile(files.UNIT, files.unit_file(), "644", "root:root"),
        ]  # fmt: skip
        if uid is not None:
            out.append(files.DeviceFile(files.DROPIN, files.podman_dropin(uid), "644", "root:root"))
        if c.nats_ca is not None:
            out.append(files.DeviceFile(files.CA, c.nats_ca.read_bytes(), "644", "root:root"))
        if c.bootstrap_credentials is not None:
            creds = c.bootstrap_credentials.read_bytes()
            out.append(files.DeviceFile(files.BOOTSTRAP, creds, "640", owner))
        if c.insecure_registries:
            body = files.registries_dropin(c.insecure_registries)
            out.append(files.DeviceFile(files.REGISTRIES, body, "644", "root:root"))
        return out

    def files(self, device_id: str, uid: int | None) -> None:
        if self.config.bootstrap_credentials is None:
            self.say("files", "no bootstrap credential: the device connects without one, "
                     "which only a NATS server without auth accepts (development)")  # fmt: skip
        wanted = self.wanted_files(device_id, uid)
        # files an earlier run wrote for an option given no more (a CA, a credential, an
        # insecure registry): removed, or the device would go on using them
        optional = (files.CA, files.BOOTSTRAP, files.REGISTRIES)
        unwanted = [p for p in optional if p not in {f.path for f in wanted}]
        probe = "; ".join(
            [f"printf '%s ' {shlex.quote(f.path)}; "
             f"{{ sha256sum {shlex.quote(f.path)} 2>/dev/null | cut -d' ' -f1 | tr -d '\\n'; "
             f"printf ' '; stat -c '%a %U:%G' {shlex.quote(f.path)} 2>/dev/null || echo; }}"
             for f in wanted]
            + [f"test -e {shlex.quote(p)} && echo unwanted {shlex.quote(p)}" for p in unwanted]
            + ["true"]
        )  # fmt: skip
        seen: dict[str, list[str]] = {}
        present: list[str] = []
        for line in self.sh(probe, root=True).text.splitlines():
            parts = line.split()
            if parts[:1] == ["unwanted"] and len(parts) == 2 and parts[1] in unwanted:
                present.append(parts[1])
            elif parts:
                seen[parts[0]] = parts[1:]
        stale = []
        for f in wanted:
            now = [hashlib.sha256(f.content).hexdigest(), f.mode, f.owner]
            if seen.get(f.path) != now:
                stale.append(f)
        if not stale and not present:
            self.say("files", f"{len(wanted)} files as they should be")
            return
        names = ", ".join(
            [f.path for f in stale] + [f"{p} (removed: its option is not given)" for p in present]
        )
        if self.config.dry_run:
            self.did("files", f"write {names}")
            return
        self.must("files", f"mkdir -p {VENVS_BASE}; touch {PENDING}", what="marking a restart")
        for f in stale:
            path = shlex.quote(f.path)
            new = shlex.quote(f.path + ".fleet-new")
            self.must(
                "files",
                f"set -e; mkdir -p $(dirname {path}); umask 077; cat > {new}; "
                f"chown {f.owner} {new}; chmod {f.mode} {new}; mv -f {new} {path}",
                what=f"writing {f.path}", stdin=f.content,
            )  # fmt: skip
        if present:
            gone = " ".join(shlex.quote(p) for p in present)
            self.must("files", f"rm -f {gone}", what=f"removing {gone}")
        self.did("files", f"wrote {names}")
        self.restart = True

    def service(self) -> None:
        state = _values(self.sh(
            "echo enabled=$(systemctl is-enabled fleet-agent 2>/dev/null); "
            "echo active=$(systemctl is-active fleet-agent 2>/dev/null); "
            f"test -e {PENDING} && echo pending=yes; true"
        ).text)  # fmt: skip
        enabled, active = state.get("enabled") == "enabled", state.get("active") == "active"
        # pending: an earlier run changed what the agent runs and was killed before this
        self.restart = self.restart or state.get("pending") == "yes"
        if enabled and active and not self.restart:
            self.say("service", "fleet-agent enabled and running")
            return
        why = "restart (what it runs changed)" if active else "start"
        if self.config.dry_run:
            self.did("service", f"enable and {why} fleet-agent")
            return
        self.must("service", "set -e; systemctl daemon-reload; systemctl enable --quiet "
                  f"fleet-agent; systemctl restart fleet-agent; rm -f {PENDING}",
                  what="starting fleet-agent")  # fmt: skip
        self.did("service", f"fleet-agent enabled and {'restarted' if active else 'started'}")

    def bus(self, device_id: str) -> bool:
        if self.sighting is None:
            self.say("bus", "not watched (no bus given)")
            return False
        c = self.config
        _info, first_beat = self.sighting(device_id)
        self.say("bus", f"waiting for {device_id}'s info and a new heartbeat "
                 f"(up to {c.wait_timeout_s:.0f} s)")  # fmt: skip
        deadline = time.monotonic() + c.wait_timeout_s
        while time.monotonic() < deadline:
            info, beat = self.sighting(device_id)
            if info is not None and beat is not None and beat != first_beat:
                self.say("bus", f"{device_id}: info and heartbeat seen")
                return True
            time.sleep(1.0)
        said = self.sh("journalctl -u fleet-agent -n 5 --no-pager -o cat", root=True, timeout=60)
        last = said.last_line() if said.ok and said.stdout.strip() else "nothing logged"
        raise ProvisioningFailed(
            f"{c.target}: bus: {device_id} sent no info and heartbeat within "
            f"{c.wait_timeout_s:.0f} s; the agent's last log line: {last!r} "
            "(is the NATS URL reachable from the device? with auth: the bootstrap "
            "credential and token? more: journalctl -u fleet-agent on the device)"
        )


def _values(text: str) -> dict[str, str]:
    """``key=value`` lines a device printed; a value that is not printable ASCII (escape
    sequences for the operator's terminal) is dropped."""
    out = {}
    for line in text.splitlines()[:64]:
        key, sep, value = line.partition("=")
        value = value.strip()[:MAX_FACT]
        if sep and key.isidentifier() and value.isascii() and value.isprintable():
            out[key] = value
    return out


def _uid(value: str) -> int | None:
    return int(value) if re.fullmatch(r"[0-9]{1,10}", value) else None


def setup_device(
    config: FleetDeviceSetupConfig,
    *,
    paths: FleetPaths | None = None,
    sighting: Sighting | None = None,
    say: Say = lambda _line: None,
) -> SetupOutcome:
    """Set one device up (the Python API of ``fleetctl device setup``)."""
    paths = paths or FleetPaths.from_env()
    score = FleetDeviceSetupScore(config)
    return score.create_interpret(paths=paths, sighting=sighting, say=say).execute()
