"""What a demo run left behind: processes whose command line names its files or ports."""

from __future__ import annotations

import os
from pathlib import Path


def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of live processes (not zombies) containing any of ``needles``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if any(n in cmdline for n in needles):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def field(output: str, label: str) -> str:
    """The first word after ``label`` on the line where the demo printed it."""
    for line in output.splitlines():
        if line.startswith(label):
            return line[len(label) :].split()[0].rstrip(",")
    raise AssertionError(f"the demo never printed {label!r}:\n{output}")
