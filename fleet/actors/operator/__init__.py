"""The operator's actors: Deployments in, desired state out, aggregates back.

Actors, each the one keeper of its facts: one per Deployment (:mod:`.deployment`: its
name's desired entries, its aggregate), one pooled actor per device (:mod:`.device`: its
reports and liveness), the fleet index (:mod:`.fleet`: labels and targeting, name
ownership, routing), one per watched source (:mod:`.sources`) and the Device mirror
(:mod:`.mirror`); :mod:`.app` starts and stops them in order. The rules are plain classes
beside them, each unit-tested without servers (``tests/operator/units/``): the desired
book and its writes, the finalizer, the status throttle, ownership, targeting, liveness
and its clock, strays and unclaimed entries, retention, duplicates. docs/operator.md
draws the whole.
"""
