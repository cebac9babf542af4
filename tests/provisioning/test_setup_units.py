"""Device setup's pure parts, and its interpret driven by a fake device: no SSH, no sshd.

The fake (:class:`FakeDevice`) stands where :class:`fleet.runtime.ssh.SshSession` does (one
method: ``run(command, *, stdin, timeout) -> Completed``): it answers the facts script and
the read-only probes from canned state, keeps the files written to it, and records every
command, so a test sees what a run would have done to a device.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from fleet.actors.agent.config import parse_config
from fleet.errors import ConfigError
from fleet.provisioning import FleetPaths, setup
from fleet.provisioning import device_files as files
from fleet.provisioning.errors import ProvisioningFailed
from fleet.provisioning.pool import check_forwards, guest_url
from fleet.provisioning.setup import (
    FACTS_SCRIPT,
    PENDING,
    USER_STATE,
    Facts,
    FleetDeviceSetupConfig,
    FleetDeviceSetupInterpret,
    FleetDeviceSetupScore,
)
from fleet.provisioning.wheels import Wheelhouse, source_key
from fleet.runtime.libvirt.fleet_vms import VmMarks, read_vm_marks, render_marks
from fleet.runtime.libvirt.port import Forward
from fleet.runtime.ssh import Completed, SshSession, SshTarget

REPO = Path(__file__).resolve().parents[2]
TOKEN = "abcdef.0123456789abcdef"
GOOD_FACTS = {
    "arch": "x86_64", "os_id": "debian", "os_name": "Debian GNU/Linux 12 (bookworm)",
    "init": "systemd", "python": "3.11", "venv": "yes", "podman": "4.3.1", "uidmap": "yes",
    "slirp4netns": "yes", "dbus": "yes", "dbus_user": "yes", "pkg": "apt-get", "uid": "0",
    "hostname": "pi-01",
}  # fmt: skip
# what only a changing command says (none of the read-only probes does)
MUTATING = (
    "useradd", "usermod", "apt-get install", "apt-get update", "systemctl start",
    "systemctl restart", "systemctl enable", "systemctl daemon-reload", "enable-linger",
    "cat >", "tar -x", "mv -", "rm -", "ln -s", "mkdir", "pip install", "-m venv", "chown",
    "chmod", "touch",
)  # fmt: skip

pytestmark = pytest.mark.timeout(30)


# -- SshTarget ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "shown"),
    [
        ("root@pi-01", "root", "pi-01", 22, "root@pi-01"),
        ("admin@127.0.0.1:2222", "admin", "127.0.0.1", 2222, "admin@127.0.0.1:2222"),
        ("pi@[::1]:22", "pi", "::1", 22, "pi@[::1]"),
        ("pi@[fe80::1]:2022", "pi", "fe80::1", 2022, "pi@[fe80::1]:2022"),
        ("_svc@edge.example.com", "_svc", "edge.example.com", 22, "_svc@edge.example.com"),
        ("u@h:65535", "u", "h", 65535, "u@h:65535"),
    ],
)  # fmt: skip
def test_ssh_target_accepts_user_at_host_and_port(
    text: str, user: str, host: str, port: int, shown: str
) -> None:
    target = SshTarget.parse(text)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert str(target) == shown
    assert SshTarget.parse(shown) == target
    assert SshTarget.parse(text, port=2200).port == 2200
    assert target.known_hosts_name == (host if port == 22 else f"[{host}]:{port}")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("pi-01", "is not USER@HOST"),
        ("@pi-01", "is not USER@HOST"),
        ("Root@pi-01", "is not USER@HOST"),
        ("ro ot@pi-01", "is not USER@HOST"),
        ("root;id@pi-01", "is not USER@HOST"),
        ("-oProxyCommand=id@pi-01", "is not USER@HOST"),
        ("$(id)@pi-01", "is not USER@HOST"),
        ("root@", "is not a host name or address"),
        ("root@-oProxyCommand=id", "is not a host name or address"),
        ("root@pi-01;id", "is not a host name or address"),
        ("root@pi-01 id", "is not a host name or address"),
        ("root@$(id)", "is not a host name or address"),
        ("root@`id`", "is not a host name or address"),
        ("root@pi-01|id", "is not a host name or address"),
        ("root@pi-01&&id", "is not a host name or address"),
        ("root@::1", "is not a host name or address"),
        ("root@[::1;id]:22", "write an IPv6 address as"),
        ("root@[::1]x", "write an IPv6 address as"),
        ("root@[::1]:22;id", "is not a number"),
        ("root@pi-01:22;id", "is not a number"),
        ("root@pi-01:", "is not a number"),
        ("root@pi-01:ssh", "is not a number"),
        ("root@pi-01:+22", "is not a number"),
        ("root@pi-01:\uff12\uff12", "is not a number"),  # fullwidth digits
        ("root@pi-01:123456", "is not a number"),
        ("root@pi-01:0", "out of range"),
        ("root@pi-01:65536", "out of range"),
    ],
)
def test_ssh_target_refuses_what_is_not_user_at_host(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        SshTarget.parse(text)


@pytest.mark.parametrize("text", ["root@pi-01\n", "root\n@pi-01"])
def test_ssh_target_refuses_a_trailing_newline(text: str) -> None:
    with pytest.raises(ConfigError):
        SshTarget.parse(text)


# -- the agent's config ----------------------------------------------------------------------


def render(**given: Any) -> str:
    values: dict[str, Any] = {
        "device_id": "pi-01", "labels": {"site": "lab"}, "nats_urls": ["nats://10.0.2.2:4222"],
        "podman_socket": files.podman_socket(998), "ca": False, "bootstrap": False,
        "token": None, "heartbeat_interval_s": 10.0,
    }  # fmt: skip
    values.update(given)
    return files.agent_config(**values).decode()


def test_agent_config_is_what_the_agent_reads(tmp_path: Path) -> None:
    ca, creds = tmp_path / "ca.pem", tmp_path / "bootstrap.creds"
    ca.write_text("ca")
    creds.write_text("creds")
    labels = {"site": "lab", "example.com/tier": "edge", "empty": ""}
    text = render(
        labels=labels, nats_urls=["nats://10.0.2.2:4222", "tls://nats.example:4443"],
        ca=True, bootstrap=True, token=TOKEN, heartbeat_interval_s=2.5,
    )  # fmt: skip
    # the agent opens the CA and credential where setup writes them: here, in tmp_path
    assert files.toml_string(files.CA) in text
    assert files.toml_string(files.BOOTSTRAP) in text
    local = text.replace(files.toml_string(files.CA), files.toml_string(str(ca))).replace(
        files.toml_string(files.BOOTSTRAP), files.toml_string(str(creds))
    )
    config = parse_config(local, where="config.toml")
    assert config.device_id == "pi-01"
    assert config.labels == labels
    assert config.nats_urls == ["nats://10.0.2.2:4222", "tls://nats.example:4443"]
    assert config.nats_ca == ca
    assert config.enrollment is not None
    assert config.enrollment.bootstrap_credentials == creds
    assert config.enrollment.token == TOKEN
    assert config.podman_socket == "unix:///run/user/998/podman/podman.sock"
    assert config.heartbeat_interval_s == 2.5
    assert config.state_dir == Path(files.STATE_DIR)


def test_agent_config_without_identity_has_no_ca_enrollment_or_token() -> None:
    text = render(token=TOKEN)  # a token without a bootstrap credential is not written
    config = parse_config(text, where="config.toml")
    assert config.nats_ca is None
    assert config.enrollment is None
    assert TOKEN not in text
    assert set(tomllib.loads(text)) == {"device_id", "labels", "nats", "podman", "agent"}


HOSTILE_URLS = [
    'nats://a"',
    "nats://a\\",
    'nats://a\\"',
    'nats://a"]#',
    'nats://a"""b',
    "nats://a'''b",
    'nats://h",token="x',
    "nats://\u00fc.example:4222",
    "nats://\U0001f600:4222",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_hostile_url_stays_one_string_and_adds_no_key(url: str) -> None:
    one_url_and_no_more(render(nats_urls=[url], labels={"site": "lab"}), url)


