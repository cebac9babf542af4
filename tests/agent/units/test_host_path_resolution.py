"""A host path looked at on the device (:mod:`fleet.runtime.host.host_paths`): the real
path is what gets bound; one that resolves to a denied path, or is, lies under or holds
something of the agent's own (its state, its home, podman's storage), is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.runtime.host.host_paths import HostPathRefused, resolve_host_path


def test_the_real_path_is_bound_and_the_agents_own_is_refused_however_reached(
    tmp_path: Path,
) -> None:
    home = tmp_path / "var-lib-fleet-agent"  # a rootless agent's home, as install.sh makes it
    storage = home / ".local" / "share" / "containers" / "storage"
    state, site = home / "state", tmp_path / "site"
    for d in (storage, state, site / "cfg"):
        d.mkdir(parents=True)
    protected: list[Path | str] = [state, home, str(storage)]
    link = tmp_path / "innocent"
    link.symlink_to(site / "cfg")
    assert resolve_host_path(str(link), protected=protected) == str(site / "cfg")
    assert resolve_host_path(str(site), protected=protected) == str(site)

    to_storage = tmp_path / "to-storage"
    to_storage.symlink_to(storage / "secrets", target_is_directory=True)
    (storage / "secrets").mkdir()
    refused = {
        str(home): "is or holds",  # the home itself
        str(home / ".local" / "share" / "containers"): "is or holds",  # holds the storage
        str(storage): "is or holds",
        str(to_storage): "is or holds",  # a symlink into it
        str(tmp_path): "is or holds",  # a parent of all of them
        str(tmp_path / "nowhere"): "does not exist",
    }
    for path, why in refused.items():
        with pytest.raises(HostPathRefused, match=why):
            resolve_host_path(path, protected=protected)

    to_etc = tmp_path / "to-etc"
    to_etc.symlink_to("/etc")
    with pytest.raises(HostPathRefused, match="resolves to '/etc', under /etc"):
        resolve_host_path(str(to_etc), protected=protected)
    to_var = tmp_path / "to-var"
    to_var.symlink_to("/var")
    with pytest.raises(HostPathRefused, match="holds /var/run"):
        resolve_host_path(str(to_var), protected=protected)
