"""The finalizer rules as pure functions: added to live Deployments, released only when safe."""

from __future__ import annotations

from fleet.actors.operator.finalizer import (
    FinalizerRequests,
    is_deleting,
    may_release,
    needs_finalizer,
)
from fleet.contracts import FINALIZER

from .fakes import obj

LIVE = obj()
HELD = obj(finalizers=(FINALIZER,))
DELETING = obj(deleting=True, finalizers=(FINALIZER,))


def test_a_live_deployment_without_the_finalizer_needs_it() -> None:
    assert needs_finalizer(LIVE)
    assert not needs_finalizer(HELD)
    assert not needs_finalizer(DELETING)
    assert not needs_finalizer(None)
    assert is_deleting(DELETING)
    assert not is_deleting(HELD)


def test_an_owner_releases_only_when_no_entry_is_left_or_being_written() -> None:
    assert not may_release(HELD, synced=True, owner=True, entries=0, writing=0)
    assert not may_release(DELETING, synced=True, owner=True, entries=3, writing=0)
    assert not may_release(DELETING, synced=True, owner=True, entries=0, writing=1)
    assert may_release(DELETING, synced=True, owner=True, entries=0, writing=0)


def test_a_non_owner_releases_only_after_the_initial_sync() -> None:
    assert not may_release(DELETING, synced=False, owner=False, entries=0, writing=0)
    assert may_release(DELETING, synced=True, owner=False, entries=0, writing=0)


def test_each_change_is_asked_once_and_again_after_a_failure() -> None:
    requests = FinalizerRequests()
    assert requests.want(LIVE, present=True)
    assert not requests.want(LIVE, present=True)  # asked already
    requests.failed()
    assert requests.want(LIVE, present=True)
    assert requests.want(DELETING, present=False)
    assert not requests.want(DELETING, present=False)
    fresh = FinalizerRequests()
    assert not fresh.want(obj(deleting=True), present=False)  # nothing to remove
    assert not fresh.want(None, present=True)


def test_requests_go_through_the_api_port_and_a_failure_asks_for_a_retry() -> None:
    from fleet.actors.operator.messages import FinalizerDone

    from .fakes import Api, Replies

    api, replies = Api(), Replies()
    requests = FinalizerRequests(("ns", "web"), api=api, replies=replies)
    requests.request(LIVE, present=True)
    requests.request(LIVE, present=True)  # once
    assert api.finalizers == [True]
    (done,) = replies.take()
    assert done == FinalizerDone(present=True, error=None)
    assert not requests.done(done)
    assert requests.done(FinalizerDone(present=False, error="409 conflict"))  # retry
    requests.request(DELETING, present=False)
    assert api.finalizers == [True, False]
