"""The files of a container: written by the agent, mounted read-only at their paths.

Why it exists: a gateway needs its own config and certificate (issue 14, docs/workloads.md
"Files"). A :class:`FileSpec` gives the file's ``path`` inside the container, its ``mode``
and its content from exactly one source:

* ``content``: inline text (what the Deployment says, or a ConfigMap key the operator
  read and put here);
* ``config_map`` / ``secret``: a key of a ConfigMap or Secret in the Deployment's
  namespace. These are the *Deployment's* words only: the operator resolves them
  (``config_map`` into ``content``, ``secret`` into ``sealed``) before anything reaches
  the bus, and an agent refuses an entry that still holds one (it cannot read
  Kubernetes, and a Secret's value is never on the bus in clear);
* ``sealed``: the bytes sealed to the receiving device's key (:mod:`.sealed`).

Bounds: a path is absolute, without ``..``, not ``/`` and not under ``/proc``, ``/sys``
or ``/dev`` (the kernel's, not the container's); at most :data:`MAX_FILES` files per
container, :data:`MAX_FILE_BYTES` per file, :data:`MAX_FILES_BYTES` for the whole score
(within the 64 KiB desired-value bound). Everything here is optional and omitted when
default, so a score without files encodes and hashes as before. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from fleet.errors import ContractError

from ._checks import int_field
from .sealed import MAX_SEALED_PLAINTEXT, SEAL_OVERHEAD, SealedValue
from .workload import ContainerPath, check_path

MAX_FILES: Final = 16
"""Files of one container."""
MAX_FILE_BYTES: Final = MAX_SEALED_PLAINTEXT
"""One file's content (16 KiB)."""
MAX_FILES_BYTES: Final = 32 * 1024
"""All files' contents of one score (sealed ones counted as their plaintext)."""
DEFAULT_MODE: Final = 0o444
FORBIDDEN_ROOTS: Final[tuple[str, ...]] = ("/proc", "/sys", "/dev")
KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]{1,253}$"
KEY_RULE: Final = "1 to 253 letters, digits, '-', '_' or '.' (a ConfigMap or Secret key)"
_KEY: Final = re.compile(KEY_PATTERN)
OBJECT_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
OBJECT_RULE: Final = "a Kubernetes object name (lowercase DNS subdomain, at most 253)"
_OBJECT: Final = re.compile(OBJECT_PATTERN)
SOURCES: Final[tuple[str, ...]] = ("content", "config_map", "secret", "sealed")
REFERENCES: Final[tuple[str, ...]] = ("config_map", "secret")


class KeyRef(msgspec.Struct, frozen=True, kw_only=True):
    """One key of a ConfigMap or Secret in the Deployment's namespace."""

    name: Annotated[
        str, msgspec.Meta(extra_json_schema={"pattern": OBJECT_PATTERN, "maxLength": 253})
    ]
    key: Annotated[str, msgspec.Meta(extra_json_schema={"pattern": KEY_PATTERN})]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or _OBJECT.fullmatch(self.name) is None:
            raise ContractError(
                f"name must be {OBJECT_RULE}, got {str(self.name)[:60]!r}", field="name"
            )
        if not isinstance(self.key, str) or _KEY.fullmatch(self.key) is None:
            raise ContractError(f"key must be {KEY_RULE}, got {str(self.key)[:60]!r}", field="key")


class FileSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A file mounted read-only at ``path`` in the container (see the module doc)."""

    path: ContainerPath
    mode: (
        Annotated[
            int,
            msgspec.Meta(
                description="Permission bits (0 to 511, i.e. 0o777); left out: 0o444 (292).",
                extra_json_schema={"minimum": 0, "maximum": 0o777},
            ),
        ]
        | None
    ) = None
    content: (
        Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": MAX_FILE_BYTES})] | None
    ) = None
    config_map: KeyRef | None = None
    secret: KeyRef | None = None
    sealed: SealedValue | None = None

    def __post_init__(self) -> None:
        check_file_path(self.path)
        if self.mode is not None:
            int_field(self, "mode", low=0, high=0o777)
        given = [name for name in SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ContractError(
                f"a file needs exactly one of {', '.join(SOURCES)}, got "
                f"{', '.join(given) or 'none'}",
                field="content" if not given else given[1],
            )
        if self.content is not None and len(self.content.encode()) > MAX_FILE_BYTES:
            raise ContractError(
                f"content is {len(self.content.encode())} bytes, at most {MAX_FILE_BYTES} allowed",
                field="content",
            )

    @property
    def file_mode(self) -> int:
        """``mode``, or the default (:data:`DEFAULT_MODE`)."""
        return DEFAULT_MODE if self.mode is None else self.mode

    @property
    def size(self) -> int:
        """The content's size in bytes (a sealed one's plaintext; a reference: 0)."""
        if self.content is not None:
            return len(self.content.encode())
        if self.sealed is not None:
            return max(0, len(self.sealed.data) * 3 // 4 - SEAL_OVERHEAD - 2)
        return 0

    @property
    def reference(self) -> str | None:
        """``config_map`` or ``secret`` if the file still names one (operator's to resolve)."""
        return next((name for name in REFERENCES if getattr(self, name) is not None), None)


def check_file_path(path: object) -> None:
    check_path(path, field="path")
    assert isinstance(path, str)  # check_path refused anything else
    if path.rstrip("/") == "" or path.endswith("/"):
        raise ContractError(f"path must name a file, got {path!r}", field="path")
    for root in FORBIDDEN_ROOTS:
        if path == root or path.startswith(root + "/"):
            raise ContractError(
                f"path {path[:80]!r} is under {root}, which is the kernel's, not the "
                "container's: choose another path",
                field="path",
            )


def check_files(files: list[FileSpec], *, volume_paths: set[str]) -> int:
    """One container's files: count, unique paths, not inside a volume; their size."""
    if len(files) > MAX_FILES:
        raise ContractError(f"files has {len(files)} files, at most {MAX_FILES}", field="files")
    seen: set[str] = set()
    total = 0
    for index, file in enumerate(files):
        where = f"files[{index}].path"
        if file.path in seen:
            raise ContractError(f"two files are mounted at {file.path!r}", field=where)
        seen.add(file.path)
        for volume in volume_paths:
            if file.path == volume or file.path.startswith(volume.rstrip("/") + "/"):
                raise ContractError(
                    f"file {file.path!r} is inside volume mount {volume!r}", field=where
                )
        total += file.size
    return total
