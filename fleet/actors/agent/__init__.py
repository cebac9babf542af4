"""The device agent's actors: one device actor, one reconciler per deployment.

See docs/agent.md for how they fit together and how to run ``fleet-agent``.
"""
