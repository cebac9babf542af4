"""The lean client is fleet's transport, and mypy proves it.

``LeanTransport`` (loadtest/litebus.py) and the swarm's request limiter (loadtest/feed.py)
subclass :class:`fleet.runtime.nats.transport.Transport` explicitly, and a ``LiteBus``
hands its ``LeanTransport`` to :class:`~fleet.runtime.nats.bus.Bus` as a typed
``connection``: a method missing or typed differently from the port fails mypy. The
project's own mypy run covers ``fleet/`` only, so this test runs it on those modules.
"""

from __future__ import annotations

import pytest
from mypy import api


@pytest.mark.timeout(120)
def test_the_lean_transport_and_the_limiter_type_check_against_the_port() -> None:
    report, errors, status = api.run(
        ["--strict", "--no-error-summary", "loadtest/litebus.py", "loadtest/feed.py"]
    )
    assert status == 0, report + errors
