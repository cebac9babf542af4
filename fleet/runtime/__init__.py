"""The runtime: the only layer that touches the outside world's clients.

``loop`` owns the thread/event-loop boundary, ``bus`` the NATS connection and KV,
``watch`` complete and restartable bucket watches, ``supervisor`` ordered start/stop,
``pool`` pooled actors for per-entity actors at fleet scale. Actors import from here
and from ``fleet.contracts`` only.
"""
