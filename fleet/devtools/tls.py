"""A throwaway certificate authority and a server certificate for 127.0.0.1.

Why it exists: the tests and the demo run nats-server with TLS on (docs/security.md)
and need a CA whose certificate the clients trust and a certificate for the address the
server listens on. This makes both with the ``openssl`` command (EC P-256, valid for a
day, the CA's key thrown away with the directory); a real fleet brings its own CA.

What it must never do: be used for anything but a local server (the CA signs whatever
it is asked to, and its key sits unencrypted in ``directory``), or ship to a device.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import msgspec

from fleet.errors import ConfigError
from fleet.runtime.nats.server import TlsFiles

_DAYS = "1"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class LocalCa(msgspec.Struct, frozen=True, kw_only=True):
    """The CA's certificate (what clients trust) and the server's files."""

    ca_cert: Path
    server: TlsFiles


def make_local_ca(
    directory: Path, *, host: str = "127.0.0.1", more_hosts: tuple[str, ...] = ()
) -> LocalCa:
    """A CA and a certificate for ``host`` and ``more_hosts`` (IP addresses; a VM of the
    pool reaches the host's 127.0.0.1 as 10.0.2.2), in ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("openssl not found: it makes the throwaway CA for a local TLS server")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, request, cert = (
        directory / "server.key",
        directory / "server.csr",
        directory / "server.pem",
    )
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName = {', '.join(f'IP:{h}' for h in (host, *more_hosts))}\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
    )
    _run(
        [openssl, "req", "-x509", *_CURVE, "-keyout", str(ca_key), "-out", str(ca_cert),
         "-days", _DAYS, "-subj", "/CN=fleet throwaway CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    )  # fmt: skip
    _run(
        [openssl, "req", "-new", *_CURVE, "-keyout", str(key), "-out", str(request),
         "-subj", f"/CN={host}"]
    )  # fmt: skip
    _run(
        [openssl, "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey",
         str(ca_key), "-CAcreateserial", "-out", str(cert), "-days", _DAYS,
         "-extfile", str(extensions)]
    )  # fmt: skip
    for secret in (ca_key, key):
        secret.chmod(0o600)
    return LocalCa(ca_cert=ca_cert, server=TlsFiles(cert=cert, key=key))


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, check=False, timeout=30)
    if done.returncode != 0:
        raise ConfigError(f"{argv[1]} failed: {done.stderr.decode(errors='replace')[-500:]}")
