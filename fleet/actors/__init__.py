"""Actors: the agent's and the operator's behaviour, as pykka actors and typed messages.

Actors see the outside world only through the small ports of ``fleet.runtime`` and the
wire types of ``fleet.contracts``; they never import a client library themselves.
"""