@pytest.mark.parametrize(
    "url", ['nats://a"\u0000[enrollment]', "nats://a\x1b[31m", "nats://a\x85b"]
)
def test_a_url_with_a_control_character_is_refused_or_kept_whole(url: str) -> None:
    try:
        text = render(nats_urls=[url], labels={"site": "lab"})
    except ConfigError:
        return
    one_url_and_no_more(text, url)


def one_url_and_no_more(text: str, url: str) -> None:
    doc = tomllib.loads(text)
    assert set(doc) == {"device_id", "labels", "nats", "podman", "agent"}
    assert doc["nats"] == {"urls": [url]}
    assert doc["labels"] == {"site": "lab"}
    assert parse_config(text, where="config.toml").nats_urls == [url]


@pytest.mark.parametrize(
    "labels",
    [
        {"site": 'lab"'},
        {"site": "lab\\"},
        {"site": "lab\nevil = 1"},
        {"site": 'a" = "b'},
        {"site": "l\u00e4b"},
        {"site": "lab]"},
        {'a" = "b': "v"},
        {"a\nb": "v"},
        {"\u00fc": "v"},
        {"site": "x" * 64},
    ],
)
def test_hostile_labels_are_refused_before_rendering(labels: Mapping[str, str]) -> None:
    with pytest.raises(ConfigError, match="label"):
        render(labels=labels)


