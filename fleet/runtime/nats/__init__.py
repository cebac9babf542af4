"""NATS: one connection per process, the four KV buckets, reads, watches and writes.

Everything here speaks NATS through the client it is given; subjects are spelled in one
module and keys come from :mod:`fleet.contracts`. It must never import another runtime
subpackage but the kits (:mod:`fleet.runtime.aiokit`, :mod:`fleet.runtime.actorkit`).
"""
