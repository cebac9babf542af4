"""The thin actors themselves, wired to fake ports (no NATS, no Kubernetes): a Deployment
actor writes, registers its targets, counts their classes and releases its finalizer; the
fleet index targets by labels, routes, and hands entries over."""

from __future__ import annotations

from typing import Any

from fleet.actors.operator import messages as m
from fleet.actors.operator.deployment import DeploymentActor
from fleet.actors.operator.fleet import FleetIndex, Query
from fleet.actors.operator.spec import parse_spec
from fleet.contracts import FINALIZER, DeploymentName, DeviceId, DeviceInfo, Inventory
from fleet.runtime.actorkit.pool import ActorPool

from .fakes import Api, Ref, Timers, Writer, at, eventually, obj, spec_json

D1, D2 = DeviceId("d1"), DeviceId("d2")
WEB = DeploymentName("web")


def spec_msg(**kw: Any) -> m.Spec:
    o = obj(finalizers=(FINALIZER,), **kw)
    return m.Spec(obj=o, spec=parse_spec(name="web", spec_json=o.spec), error=None,
                  conflict_with=None)  # fmt: skip


def expects(ref: Ref) -> list[m.Expect]:
    return [x for x in ref.told if isinstance(x, m.Expect)]


def test_a_deployment_actor_writes_counts_and_releases_through_fake_ports() -> None:
    writer, api = Writer(auto=True), Api()
    index, dev1, dev2 = Ref("index"), Ref("d1"), Ref("d2")
    timers = Timers(hold=(m.RegisterLate,))
    actor = DeploymentActor.start(
        key=("ns", "web"), writer=writer, api=api, timers=timers, index=index
    )
    try:
        actor.tell(spec_msg())
        actor.tell(m.Activate(desired=(), targets=((D1, dev1), (D2, dev2))))
        eventually(lambda: sorted(writer.keys("put")) == ["d1.web", "d2.web"])
        eventually(lambda: [e.revision for e in expects(dev1)][-1:] in ([100], [101]))
        first = expects(dev1)[0]
        assert first.revision in (100, 101)  # registered once, when its entry was written
        assert not first.answer  # a first registration: silence means pending
        assert len(timers.held) == 1  # the late registration, not needed here
        reply = first.reply
        reply.put(m.Classified(device=D1, cls="running"))
        reply.put(m.Classified(device=D2, cls="failed", message="boom"))
        reply.put(m.Classified(device=DeviceId("d9"), cls="running"))  # not a target: ignored

        def counted() -> None:
            assert api.statuses
            status = api.statuses[-1]
            assert status["aggregate"]["running"] == 1
            assert status["aggregate"]["failed"] == 1
            assert status["aggregate"]["targeted"] == 2
            assert status["failingDevices"] == [{"device": "d2", "message": "boom"}]

        eventually(counted)
        actor.tell(spec_msg(deleting=True))
        eventually(lambda: sorted(writer.keys("delete")) == ["d1.web", "d2.web"])
        eventually(lambda: api.finalizers == [False])
        actor.tell(m.Retire())
        eventually(lambda: any(isinstance(x, m.Released) for x in index.told))
        (released,) = [x for x in index.told if isinstance(x, m.Released)]
        assert released.entries == ()  # all deleted
        assert any(isinstance(x, m.Unexpect) for x in dev1.told)
    finally:
        actor.stop()


def info(device: DeviceId, **labels: str) -> DeviceInfo:
    inventory = Inventory(hostname="h", arch="x86_64", os="o", kernel="k", cpus=1,
                          memory_bytes=1, runtime_name="podman", runtime_version="4")  # fmt: skip
    return DeviceInfo(device_id=device, labels=labels, agent_version="0.1.0", updated_at=at(),
                      inventory=inventory)  # fmt: skip


def test_the_fleet_index_targets_by_labels_routes_and_deletes_orphans() -> None:
    writer, api, mirror = Writer(auto=True), Api(), Ref("mirror")
    pool = ActorPool(workers=1, name="test-devices")
    index = FleetIndex.start(
        writer=writer,
        api=api,
        timers=Timers(hold=(m.Tick,)),
        pool=pool,
        mirror=mirror,
        sources=("kubernetes", "desired-state"),
        liveness_timeout=30.0,
    )
    try:
        index.tell(m.InfosSeen(infos=((D1, info(D1, site="paris"), 1),
                                      (D2, info(D2, site="paris"), 2))))  # fmt: skip
        orphan = m.DesiredEntry(device=D1, deployment=DeploymentName("gone"), revision=3,
                                value=b"v")  # fmt: skip
        index.tell(m.DesiredSeen(entries=(orphan,)))
        selector = b'{"matchLabels":{"site":"paris"}}'
        index.tell(m.DeploymentsListed(scope=None, objects=(obj(spec=spec_json(selector)),)))
        index.tell(m.SourceSynced(source="kubernetes"))
        assert writer.calls == []  # nothing before every source synced
        index.tell(m.SourceSynced(source="desired-state"))
        eventually(lambda: sorted(writer.keys("put")) == ["d1.web", "d2.web"])
        eventually(lambda: writer.keys("delete") == ["d1.gone"])  # an orphan
        index.tell(m.InfosSeen(infos=((D2, info(D2, site="oslo"), 3),)))
        eventually(lambda: "d2.web" in writer.keys("delete"))
        summary: dict[str, Any] = index.ask(Query(), block=True, timeout=5)
        assert summary["deployments"] == 1
        assert summary["devices"] == 2
        assert summary["device_actors"] == 2
    finally:
        index.stop()
        pool.shutdown(timeout=5)