@pytest.mark.parametrize("url", ["nats://a\x7fb:4222", "nats://a\udcffb:4222"])
def test_a_url_the_agent_could_not_read_is_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        render(nats_urls=[url])


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"device_id": ""}, "invalid device id"),
        ({"device_id": "Pi 01"}, "invalid device id"),
        ({"device_id": 'pi"\n[x]'}, "invalid device id"),
        ({"device_id": "pi/01"}, "invalid device id"),
        ({"labels": {"bad key": "v"}}, "invalid label key"),
        ({"labels": {"k": "bad value"}}, "invalid value"),
        ({"nats_urls": []}, "no NATS URL"),
        ({"nats_urls": ["127.0.0.1:4222"]}, "is not a URL"),
        ({"nats_urls": ["nats://a b:4222"]}, "is not a URL"),
        ({"nats_urls": ["nats://a\n[x]"]}, "is not a URL"),
        ({"nats_urls": ["nats://a\u2028b"]}, "is not a URL"),
        ({"token": "short.0123456789abcdef"}, "enrollment token"),
        ({"token": "ABCDEF.0123456789abcdef"}, "enrollment token"),
        ({"token": 'abcdef.0123456789abcdef"'}, "enrollment token"),
        ({"token": "abcdef.0123456789abcdef x"}, "enrollment token"),
        ({"token": ""}, "enrollment token"),
    ],
)
def test_check_setup_values_refuses_what_the_agent_would(given: dict[str, Any], says: str) -> None:
    values: dict[str, Any] = {
        "device_id": "pi-01", "labels": {}, "nats_urls": ["nats://h:4222"], "token": None,
    }  # fmt: skip
    values.update(given)
    with pytest.raises(ConfigError, match=re.escape(says)):
        files.check_setup_values(**values)
    if "token" in given:  # and the token itself is never shown
        with pytest.raises(ConfigError) as caught:
            files.check_setup_values(**values)
        assert values["token"] == "" or values["token"] not in str(caught.value)


def test_a_token_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match="enrollment token"):
        files.check_setup_values(
            device_id="pi-01", labels={}, nats_urls=["nats://h:4222"], token=TOKEN + "\n"
        )


def test_unit_file_is_the_deployed_unit_byte_for_byte() -> None:
    assert files.unit_file() == (REPO / "deploy/agent/fleet-agent.service").read_bytes()


# -- podman's registries drop-in -----------------------------------------------------------


def test_registries_dropin_lists_each_registry_as_insecure() -> None:
    body = files.registries_dropin(["registry.local:5000", "10.0.2.2:5000", "mirror"])
    doc = tomllib.loads(body.decode())
    assert doc == {
        "registry": [
            {"location": "registry.local:5000", "insecure": True},
            {"location": "10.0.2.2:5000", "insecure": True},
            {"location": "mirror", "insecure": True},
        ]
    }


@pytest.mark.parametrize(
    "name",
    ["", "-reg", "reg/path", "http://reg", "reg;rm -rf /", 'reg"', "reg:", "reg:123456",
     "reg:port", "re g", "[::1]:5000", "reg\n[[registry]]"],
)  # fmt: skip
def test_registries_dropin_refuses_what_is_not_host_port(name: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST"):
        files.registries_dropin(["ok.example", name])


@pytest.mark.parametrize("name", ["reg.local\n", "reg.local:99999"])
def test_registries_dropin_refuses_a_newline_or_a_port_out_of_range(name: str) -> None:
    with pytest.raises(ConfigError):
        files.registries_dropin([name])


# -- the pool's URLs, forwards and marks ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "seen"),
    [
        ("nats://127.0.0.1:4222", "nats://10.0.2.2:4222"),
        ("nats://localhost", "nats://10.0.2.2"),
        ("nats://[::1]:4222", "nats://10.0.2.2:4222"),
        ("nats://user:pw@127.0.0.1:4222/x", "nats://user:pw@10.0.2.2:4222/x"),
        ("tls://nats.example:4443", "tls://nats.example:4443"),
        ("nats://10.1.2.3:4222", "nats://10.1.2.3:4222"),
        ("nats://127.0.0.1.example:4222", "nats://127.0.0.1.example:4222"),
        ("127.0.0.1:4222", "127.0.0.1:4222"),  # not a URL: left for the checks to refuse
    ],
)
def test_guest_url_names_the_host_as_the_vm_sees_it(url: str, seen: str) -> None:
    assert guest_url(url) == seen


def test_guest_url_of_ipv6_loopback_without_a_port() -> None:
    assert guest_url("nats://[::1]") == "nats://10.0.2.2"


