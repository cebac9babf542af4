"""fleet's errors for the Kubernetes API, and the one function that translates the client's.

Why it exists: callers decide from the kind of error (retry later, lost a race, gone)
and never from the client's exception types. It must never import the rest of this
package (everything here imports it).
"""

from __future__ import annotations

import kubernetes
import urllib3

from fleet.errors import PermanentError, TemporaryError

__all__ = ["KubeConflict", "KubeError", "KubeNotFound", "KubeUnavailable", "translate"]


class KubeError(PermanentError):
    """The API server refused a request (the message has its status and reason)."""


class KubeNotFound(KubeError):
    """The object (or its resource type) does not exist."""


class KubeConflict(TemporaryError):
    """Another writer changed the object first (409): read it again and retry."""


class KubeUnavailable(TemporaryError):
    """The API server cannot be reached or answered 5xx/429."""


def translate(exc: BaseException, *, what: str) -> BaseException:
    """Turn a client/transport error into fleet's error for ``what``."""
    if isinstance(exc, kubernetes.client.ApiException):
        status = exc.status or 0
        text = f"{what}: {status} {exc.reason}"
        if status == 404:
            return KubeNotFound(text)
        if status == 409:
            return KubeConflict(text)
        if status == 429 or status >= 500:
            return KubeUnavailable(text)
        return KubeError(text)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return KubeUnavailable(f"{what}: {exc!r}")
    return exc
