"""The enrollment rules without servers: fake resources, a fake authority."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from fleet.actors.operator.enrollment import tokens
from fleet.actors.operator.enrollment.intake import Checked, RecentAnswers, Refused, take
from fleet.actors.operator.enrollment.revocation import Revocations
from fleet.actors.operator.enrollment.rules import PENDING_RETRY_S, EnrollmentRules
from fleet.cli.operator import parse_args
from fleet.contracts import EnrollmentReply, decode_enrollment_request
from fleet.runtime.kube.client import KubeConflict
from fleet.runtime.kube.enrollment_store import EnrollmentRecord, TokenRecord
from fleet.runtime.nats import subjects

from .world import SimDevice, now


class FakeStore:
    def __init__(self) -> None:
        self.requests: dict[str, EnrollmentRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.devices: dict[str, str] = {}
        self.approved_labels: dict[str, dict[str, str]] = {}
        self.races = 0  # consume_token loses this many races first

    def get_request(self, name: str) -> EnrollmentRecord | None:
        return self.requests.get(name)

    def list_requests(self) -> list[EnrollmentRecord]:
        return list(self.requests.values())

    def count_pending(self) -> int:
        return sum(1 for r in self.requests.values() if r.phase == "Pending")

    def create_request(self, name: str, spec: Mapping[str, Any]) -> None:
        if name in self.requests:
            raise KubeConflict(name)
        self.requests[name] = EnrollmentRecord(
            name=name, device_id=spec["deviceId"], public_key=spec["publicKey"], phase="Pending"
        )

    def set_status(self, name: str, status: Mapping[str, Any]) -> None:
        record = self.requests[name]
        changes: dict[str, Any] = {}
        if "phase" in status:
            changes["phase"] = status["phase"]
        if "approvedBy" in status:
            changes["approved_by"] = status["approvedBy"]
        if "conditions" in status:
            changes["conditions"] = tuple(status["conditions"])
        self.requests[name] = msgspec.structs.replace(record, **changes)

    def get_token(self, name: str) -> TokenRecord | None:
        return self.tokens.get(name)

    def consume_token(self, token: TokenRecord, device_id: str) -> None:
        if self.races:
            self.races -= 1
            raise KubeConflict("lost")
        self.tokens[token.name] = msgspec.structs.replace(
            token, uses_left=token.uses_left - 1, used_by=(*token.used_by, device_id)
        )

    def device_key(self, name: str) -> str | None:
        return self.devices.get(name)

    def device_names(self) -> set[str]:
        return set(self.devices)

    def bind_device(
        self, name: str, *, device_id: str, public_key: str, labels: Mapping[str, str]
    ) -> None:
        if self.devices.get(name, public_key) != public_key:
            raise KubeConflict(name)
        self.approved_labels.setdefault(name, dict(labels))
        self.devices[name] = public_key


class FakeSigner:
    def __init__(self) -> None:
        self.revocations: set[str] = set()
        self.pushes = 0

    def device_jwt(self, device_id: str, public_key: str, *, expires_in: float) -> tuple[str, str]:
        assert public_key not in self.revocations
        return f"jwt-{device_id}", "2030-01-01T00:00:00Z"

    def revoked(self, public_key: str) -> bool:
        return public_key in self.revocations

    def revoke(self, public_key: str) -> None:
        self.revocations.add(public_key)
        self.pushes += 1

    def revoke_quietly(self, public_keys: list[str]) -> int:
        new = set(public_keys) - self.revocations
        self.revocations |= new
        return len(new)

    def push(self) -> None:
        self.pushes += 1


def request_of(device: SimDevice, **kwargs: Any) -> Any:
    return decode_enrollment_request(device.enrollment(**kwargs))


def token(store: FakeStore, *, uses: int = 1, labels: dict[str, str] | None = None) -> str:
    store.tokens["abc123"] = TokenRecord(
        name="abc123", expires=now() + datetime.timedelta(hours=1), uses_left=uses,
        labels=labels or {}, secret_hash=tokens.secret_hash("s" * 20), used_by=(),
        resource_version="1",
    )  # fmt: skip
    return "abc123." + "s" * 20


def test_first_request_pending_then_a_person_approves() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer)
    device = SimDevice("u-1")
    assert rules.enroll(request_of(device)).status == "pending"
    store.requests["u-1"] = msgspec.structs.replace(store.requests["u-1"], decision="Approved")
    reply = rules.enroll(request_of(device))
    assert (reply.status, reply.jwt) == ("approved", "jwt-u-1")
    assert store.devices["u-1"] == device.key


def test_another_key_is_refused_and_noted_never_replacing_the_first() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer)
    first, second = SimDevice("u-2"), SimDevice("u-2")
    rules.enroll(request_of(first))
    assert rules.enroll(request_of(second)).status == "refused"
    record = store.requests["u-2"]
    assert record.public_key == first.key
    assert [c["type"] for c in record.conditions] == ["KeyConflict"]


def test_a_lost_race_reads_the_token_again_and_a_crash_does_not_spend_twice() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer)
    secret = token(store, uses=2)
    store.races = 3
    device = SimDevice("u-3")
    assert rules.enroll(request_of(device, token=secret)).status == "approved"
    assert store.tokens["abc123"].uses_left == 1
    # the operator died after spending, before the request said Approved: asked again
    store.requests["u-3"] = msgspec.structs.replace(store.requests["u-3"], phase="Pending")
    assert rules.enroll(request_of(device, token=secret)).status == "approved"
    assert store.tokens["abc123"].uses_left == 1
    assert store.tokens["abc123"].used_by == ("u-3",)


def test_too_many_pending_are_refused() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer, max_pending=2)
    for i in range(2):
        assert rules.enroll(request_of(SimDevice(f"p-{i}"))).status == "pending"
    reply = rules.enroll(request_of(SimDevice("p-9")))
    assert reply.status == "refused"
    assert "too many pending" in (reply.reason or "")
    assert "p-9" not in store.requests


def test_revoked_devices_are_refused_and_revocations_are_rebuilt() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer)
    revocations = Revocations(store=store, signer=signer)
    kept, gone = SimDevice("r-1"), SimDevice("r-2")
    for device in (kept, gone):
        rules.enroll(request_of(device))
        store.requests[device.device_id] = msgspec.structs.replace(
            store.requests[device.device_id], decision="Approved"
        )
        assert rules.enroll(request_of(device)).status == "approved"
    del store.devices["r-2"]  # its Device resource was deleted while the operator was away
    assert revocations.rebuild() == ["r-2"]
    assert signer.revocations == {gone.key}
    assert store.requests["r-2"].phase == "Revoked"
    assert rules.enroll(request_of(gone)).status == "refused"
    assert rules.enroll(request_of(kept)).status == "approved"


def test_intake_answers_only_an_inbox_of_the_asker_s_kind() -> None:
    data = SimDevice("i-1").enrollment()
    at = now().timestamp()
    dropped = take(subjects.ENROLL, "$KV.desired-state.victim.web", data, now=at)
    assert isinstance(dropped, Refused)
    assert dropped.reply == ""  # never published there
    assert isinstance(take(subjects.ENROLL, "_INBOX_bootstrap.abc.1", data, now=at), Checked)
    renewal = SimDevice("i-1").renewal()
    other = take("fleet.renew.i-1", "_INBOX_device_i-2.x", renewal, now=at)
    assert isinstance(other, Refused)
    assert other.reply == ""
    wrong = take("fleet.renew.i-2", "_INBOX_device_i-2.x", renewal, now=at)
    assert isinstance(wrong, Refused)
    assert "not the subject's device" in wrong.reason


def test_a_repeat_within_a_second_gets_the_same_answer() -> None:
    recent = RecentAnswers(hold=1.0, max_in_flight=1)
    key = ("enroll", "d", "U")
    assert recent.seen(key, now=0.0)[0] == "new"
    recent.start(key)
    assert recent.busy
    assert recent.seen(key, now=0.1)[0] == "in-flight"
    answer = EnrollmentReply(status="pending")
    recent.done(key, answer, now=0.2)
    assert recent.seen(key, now=0.5) == ("answered", answer)
    assert recent.seen(key, now=1.5)[0] == "new"


def test_a_pending_device_is_told_to_ask_again_after_the_configured_delay() -> None:
    rules = EnrollmentRules(store=FakeStore(), signer=FakeSigner(), pending_retry=2.5)
    assert rules.enroll(request_of(SimDevice("u-9"))).retry_after_s == 2.5
    assert parse_args(["--pending-retry", "1"]).pending_retry == 1.0
    assert parse_args([]).pending_retry == PENDING_RETRY_S
    for bad in ("0.5", "301"):
        with pytest.raises(SystemExit):
            parse_args(["--pending-retry", bad])


def test_a_device_revoked_by_a_person_then_deleted_is_revoked_once() -> None:
    store, signer = FakeStore(), FakeSigner()
    rules = EnrollmentRules(store=store, signer=signer)
    revocations = Revocations(store=store, signer=signer)
    device = SimDevice("r-9")
    rules.enroll(request_of(device))
    store.requests["r-9"] = msgspec.structs.replace(store.requests["r-9"], decision="Approved")
    assert rules.enroll(request_of(device)).status == "approved"
    # fleetctl device revoke: decision Revoked, then the Device resource deleted
    store.requests["r-9"] = msgspec.structs.replace(store.requests["r-9"], decision="Revoked")
    assert revocations.decided("r-9")
    del store.devices["r-9"]
    assert not revocations.device_deleted("r-9", public_key=device.key)
    assert (signer.revocations, signer.pushes) == ({device.key}, 1)
    assert store.requests["r-9"].phase == "Revoked"