def test_check_forwards_takes_loopback_ports_to_guest_ports() -> None:
    assert check_forwards([(18080, 80), (18443, 443), (65535, 1)]) == (
        Forward(protocol="tcp", host_port=18080, guest_port=80),
        Forward(protocol="tcp", host_port=18443, guest_port=443),
        Forward(protocol="tcp", host_port=65535, guest_port=1),
    )
    assert check_forwards([]) == ()


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        ([(80, 80)], "the host port must be 1024-65535"),
        ([(1023, 80)], "the host port must be 1024-65535"),
        ([(65536, 80)], "the host port must be 1024-65535"),
        ([(18080, 0)], "the host port must be 1024-65535"),
        ([(18080, 65536)], "the host port must be 1024-65535"),
        ([(18022, 22)], "not 22"),
        ([(18080, 80), (18080, 81)], "a host port is given twice"),
    ],
)
def test_check_forwards_refuses_bad_ports(pairs: list[tuple[int, int]], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        check_forwards(pairs)


def test_vm_marks_with_forwards_round_trip() -> None:
    marks = VmMarks(
        pool="harmony-fleet", ssh_port=40022, labels={"site": "lab", "tier": "edge"},
        ready=True, forwards=check_forwards([(18080, 80), (18443, 443)]),
    )  # fmt: skip
    for namespaced in (True, False):
        text = ET.tostring(render_marks(marks, namespaced=namespaced), encoding="unicode")
        assert read_vm_marks(text) == marks
    bare = VmMarks(pool="p", ssh_port=22, labels={})
    assert read_vm_marks(ET.tostring(render_marks(bare), encoding="unicode")) == bare


@pytest.mark.parametrize(
    "forward",
    [
        "<forward host='0' guest='80'/>",
        "<forward host='70000' guest='80'/>",
        "<forward host='18080' guest='0'/>",
        "<forward host='18080' guest='65536'/>",
        "<forward host='18080' guest='x'/>",
        "<forward host=' 8080' guest='80'/>",
        "<forward host='-1' guest='80'/>",
        "<forward host='\u0661\u0662\u0663' guest='80'/>",  # Arabic-Indic digits
        "<forward host='18080'/>",
        "<forward guest='80'/>",
        "<forward host='123456' guest='80'/>",
    ],
)
def test_vm_marks_refuse_bad_forward_ports(forward: str) -> None:
    with pytest.raises(ValueError, match="metadata"):
        read_vm_marks(f"<vm pool='p' ssh-port='22' ready='true'>{forward}</vm>")


# -- the wheelhouse's key ------------------------------------------------------------------


def test_source_key_follows_the_package_and_nothing_else(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "fleet/sub").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("[project]\nname = 'fleet'\nversion = '0'\n")
    (checkout / "fleet/x.py").write_text("X = 1\n")
    (checkout / "fleet/sub/y.py").write_text("Y = 1\n")
    key = source_key(checkout)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert source_key(checkout) == key
    # what is not built into the wheel does not count
    (checkout / "fleet/__pycache__").mkdir()
    (checkout / "fleet/__pycache__/x.cpython-311.pyc").write_bytes(b"\0compiled")
    (checkout / "fleet/sub/y.pyc").write_bytes(b"\0compiled")
    (checkout / "tests").mkdir()
    (checkout / "tests/test_x.py").write_text("def test() -> None: ...\n")
    assert source_key(checkout) == key
    # a file of the package, its name, or pyproject.toml does
    (checkout / "fleet/x.py").write_text("X = 2\n")
    changed = source_key(checkout)
    assert changed != key
    (checkout / "fleet/x.py").write_text("X = 1\n")
    assert source_key(checkout) == key
    (checkout / "fleet/sub/y.py").rename(checkout / "fleet/sub/z.py")
    assert source_key(checkout) not in (key, changed)
    (checkout / "fleet/sub/z.py").rename(checkout / "fleet/sub/y.py")
    assert source_key(checkout) == key
    (checkout / "fleet/new.py").write_text("")
    assert source_key(checkout) != key
    (checkout / "fleet/new.py").unlink()
    (checkout / "pyproject.toml").write_text("[project]\nname = 'fleet'\nversion = '1'\n")
    assert source_key(checkout) != key


# -- the preflight's facts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        ((), []),
        (("podman",), ["podman"]),
        (("uidmap", "venv"), ["uidmap", "python3-venv"]),
        (("slirp4netns", "dbus", "dbus_user"), ["slirp4netns", "dbus", "dbus-user-session"]),
        (tuple(GOOD_FACTS), ["podman", "uidmap", "slirp4netns", "python3-venv", "dbus",
                             "dbus-user-session"]),
    ],
)  # fmt: skip
def test_facts_missing_packages(drop: tuple[str, ...], missing: list[str]) -> None:
    facts = Facts({k: v for k, v in GOOD_FACTS.items() if k not in drop})
    assert facts.missing_packages() == missing
    assert Facts({**GOOD_FACTS, "uidmap": "no"}).missing_packages() == ["uidmap"]


def test_facts_read_uid_and_python() -> None:
    assert Facts(GOOD_FACTS).uid == 0
    assert Facts(GOOD_FACTS).python == (3, 11)
    assert Facts({"uid": "1000", "python": "3.13"}).python == (3, 13)
    assert Facts({"uid": "x"}).uid == -1
    assert Facts({}).uid == -1
    assert Facts({"python": "3"}).python is None
    assert Facts({"python": "3.11.2"}).python is None


