"""The actor machinery: pooled actors, their mailbox and index, the supervisor, deaths.

It builds on pykka; every private pykka name it needs is imported in :mod:`._pykka` alone.
It imports nothing else of the runtime.
"""
