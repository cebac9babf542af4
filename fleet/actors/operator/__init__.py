"""The operator's actors: Deployments in, desired state out, aggregates back.

One actor per Deployment (:mod:`.deployment`), one pooled actor per device
(:mod:`.device`), one per watched source (:mod:`.sources`), the fleet index that routes
between them (:mod:`.fleet`), and the Device mirror (:mod:`.mirror`). :mod:`.app` starts
and stops them in order. Pure logic (selectors, specs, status) lives beside them.
"""
