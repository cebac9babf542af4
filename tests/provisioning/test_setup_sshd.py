"""``fleetctl device setup`` against a real sshd: bad input ends in one line naming what to
fix, the right exit code, and nothing made.

Each test runs ``fleetctl`` as a child process (``HARMONY_DATA_DIR`` in its own temporary
folder, ``--nats-url`` a closed 127.0.0.1 port, ``--no-wait``) against an sshd of its own
(:mod:`tests.provisioning.sshd`) on this machine, logging in as root or as a throwaway
user. The device is this machine, so every run must stop before it changes anything:
PID 1 here is not systemd, and the preflight refuses it. On a machine that boots with
systemd that check would pass and setup would go on to change the machine, so there the
sshd's ``PATH`` gives a ``uname`` that claims mips64 and every run still stops at the
preflight (the test of the init check itself is skipped there).

After each run the test checks that this machine holds no part of a device: no user
``fleet-agent``, no ``/etc/fleet-agent``, ``/opt/fleet-agent``, unit, drop-in or link.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.provisioning import FleetPaths, ensure_fleet_ssh_keypair
from fleet.provisioning import device_files as files
from fleet.provisioning.keypair import FleetSshKeypair

from .sshd import (
    Sshd,
    free_port,
    keygen,
    running_sshd,
    sshd_folder,
    sshd_or_skip,
    throwaway_user,
    tool_dir,
    user_exists,
)

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_HOST = Path("/run/systemd/system").is_dir()
RUN_TIMEOUT_S = 90.0  # one fleetctl run: about 2 s here
CHECKS = ["architecture", "os", "init", "python", "podman", "sudo"]
# what setup makes on a device (fleet/provisioning/setup.py, device_files.py)
DEVICE_PATHS = (
    "/etc/fleet-agent", "/opt/fleet-agent", files.UNIT, files.DROPIN, files.HOME, files.LINK,
    files.REGISTRIES, f"/var/lib/systemd/linger/{files.AGENT_USER}",
)  # fmt: skip
MIPS_UNAME = 'case "$1" in -m) echo mips64 ;; *) exec /usr/bin/uname "$@" ;; esac'


def made_here() -> list[str]:
    """The parts of a device this machine holds (none, before and after every test)."""
    found = [path for path in DEVICE_PATHS if os.path.lexists(path)]
    if user_exists(files.AGENT_USER):
        found.append(f"the user {files.AGENT_USER}")
    for ids in ("/etc/subuid", "/etc/subgid"):
        try:
            text = Path(ids).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        if re.search(rf"^{files.AGENT_USER}:", text, re.MULTILINE):
            found.append(f"{files.AGENT_USER} in {ids}")
    return found


@dataclass(frozen=True)
class World:
    folder: Path  # every user can traverse it: sshd's files and the throwaway home
    data_dir: Path  # HARMONY_DATA_DIR of fleetctl
    keypair: FleetSshKeypair
    nats_url: str  # nobody listens there

    @property
    def known_hosts(self) -> Path:
        return self.data_dir / "fleet/ssh/known_hosts"

    def setup(self, target: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``fleetctl device setup TARGET ...`` as a child process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "HARMONY_"))}
        env["HARMONY_DATA_DIR"] = str(self.data_dir)
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli.fleetctl.main", "device", "setup", target,
             "--nats-url", self.nats_url, "--no-wait", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    sshd_or_skip()
    before = made_here()
    if before:
        pytest.fail(f"this machine holds a device already ({', '.join(before)}): these tests "
                    "could not tell what they made", pytrace=False)  # fmt: skip
    data_dir = tmp_path / "harmony"
    keypair = ensure_fleet_ssh_keypair(FleetPaths(data_dir=data_dir))
    with sshd_folder() as folder:
        yield World(folder=folder, data_dir=data_dir, keypair=keypair,
                    nats_url=f"nats://127.0.0.1:{free_port()}")  # fmt: skip
    assert made_here() == []


def guard_path(world: World) -> str | None:
    """No PATH of its own where PID 1 is not systemd (the preflight stops there); where
    it is, one whose ``uname`` claims mips64, so that no run goes past the preflight."""
    if not SYSTEMD_HOST:
        return None
    return str(tool_dir(world.folder / "guard-bin", scripts={"uname": MIPS_UNAME}))


@pytest.fixture
def sshd(world: World) -> Iterator[Sshd]:
    """An sshd that lets the fleet key in, as root and any user."""
    with running_sshd(world.folder / "sshd", path_env=guard_path(world)) as server:
        server.authorize(world.keypair.public_key)
        yield server


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The run ended with ``code`` and said one line on stderr: that line."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fleetctl: "), done.stderr
    return lines[0]


def preflight_lines(stdout: str) -> list[str]:
    prefix = "[2/8] preflight: "
    return [line.removeprefix(prefix) for line in stdout.splitlines() if line.startswith(prefix)]


def logins(server: Sshd) -> int:
    return server.log().count("Accepted publickey for ")


@pytest.mark.timeout(60)
def test_an_unreachable_host_exits_3(world: World) -> None:
    port = free_port()  # nobody listens there
    line = one_line_error(world.setup(f"root@127.0.0.1:{port}"), 3)
    assert line.startswith(f"fleetctl: cannot reach root@127.0.0.1:{port}: ")
    assert "sshd running?" in line
    assert not world.known_hosts.exists()
    assert made_here() == []


@pytest.mark.timeout(60)
def test_a_refused_key_names_the_key_and_ssh_copy_id(world: World, sshd: Sshd) -> None:
    sshd.authorize(keygen(world.folder / "someone-else", comment="someone-else"))
    line = one_line_error(world.setup(f"root@127.0.0.1:{sshd.port}"), 1)
    public = f"{world.keypair.private_key}.pub"
    assert f"root@127.0.0.1:{sshd.port} refused the fleet key {public}" in line
    assert f"ssh-copy-id -i {public} root@127.0.0.1:{sshd.port}" in line
    assert logins(sshd) == 0
    assert made_here() == []


@pytest.mark.timeout(60)
def test_the_host_key_is_recorded_once(world: World, sshd: Sshd) -> None:
    first = world.setup(f"root@127.0.0.1:{sshd.port}")
    one_line_error(first, 1)  # the preflight stops it: this machine is no device
    assert f"its host key recorded in {world.known_hosts}" in first.stdout
    kind, key = sshd.host_public_key.split()[:2]
    recorded = f"[127.0.0.1]:{sshd.port} {kind} {key}\n"
    assert world.known_hosts.read_text() == recorded
    again = world.setup(f"root@127.0.0.1:{sshd.port}")
    one_line_error(again, 1)
    assert "its host key recorded" not in again.stdout
    assert world.known_hosts.read_text() == recorded
    assert logins(sshd) == 2
    assert made_here() == []


@pytest.mark.timeout(60)
def test_a_changed_host_key_is_refused_naming_known_hosts(world: World, sshd: Sshd) -> None:
    one_line_error(world.setup(f"root@127.0.0.1:{sshd.port}"), 1)
    recorded = world.known_hosts.read_bytes()
    sshd.restart(new_host_key=True)  # a reinstalled device, or another one at its address
    line = one_line_error(world.setup(f"root@127.0.0.1:{sshd.port}"), 1)
    assert "the host key is not the one recorded in " + str(world.known_hosts) in line
    assert f"remove its line ([127.0.0.1]:{sshd.port})" in line
    assert world.known_hosts.read_bytes() == recorded  # not replaced by the new key
    assert logins(sshd) == 1  # the first run's: no login to the changed host
    assert made_here() == []


@pytest.mark.timeout(90)
def test_a_user_without_sudo_is_told_how_to_get_it(world: World, sshd: Sshd) -> None:
    with throwaway_user(world.folder / "home") as user:
        done = world.setup(f"{user}@127.0.0.1:{sshd.port}")
        line = one_line_error(done, 1)
        assert "preflight failed, nothing was changed" in line
        fix = (
            f"sudo: {user} cannot sudo without a password: give it NOPASSWD sudo (a line "
            f"'{user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/{user}) or log in as root"
        )
        assert fix in line
        assert fix in preflight_lines(done.stdout)
        assert f"Accepted publickey for {user} " in sshd.log()
    assert not user_exists(user)
    assert made_here() == []


@pytest.mark.timeout(60)
def test_an_unsupported_architecture_is_named(world: World) -> None:
    path = tool_dir(world.folder / "bin", scripts={"uname": MIPS_UNAME})
    with running_sshd(world.folder / "sshd", path_env=str(path)) as server:
        server.authorize(world.keypair.public_key)
        done = world.setup(f"root@127.0.0.1:{server.port}")
    line = one_line_error(done, 1)
    assert "architecture: mips64 is not supported: fleet-agent runs on x86_64 and aarch64" in line
    assert preflight_lines(done.stdout)[0].startswith("architecture: mips64 is not supported")
    assert made_here() == []


@pytest.mark.timeout(60)
def test_missing_podman_without_apt_get_says_to_install_it(world: World) -> None:
    path = tool_dir(
        world.folder / "bin",
        leave_out=("podman", "apt-get"),
        scripts={"uname": MIPS_UNAME} if SYSTEMD_HOST else None,
    )
    with running_sshd(world.folder / "sshd", path_env=str(path)) as server:
        server.authorize(world.keypair.public_key)
        done = world.setup(f"root@127.0.0.1:{server.port}")
    line = one_line_error(done, 1)
    fix = (
        "podman: missing podman and no apt-get here: install them with the device's "
        "package manager, then run setup again"
    )
    assert fix in line
    assert fix in preflight_lines(done.stdout)
    assert made_here() == []


@pytest.mark.timeout(60)
@pytest.mark.skipif(SYSTEMD_HOST, reason="this machine boots with systemd: its init passes")
def test_an_init_other_than_systemd_is_refused(world: World, sshd: Sshd) -> None:
    line = one_line_error(world.setup(f"root@127.0.0.1:{sshd.port}"), 1)
    init = Path("/proc/1/comm").read_text().strip()
    assert line == (
        f"fleetctl: root@127.0.0.1:{sshd.port}: preflight failed, nothing was changed: "
        f"init: {init}: fleet-agent runs as a systemd unit; set up a device that boots "
        "with systemd"
    )
    assert made_here() == []


@pytest.mark.timeout(60)
def test_the_preflight_says_one_line_per_check_before_it_fails(world: World, sshd: Sshd) -> None:
    done = world.setup(f"root@127.0.0.1:{sshd.port}")
    one_line_error(done, 1)
    out = done.stdout.splitlines()
    assert out[0].startswith(f"[1/8] connect: root@127.0.0.1:{sshd.port} with the fleet key ")
    checks = preflight_lines(done.stdout)
    assert [line.split(":")[0] for line in checks] == CHECKS
    assert out[1 : 1 + len(CHECKS)] == [f"[2/8] preflight: {line}" for line in checks]
    assert len(out) == 1 + len(CHECKS)  # nothing after the preflight
    assert checks[5] == "sudo: root: not needed"
    assert made_here() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["not-a-target"], "'not-a-target' is not USER@HOST"),
        (["root@127.0.0.1:99999"], "port 99999 is out of range"),
        (["root@127.0.0.1;id"], "is not a host name or address"),
        (["root@127.0.0.1", "--labels", "site"], "--labels 'site': say key=value"),
    ],
)
def test_bad_usage_exits_2(world: World, args: list[str], says: str) -> None:
    line = one_line_error(world.setup(*args), 2)
    assert says in line
    assert not world.known_hosts.exists()  # no device was reached
    assert made_here() == []


@pytest.mark.timeout(60)
def test_a_bad_label_exits_2_before_reaching_the_device(world: World, sshd: Sshd) -> None:
    done = world.setup(f"root@127.0.0.1:{sshd.port}", "--labels", "bad key=v")
    assert made_here() == []
    line = one_line_error(done, 2)
    assert "invalid label key 'bad key'" in line
    assert logins(sshd) == 0
