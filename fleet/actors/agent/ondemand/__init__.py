"""Answers to requests made of this device, now: its container logs, its description.

``fleetctl logs`` and ``fleetctl describe device`` ask over NATS (docs/agent.md, "Logs
and describe on demand"); :mod:`.responder` answers, :mod:`.gate` rate-limits before
anything is queued, :mod:`.book` keeps what the device last said about itself.
"""
