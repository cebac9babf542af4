"""What provisioning raises: one permanent kind, whose message names what to fix.

libvirtd away is :class:`fleet.runtime.libvirt.port.LibvirtUnavailable` (temporary);
bad names and environment values are :class:`fleet.errors.ConfigError`. It must never
carry a secret (the admin password, a private key) in a message.
"""

from __future__ import annotations

from fleet.errors import PermanentError


class ProvisioningFailed(PermanentError):
    """A step failed; the message is one line that says what to fix."""
