"""Where the operator and fleetctl find their Kubernetes API: a URL, a kubeconfig, or in-cluster.

It must never talk to the API itself (it only builds the configured client).
"""

from __future__ import annotations

import os

import kubernetes

from fleet.errors import ConfigError

__all__ = ["make_api_client"]


def make_api_client(
    *, kube_url: str | None = None, kubeconfig: str | None = None, context: str | None = None
) -> kubernetes.client.ApiClient:
    """A client for ``kube_url`` (plain HTTP, e.g. the emulator), else the kubeconfig
    (``kubeconfig`` or ``$KUBECONFIG`` or ``~/.kube/config``), else in-cluster config."""
    config = kubernetes.client.Configuration()
    if kube_url:
        config.host = kube_url
        return kubernetes.client.ApiClient(config)
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")):
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=config
            )
        else:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise ConfigError(
            f"no Kubernetes configuration: kubeconfig {path or '~/.kube/config'!r} and "
            f"in-cluster config both failed: {exc}"
        ) from exc
    return kubernetes.client.ApiClient(config)
