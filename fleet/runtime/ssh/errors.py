"""What an SSH session raises: each message one line naming what to fix, never a secret.

An unreachable host is temporary (a device still booting, a network coming back); a
refused key, a changed host key or a command that cannot run are permanent.
"""

from __future__ import annotations

from fleet.errors import PermanentError, TemporaryError


class SshUnreachable(TemporaryError):
    """No SSH server answered at the address (refused, timed out, no route, no name)."""


class SshRefused(PermanentError):
    """The server refused the fleet key for that user."""


class SshHostKeyChanged(PermanentError):
    """The host's key is not the one recorded for it: maybe not the host you meant."""


class SshFailed(PermanentError):
    """The connection broke, or a command could not be run or did not finish in time."""