# -- the interpret, driven by a fake device ---------------------------------------------------


@dataclass
class FakeDevice:
    """A device behind a fake session: canned facts, a file table, every command kept."""

    facts: dict[str, str]
    sudo_ok: bool = True
    user_state: str = (
        "uid=998\nsubuid=yes\nsubgid=yes\nlinger=yes\nsocket=yes\nstate=yes\nlive=yes\n"
    )
    service_state: str = "enabled=enabled\nactive=active\n"
    journal: str = ""
    agent_installed: bool = False
    pending: bool = False
    removed: list[str] = field(default_factory=list)
    # path -> (content, mode, owner)
    files: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    closed: bool = False
    host_key_recorded: bool = False

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 300.0) -> Completed:
        self.commands.append(command)
        argv = shlex.split(command)
        sudo = argv[:2] == ["sudo", "-n"]
        if sudo:
            argv = argv[2:]
        assert argv[:2] == ["sh", "-c"], command
        assert len(argv) == 3, command
        script = argv[2]
        self.scripts.append(script)
        if sudo and not self.sudo_ok:
            return Completed(code=1, stdout=b"", stderr=b"sudo: a password is required\n")
        return self._answer(script, stdin)

    def _answer(self, script: str, stdin: bytes) -> Completed:  # noqa: PLR0911  (a switch)
        canned = {
            "sudo -n true": self._said("", ok=self.sudo_ok),
            FACTS_SCRIPT: self._said("".join(f"{k}={v}\n" for k, v in self.facts.items())),
            USER_STATE: self._said(self.user_state),
        }
        if script in canned:
            return canned[script]
        if "sha256sum" in script:
            return self._said(self._probe(script))
        if "systemctl is-enabled" in script:
            return self._said(self.service_state)
        if script.startswith("journalctl -u fleet-agent"):
            return self._said(self.journal)
        if script.startswith("test -e /opt/fleet-agent/venvs/"):  # the agent's probe
            return self._said("", ok=self.agent_installed)
        if "cat > " in script:
            return self._write(script, stdin)
        if "systemctl restart fleet-agent" in script:
            self.pending = False
            return self._said("")
        if script.endswith(f"touch {PENDING}"):  # a restart owed (files written next)
            self.pending = True
            return self._said("")
        if (gone := re.search(r"\nrm -f (.+)$", script)) is not None:  # an option no more given
            for path in shlex.split(gone[1]):
                self.files.pop(path, None)
                self.removed.append(path)
            return self._said("")
        # anything else (the agent's probe: not installed) fails, as on a bare device
        return Completed(code=1, stdout=b"", stderr=b"fake device: not known here\n")

    @staticmethod
    def _said(out: str, *, ok: bool = True) -> Completed:
        return Completed(code=0 if ok else 1, stdout=out.encode(), stderr=b"")

    def _probe(self, script: str) -> str:
        lines = []
        for quoted in re.findall(r"printf '%s ' (\S+);", script):
            path = shlex.split(quoted)[0]
            if path in self.files:
                content, mode, owner = self.files[path]
                lines.append(f"{path} {hashlib.sha256(content).hexdigest()} {mode} {owner}")
            else:
                lines.append(f"{path}  ")
        for quoted in re.findall(r"test -e (\S+) && echo unwanted", script):
            path = shlex.split(quoted)[0]
            if path in self.files:
                lines.append(f"unwanted {path}")
        return "\n".join(lines) + "\n"

    def _write(self, script: str, stdin: bytes) -> Completed:
        m = re.search(r"chown (\S+) \S+; chmod (\S+) \S+; mv -f \S+ (\S+)$", script)
        assert m is not None, script
        owner, mode, path = m[1], m[2], shlex.split(m[3])[0]
        self.files[path] = (stdin, mode, owner)
        self.written.append(path)
        return self._said("")

    def close(self) -> None:
        self.closed = True

    def mutating(self) -> list[str]:
        return [s for s in self.scripts if any(word in s for word in MUTATING)]


def config(**given: Any) -> FleetDeviceSetupConfig:
    values: dict[str, Any] = {
        "target": SshTarget.parse("root@pi-01"), "nats_urls": ("nats://10.0.2.2:4222",),
        "labels": {"site": "lab"}, "wait": False,
    }  # fmt: skip
    values.update(given)
    return FleetDeviceSetupConfig(**values)


@dataclass
class Run:
    interpret: FleetDeviceSetupInterpret
    device: FakeDevice
    said: list[str]


def interpret_on(device: FakeDevice, tmp_path: Path, **given: Any) -> Run:
    """An interpret whose session is ``device`` (set directly: the interpret takes an
    :class:`SshSession`, so the fake is cast to one)."""
    said: list[str] = []
    score = FleetDeviceSetupScore(config(**given))
    interpret = score.create_interpret(paths=FleetPaths(data_dir=tmp_path), say=said.append)
    interpret._session = cast(SshSession, device)
    interpret._facts = Facts(device.facts)
    return Run(interpret, device, said)


