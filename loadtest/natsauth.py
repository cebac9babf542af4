"""The lean client's credentials: a user JWT and the nkey that proves it, read from a
``.creds`` file, and the nonce signature nats-server asks for at CONNECT.

Why it exists: with device identity on (docs/security.md), every connection to the
fleet's nats-server presents a user JWT and signs the server's nonce with the user's
seed; the load swarm must do exactly that to measure what a real fleet costs. nats-py
does it for the agents; this is the same for the lean client, and nothing more.

What it must never do: log, print or keep the seed anywhere but in the signing key.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import nkeys

from fleet.runtime.nats.device_key import read_credentials


class LeanCredentials:
    """A user's JWT and a signer of server nonces (the seed stays inside ``nkeys``)."""

    def __init__(self, *, jwt: str, seed: str) -> None:
        self.jwt = jwt
        self._key: Any = nkeys.from_seed(seed.encode())

    @classmethod
    def read(cls, path: Path) -> LeanCredentials:
        """Read a ``.creds`` file as the agent does (``ConfigError`` naming the file)."""
        jwt, seed = read_credentials(path)
        return cls(jwt=jwt, seed=seed)

    def sign(self, nonce: str) -> str:
        """The nonce's signature, base64url without padding, as CONNECT's ``sig``."""
        signature: bytes = self._key.sign(nonce.encode())
        return base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def __repr__(self) -> str:  # never the seed
        return "LeanCredentials(...)"
