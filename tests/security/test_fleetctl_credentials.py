"""fleetctl reads the fleet over its own credentials and TLS (``--nats-credentials``,
``--nats-ca``), with its own inboxes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleet.cli.fleetctl.main import main
from fleet.runtime.nats.identity import Authority
from fleet.runtime.nats.permissions import fleetctl_permissions
from tests.security.conftest import SecureFleet

pytestmark = pytest.mark.timeout(60)


def test_fleetctl_devices_over_credentials_and_tls(secure_fleet: SecureFleet) -> None:
    out = io.StringIO()
    code = main(
        ["devices", "--nats-url", secure_fleet.server.url,
         "--nats-credentials", str(secure_fleet.creds["fleetctl"]),
         "--nats-ca", str(secure_fleet.ca.ca_cert), "-o", "json"],
        out=out,
    )  # fmt: skip
    assert code == 0, out.getvalue()
    assert out.getvalue().strip().startswith("[")


def test_fleetctl_without_credentials_cannot_reach_a_secure_server(
    secure_fleet: SecureFleet,
) -> None:
    code = main(
        ["devices", "--nats-url", secure_fleet.server.url, "--nats-ca",
         str(secure_fleet.ca.ca_cert), "--connect-timeout", "1"],
        out=io.StringIO(),
    )  # fmt: skip
    assert code == 3


def test_fleetctl_refused_for_its_credentials_says_so_not_unreachable(
    secure_fleet: SecureFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = Authority.create().issue(fleetctl_permissions(), expires_in=600)
    creds = stranger.write(tmp_path / "stranger.creds")  # signed by another account
    code = main(
        ["devices", "--nats-url", secure_fleet.server.url, "--nats-credentials", str(creds),
         "--nats-ca", str(secure_fleet.ca.ca_cert), "--connect-timeout", "2"],
        out=io.StringIO(),
    )  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert "refused fleetctl's credentials" in err, err
    assert "Authorization Violation" in err
    assert "cannot reach" not in err
