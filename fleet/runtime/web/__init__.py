"""The dashboard's HTTP edge (aiohttp): the page, its JSON API and its event stream.

Only this package imports aiohttp. It knows the fleet through two small ports given to
it (:class:`.app.ViewPort`: what the page shows; :class:`.access.Access`: who may look),
never the operator's actors or the Kubernetes client (docs/dashboard.md).
"""
