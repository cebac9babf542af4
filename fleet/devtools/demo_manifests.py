"""The Deployments the local demo applies: ``deploy/examples/hello-web.yaml`` and one variant.

Why it exists: the three demo devices share one machine, and a host port can be bound by
one container per machine. So the demo keeps the example as it is (``hello-web``: label
selector ``site=lab``, one container publishing port 8080) except for two local facts,
the image (pointed at the demo's own registry) and the host port (8080 when free, else a
free one), and it selects exactly one device. The two ``site=shop`` devices get
``hello-shop``, the same container *without* a published port, so both run it side by
side. On a real fleet every device is its own machine and the example needs no change.

What it must never do: change anything else in the example (the selector, the command).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "hello-web.yaml"


def demo_deployments(
    *, image: str | None, host_port: int, example: Path = EXAMPLE
) -> list[dict[str, Any]]:
    """``[hello-web, hello-shop]`` as API objects (``image=None``: keep the example's)."""
    web: dict[str, Any] = yaml.safe_load(example.read_text(encoding="utf-8"))
    container = web["spec"]["score"]["containers"][0]
    if image is not None:
        container["image"] = image
    container["ports"][0]["host_port"] = host_port
    shop = copy.deepcopy(web)
    shop["metadata"]["name"] = "hello-shop"
    shop["spec"]["selector"] = {"matchLabels": {"site": "shop"}}
    del shop["spec"]["score"]["containers"][0]["ports"]
    return [web, shop]
