"""SSH to a device: asyncssh behind one small synchronous session (device setup's transport).

:class:`SshSession` runs commands (with bytes on stdin, bounded in time and output) on one
connection; :func:`open_session` makes it, translating asyncssh's failures into one-line
errors that say what to fix (:mod:`.errors`).
"""

from .errors import SshFailed, SshHostKeyChanged, SshRefused, SshUnreachable
from .session import Completed, SshSession, SshTarget, open_session

__all__ = [
    "Completed",
    "SshFailed",
    "SshHostKeyChanged",
    "SshRefused",
    "SshSession",
    "SshTarget",
    "SshUnreachable",
    "open_session",
]
