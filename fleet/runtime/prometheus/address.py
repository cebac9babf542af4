"""``--metrics-address HOST:PORT``: where the HTTP port listens, or nowhere.

Kept apart from :mod:`.endpoint` so that parsing the command line never imports the
Prometheus client. Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

OFF: Final = ("", "off")


def parse_address(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host: every interface) as
    ``(host, port)``; ``""`` or ``off``: None (no HTTP port). Raises ValueError."""
    text = text.strip()
    if text.lower() in OFF:
        return None
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r} is not HOST:PORT (or off)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 host in brackets, [{host}]:{port_text}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: the port must be 0..65535")
    return host or "0.0.0.0", port
