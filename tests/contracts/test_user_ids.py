"""A container's ``user``: a uid or gid chown(2) cannot take is refused by the contract,
naming ``user``, and never reaches the agent's chown (an OverflowError crash)."""

from __future__ import annotations

import pytest

from fleet.actors.agent.runtimes.podman import _uid
from fleet.contracts.workload import MAX_ID, check_user
from fleet.errors import ContractError


@pytest.mark.parametrize("user", ["9999999999", "0:9999999999", f"{MAX_ID + 1}", "4294967295"])
def test_an_id_past_the_largest_is_refused_naming_user(user: str) -> None:
    with pytest.raises(ContractError, match="user must be") as caught:
        check_user(user)
    assert caught.value.field == "user"


@pytest.mark.parametrize("user", ["0", "1000:1000", f"{MAX_ID}", "app:wheel", f"1:{MAX_ID}"])
def test_ids_in_range_and_names_are_accepted(user: str) -> None:
    check_user(user)


def test_the_agent_reads_no_uid_chown_cannot_take() -> None:
    assert _uid("1000:1000") == 1000
    assert _uid("9999999999") is None
    assert _uid("app") is None
    assert _uid(None) is None
