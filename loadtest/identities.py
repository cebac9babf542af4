"""Device identity for a load run: the run's authority, and one credential per device.

Why it exists: ``loadtest/run --auth`` measures what device identity costs a fleet
(docs/security.md): nats-server with JWT auth and TLS, every simulated device on its own
connection with its own user JWT and exactly a device's permissions, the operator and
the run's checker with theirs. The run makes a throwaway authority and CA; the swarm's
processes (locust forks them) read the authority's seeds from a file the run wrote, and
issue each device's credential in memory as the device starts (10,000 ``.creds`` files,
each fsynced, would measure the disk).

Enrollment is not what this measures (that is the operator's service, with its own
figures); here a device is handed the credential enrollment would have given it.

What it must never do: serve anything but a load run on 127.0.0.1, or print a seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from fleet.contracts import DeviceId
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.nats.identity import Authority, AuthoritySeeds
from fleet.runtime.nats.permissions import Permissions, device_permissions, operator_permissions
from fleet.runtime.nats.server import LocalNatsServer
from loadtest.natsauth import LeanCredentials

DEVICE_CREDENTIAL_TTL = 86_400.0  # a day: the default of enrolled devices


@dataclass(frozen=True, kw_only=True)
class RunIdentity:
    """The run's authority, CA and the operator's credential file."""

    authority: Authority
    ca: LocalCa | None  # None: auth without TLS (to tell their costs apart)
    seeds_file: Path
    operator_creds: Path

    @classmethod
    def create(cls, directory: Path, *, tls: bool = True) -> RunIdentity:
        directory.mkdir(parents=True, exist_ok=True)
        authority = Authority.create(name="loadtest")
        seeds_file = directory / "authority.json"
        fd = os.open(seeds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(authority.seeds()))
        operator = authority.issue(operator_permissions(), expires_in=DEVICE_CREDENTIAL_TTL)
        return cls(
            authority=authority,
            ca=make_local_ca(directory / "ca") if tls else None,
            seeds_file=seeds_file,
            operator_creds=operator.write(directory / "operator.creds"),
        )

    def server(self, store_dir: Path) -> LocalNatsServer:
        """A nats-server trusting this authority, with TLS."""
        return LocalNatsServer(
            store_dir=store_dir,
            auth=self.authority.server_auth(),
            tls=self.ca.server if self.ca is not None else None,
        )

    @property
    def ca_cert(self) -> Path | None:
        return self.ca.ca_cert if self.ca is not None else None

    @property
    def operator(self) -> Permissions:
        """The operator's permissions (the run's control connection uses them too)."""
        return operator_permissions()


class DeviceIssuer:
    """Issues device credentials in a swarm process, from the run's seeds file."""

    def __init__(self, seeds_file: Path) -> None:
        seeds = msgspec.json.decode(seeds_file.read_bytes(), type=AuthoritySeeds)
        self._authority = Authority(
            operator_seed=seeds.operator, system_seed=seeds.system,
            account_seed=seeds.account, signing_seed=seeds.signing, name="loadtest",
        )  # fmt: skip

    def issue(self, device_id: str) -> tuple[LeanCredentials, str]:
        """A credential for ``device_id`` and the inbox prefix it must use."""
        permissions = device_permissions(DeviceId.try_new(device_id))
        user = self._authority.issue(permissions, expires_in=DEVICE_CREDENTIAL_TTL)
        return LeanCredentials(jwt=user.jwt, seed=user.seed), permissions.inbox_prefix
