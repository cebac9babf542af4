"""Bad input to the dashboard's flags and to the emulator's reviews: a clear message, a 4xx."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from fleet.cli.fleetctl.main import main as fleetctl_main
from fleet.cli.operator import parse_args
from fleet.devtools._kube_reviews import TOKEN_REVIEWS
from tests.fixtures.kube import KubeCluster


@pytest.mark.parametrize("address", ["nowhere", "127.0.0.1:99999", "::1:80"])
def test_the_operator_refuses_a_bad_dashboard_address(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--dashboard-address", address])
    assert exit_.value.code == 2
    assert "--dashboard-address" in capsys.readouterr().err


def test_the_dashboard_is_off_by_default() -> None:
    assert parse_args([]).dashboard_address is None


def test_fleetctl_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        fleetctl_main(["dashboard", "--port", "70000"])
    assert exit_.value.code == 2
    assert "must be 0..65535" in capsys.readouterr().err


def test_the_emulator_refuses_a_review_that_is_not_one(kube: KubeCluster) -> None:
    request = urllib.request.Request(
        kube.url + TOKEN_REVIEWS, data=b"{not json", method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert b"bad review" in refused.value.read()
    refused.value.close()
