"""The agent's runtimes: one per score ``type``, behind one port (:mod:`.port`).

See docs/runtimes.md for how to add one.
"""
