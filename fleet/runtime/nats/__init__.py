"""NATS: one connection per process, the four KV buckets, reads, watches and writes.

Everything here speaks NATS through one port, :class:`~fleet.runtime.nats.transport.Transport`
(nats-py implements it in :mod:`~fleet.runtime.nats.natspy`, the only module here that
imports nats-py besides the error translation); subjects are spelled in
:mod:`~fleet.runtime.nats.subjects` and keys come from :mod:`fleet.contracts`. It must
never import another runtime subpackage but the kits (:mod:`fleet.runtime.aiokit`,
:mod:`fleet.runtime.actorkit`).
"""