@pytest.fixture
def connect_to(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[FakeDevice], None]:
    """``execute()`` on a fake device: ``open_session`` answers with the device and the
    wheelhouse is a stub (building a real one is the sshd tests' and the VM tests' job)."""

    def use(device: FakeDevice) -> None:
        def open_fake(target: SshTarget, **_: Any) -> FakeDevice:
            return device

        def wheelhouse(*_: Any, **__: Any) -> Wheelhouse:
            return Wheelhouse(folder=tmp_path, key="src-0-cp311-x86_64", fleet_wheel="fleet-0.whl")

        monkeypatch.setattr(setup, "open_session", open_fake)
        monkeypatch.setattr(setup, "ensure_wheelhouse", wheelhouse)

    return use


@pytest.mark.parametrize(
    ("facts", "sudo_ok", "says"),
    [
        ({**GOOD_FACTS, "arch": "mips64"}, True, "architecture: mips64 is not supported"),
        ({**GOOD_FACTS, "init": "openrc"}, True, "init: openrc: fleet-agent runs as a systemd"),
        ({**GOOD_FACTS, "python": "3.9"}, True, "python: 3.9 is too old"),
        ({k: v for k, v in GOOD_FACTS.items() if k != "python"}, True, "python3 not found"),
        ({**GOOD_FACTS, "podman": "", "pkg": "apk"}, True, "with the device's package manager"),
        ({**GOOD_FACTS, "uid": "1000"}, False, "cannot sudo without a password"),
    ],
)  # fmt: skip
def test_a_failed_preflight_changes_nothing(
    facts: dict[str, str], sudo_ok: bool, says: str, connect_to: Any, tmp_path: Path
) -> None:
    device = FakeDevice(facts=facts, sudo_ok=sudo_ok)
    connect_to(device)
    said: list[str] = []
    score = FleetDeviceSetupScore(config(target=SshTarget.parse("pi@pi-01")))
    interpret = score.create_interpret(paths=FleetPaths(data_dir=tmp_path), say=said.append)
    with pytest.raises(ProvisioningFailed, match="preflight failed, nothing was changed") as e:
        interpret.execute()
    assert says in str(e.value)
    assert "\n" not in str(e.value)
    # the facts script and (not root) the sudo probe: no command after the preflight's
    expected = ["sh -c " + shlex.quote(FACTS_SCRIPT)]
    if facts["uid"] != "0":
        expected.append("sh -c 'sudo -n true'")
    assert device.commands == expected
    assert device.closed
    checks = [line.split(": ")[1] for line in said if line.startswith("[2/8] preflight: ")]
    assert checks == ["architecture", "os", "init", "python", "podman", "sudo"]
    assert interpret.changed == []


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(
    connect_to: Any, tmp_path: Path
) -> None:
    facts = {**GOOD_FACTS, "uid": "1000", "uidmap": "no"}
    device = FakeDevice(facts=facts, user_state="", service_state="enabled=\nactive=inactive\n")
    connect_to(device)
    said: list[str] = []
    score = FleetDeviceSetupScore(config(target=SshTarget.parse("pi@pi-01"), dry_run=True))
    outcome = score.create_interpret(paths=FleetPaths(data_dir=tmp_path), say=said.append).execute()
    assert device.mutating() == []
    assert device.written == []
    assert device.closed
    assert outcome.dry_run
    assert outcome.device_id == "pi-01"
    assert outcome.changed == ["packages", "user", "agent", "files", "service"]
    would = [line for line in said if ": would " in line]
    assert [line.split(": ")[0] for line in would] == [
        "[3/8] packages", "[4/8] user", "[5/8] agent", "[6/8] files", "[7/8] service",
    ]  # fmt: skip
    assert "would install uidmap (apt-get)" in would[0]
    assert f"would make {files.AGENT_USER}" in would[1]
    assert files.CONFIG in would[3]
    assert files.UNIT in would[3]
    assert "would enable and start fleet-agent" in would[4]
    assert said[-1] == "dry run: nothing was changed on pi@pi-01"


def test_a_run_on_a_device_set_up_already_changes_nothing(connect_to: Any, tmp_path: Path) -> None:
    """The same device state a real run leaves: every step finds it done."""
    device = FakeDevice(facts=dict(GOOD_FACTS))
    run = interpret_on(device, tmp_path)
    for f in run.interpret.wanted_files("pi-01", 998):
        device.files[f.path] = (f.content, f.mode, f.owner)
    run.interpret.packages()
    assert run.interpret.user() == 998
    run.interpret.files("pi-01", 998)
    run.interpret.service()
    assert run.interpret.changed == []
    assert device.mutating() == []
    assert "[6/8] files: 3 files as they should be" in run.said


