"""Run outputs on local storage: private modes, and owned by the owner of the folder they
are stored under, whoever wrote them.

The worker and the dashboards server run as root to start kernels as another OS user, while
the schedulers and the backups run as the home's owner; outputs a root process left as root's
own (0700 folders, 0600 files) would be unreadable to those services.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workbench.runs import storage

NOBODY = 65534


def _owner_and_mode(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it checks what a root writer hands over")
def test_a_root_writer_hands_folders_and_files_to_the_storage_owner(tmp_path: Path) -> None:
    base = tmp_path / "home"
    base.mkdir(mode=0o700)
    os.chown(base, NOBODY, NOBODY)
    location = base / "runs" / "0f1e2d3c"
    storage.write_output(str(location), storage.NOTEBOOK_NAME, b"{}")
    storage.write_output(str(location), storage.HTML_NAME, b"<p>one</p>")
    assert _owner_and_mode(base / "runs") == (NOBODY, NOBODY, 0o700)
    assert _owner_and_mode(location) == (NOBODY, NOBODY, 0o700)
    for name in (storage.NOTEBOOK_NAME, storage.HTML_NAME):
        assert _owner_and_mode(location / name) == (NOBODY, NOBODY, 0o600)
    # A second write replaces the content and keeps the owner.
    storage.write_output(str(location), storage.HTML_NAME, b"<p>two</p>")
    assert (location / storage.HTML_NAME).read_bytes() == b"<p>two</p>"
    assert _owner_and_mode(location / storage.HTML_NAME) == (NOBODY, NOBODY, 0o600)
    assert storage.read_output(str(location), storage.HTML_NAME) == b"<p>two</p>"


def test_outputs_are_private_to_their_owner(tmp_path: Path) -> None:
    location = tmp_path / "runs" / "5a6b"
    storage.write_output(str(location), storage.HTML_NAME, b"<p>x</p>")
    me = os.geteuid()
    assert _owner_and_mode(location)[::2] == (me, 0o700)
    assert _owner_and_mode(location / storage.HTML_NAME)[::2] == (me, 0o600)
