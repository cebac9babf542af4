"""The dashboard's read model: what the web page shows of the fleet, kept in memory.

Why it exists: the operator (``--dashboard-address``) and ``fleetctl dashboard`` serve the
same page (docs/dashboard.md); this package holds what both feed with the operator's own
decoded messages (device info, heartbeats, reports, Deployment objects) and answers the
page's questions from: :mod:`.query` (a filter, parsed and bounded), :mod:`.view` (the
indexed picture), :mod:`.hub` (fed from any thread, applied and published on the
dashboard's own loop at most every few hundred milliseconds), :mod:`.feeds` (what feeds
it outside the operator) and :mod:`.access` (who may look).

Layering: above ``fleet.actors`` (it reads the operator's messages and selector rules),
below ``fleet.cli``; the web layer (``fleet.runtime.web``) sees it through a small port.
What it must never do: hold a lock or do I/O on the operator's threads.
"""