def test_the_file_step_writes_only_files_that_differ(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    device = FakeDevice(facts={**GOOD_FACTS, "uid": "1000"})
    run = interpret_on(device, tmp_path, target=SshTarget.parse("pi@pi-01"), nats_ca=ca)
    wanted = {f.path: f for f in run.interpret.wanted_files("pi-01", 998)}
    assert set(wanted) == {files.CONFIG, files.UNIT, files.DROPIN, files.CA}
    config_file, unit, dropin = wanted[files.CONFIG], wanted[files.UNIT], wanted[files.DROPIN]
    assert (config_file.mode, config_file.owner) == ("640", "root:fleet-agent")
    device.files = {
        files.UNIT: (unit.content, unit.mode, unit.owner),  # as it should be
        files.CONFIG: (config_file.content, config_file.mode, "root:root"),  # owner differs
        files.DROPIN: (dropin.content, "600", dropin.owner),  # mode differs
        # the CA is missing
    }
    run.interpret.files("pi-01", 998)
    assert sorted(device.written) == sorted([files.CONFIG, files.DROPIN, files.CA])
    for path, f in wanted.items():
        assert device.files[path] == (f.content, f.mode, f.owner)
    assert run.interpret.changed == ["files"]
    assert run.interpret.restart
    # a device user other than root: every probe and write went through sudo
    assert all(c.startswith("sudo -n sh -c ") for c in device.commands)
    # content differs: rewritten; then nothing more
    device.files[files.UNIT] = (b"[Unit]\nDescription=old\n", unit.mode, unit.owner)
    device.written.clear()
    run.interpret.files("pi-01", 998)
    assert device.written == [files.UNIT]
    device.written.clear()
    run.interpret.files("pi-01", 998)
    assert device.written == []
    assert run.said[-1] == "[6/8] files: 4 files as they should be"


def test_the_file_step_never_puts_the_token_on_a_command_line(tmp_path: Path) -> None:
    creds = tmp_path / "bootstrap.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    device = FakeDevice(facts=dict(GOOD_FACTS))
    run = interpret_on(device, tmp_path, bootstrap_credentials=creds, enrollment_token=TOKEN)
    run.interpret.files("pi-01", 998)
    assert files.CONFIG in device.written
    assert files.BOOTSTRAP in device.written
    assert TOKEN.encode() in device.files[files.CONFIG][0]
    assert not any(TOKEN in c for c in device.commands)
    assert not any(TOKEN in line for line in run.said)
    assert json.dumps(TOKEN) in device.files[files.CONFIG][0].decode()


@pytest.mark.parametrize(
    "given",
    [
        {"hostname": "pi.lan"},
        {"hostname": ""},
        {"device_id": "Pi 01"},
        {"labels": {"bad key": "v"}},
    ],
)
def test_bad_setup_values_are_refused_before_any_step_changes_the_device(
    given: dict[str, Any], connect_to: Callable[[FakeDevice], None], tmp_path: Path
) -> None:
    facts = {**GOOD_FACTS, "uidmap": "no", "hostname": given.pop("hostname", "pi-01")}
    device = FakeDevice(facts=facts, user_state="")
    connect_to(device)
    said: list[str] = []

    def set_up() -> None:
        score = FleetDeviceSetupScore(config(dry_run=True, **given))
        score.create_interpret(paths=FleetPaths(data_dir=tmp_path), say=said.append).execute()

    with pytest.raises(ConfigError):
        set_up()
    assert [line for line in said if ": would " in line] == []


def test_no_heartbeat_in_time_names_the_agents_last_log_line(
    connect_to: Callable[[FakeDevice], None], tmp_path: Path
) -> None:
    """A device whose agent cannot reach NATS (a wrong URL): the run fails at the bus
    step with one line quoting what the agent said, never waiting past its bound."""
    journal = "starting\nnats: cannot connect to nats://10.0.2.9:4222: timed out\n"
    device = FakeDevice(facts=dict(GOOD_FACTS), journal=journal, agent_installed=True)
    for f in interpret_on(device, tmp_path).interpret.wanted_files("pi-01", 998):
        device.files[f.path] = (f.content, f.mode, f.owner)
    device.commands.clear()
    connect_to(device)
    asked: list[str] = []

    def sighting(device_id: str) -> tuple[int | None, int | None]:
        asked.append(device_id)
        return (None, None)

    score = FleetDeviceSetupScore(config(wait=True, wait_timeout_s=1.0))
    interpret = score.create_interpret(
        paths=FleetPaths(data_dir=tmp_path), sighting=sighting, say=lambda _l: None
    )
    started = time.monotonic()
    with pytest.raises(ProvisioningFailed) as failed:
        interpret.execute()
    assert time.monotonic() - started < 30
    message = str(failed.value)
    assert "\n" not in message
    assert "bus: pi-01 sent no info and heartbeat within 1 s" in message
    assert "nats: cannot connect to nats://10.0.2.9:4222: timed out" in message
    assert asked
    assert set(asked) == {"pi-01"}
    assert device.closed


def test_a_restart_a_killed_run_owed_is_made_by_the_next_run(tmp_path: Path) -> None:
    """Killed after the link or a file was renamed into place, before the restart: the
    next run finds everything as it should be, and restarts for the marker."""
    device = FakeDevice(
        facts=dict(GOOD_FACTS), service_state="enabled=enabled\nactive=active\npending=yes\n"
    )
    run = interpret_on(device, tmp_path)
    run.interpret.service()
    assert run.interpret.changed == ["service"]
    restart = [c for c in device.scripts if "systemctl restart fleet-agent" in c]
    assert len(restart) == 1
    assert restart[0].endswith(f"rm -f {PENDING}")
    assert "[7/8] service: fleet-agent enabled and restarted" in run.said
    # without the marker, nothing to do
    device.service_state = "enabled=enabled\nactive=active\n"
    again = interpret_on(device, tmp_path)
    again.interpret.service()
    assert again.interpret.changed == []


def test_files_of_options_no_more_given_are_removed(tmp_path: Path) -> None:
    """A registry, CA or credential given once and dropped later: not left in use."""
    device = FakeDevice(facts=dict(GOOD_FACTS))
    run = interpret_on(device, tmp_path)
    for f in run.interpret.wanted_files("pi-01", 998):
        device.files[f.path] = (f.content, f.mode, f.owner)
    device.files[files.REGISTRIES] = (b"[[registry]]\n", "644", "root:root")
    device.files[files.CA] = (b"-----BEGIN CERTIFICATE-----\n", "644", "root:root")
    run.interpret.files("pi-01", 998)
    assert sorted(device.removed) == sorted([files.REGISTRIES, files.CA])
    assert device.written == []
    assert device.pending
    assert run.interpret.changed == ["files"]
    assert run.interpret.restart
    again = interpret_on(device, tmp_path)
    again.interpret.files("pi-01", 998)
    assert again.interpret.changed == []


def test_a_32_bit_userland_on_a_64_bit_kernel_is_refused(connect_to: Any, tmp_path: Path) -> None:
    device = FakeDevice(facts={**GOOD_FACTS, "arch": "aarch64", "bits": "32"})
    connect_to(device)
    score = FleetDeviceSetupScore(config())
    with pytest.raises(ProvisioningFailed, match="32-bit userland: install the device's 64-bit"):
        score.create_interpret(paths=FleetPaths(data_dir=tmp_path)).execute()


def test_a_stock_hostname_is_not_taken_as_the_device_id(connect_to: Any, tmp_path: Path) -> None:
    device = FakeDevice(facts={**GOOD_FACTS, "hostname": "raspberrypi"})
    connect_to(device)
    score = FleetDeviceSetupScore(config(dry_run=True))
    with pytest.raises(ConfigError, match="'raspberrypi', a stock image's default"):
        score.create_interpret(paths=FleetPaths(data_dir=tmp_path)).execute()
    named = FleetDeviceSetupScore(config(dry_run=True, device_id="pi-kitchen"))
    outcome = named.create_interpret(paths=FleetPaths(data_dir=tmp_path)).execute()
    assert outcome.device_id == "pi-kitchen"


def test_what_a_hostile_device_prints_neither_reaches_the_terminal_nor_crashes(
    connect_to: Any, tmp_path: Path
) -> None:
    facts = {**GOOD_FACTS, "os_name": "\x1b[2J\x1b]0;pwn\x07Debian", "uid": "\u00b2"}
    device = FakeDevice(facts=facts, sudo_ok=False)
    connect_to(device)
    said: list[str] = []
    score = FleetDeviceSetupScore(config(target=SshTarget.parse("pi@pi-01")))
    with pytest.raises(ProvisioningFailed, match="cannot sudo"):
        score.create_interpret(paths=FleetPaths(data_dir=tmp_path), say=said.append).execute()
    assert not any("\x1b" in line or "\x07" in line for line in said)
    assert "[2/8] preflight: os: debian" in said


@pytest.mark.parametrize("beat", [float("inf"), float("nan"), 0.0, -1.0, 86400.0])
def test_a_heartbeat_interval_out_of_range_is_refused(beat: float) -> None:
    with pytest.raises(ConfigError, match="heartbeat interval"):
        config(heartbeat_interval_s=beat)


def test_an_unreadable_credential_is_refused_before_the_device_is_reached(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        config(bootstrap_credentials=tmp_path)  # a folder: open() refuses it, even as root
    assert "token" not in repr(config())
    token_config = config(
        bootstrap_credentials=Path(__file__), enrollment_token="abcdef.0123456789abcdef"
    )
    assert "0123456789abcdef" not in repr(token_config)
