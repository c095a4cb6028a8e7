"""Where a mount may go (issue 17): not over a directory with files unless asked (-o nonempty),
and `shoal fs mount` through the running daemon makes its mount point as it does offline."""

from __future__ import annotations

from pathlib import Path

from fuse.mountinfo import served
from tests.cli.shoal_cli import shoal
from tests.fuse.mounting import Mounted
from tests.ufs.stores import LocalStore


def test_a_mountpoint_with_files_is_refused_unless_nonempty(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "ufs")
    m = Mounted(tmp_path / "home", store.uri, tmp_path / "mnt", store.options)
    (store.root / "served.txt").write_bytes(b"from the store")
    (m.path / "hidden.txt").write_bytes(b"the user's own file")
    try:
        refused = shoal("mount", store.uri, str(m.path), home=m.home, expect=1)
        (line,) = refused.stderr.strip().splitlines()
        assert f"mountpoint {m.path} is not empty" in line and "-o nonempty" in line, line
        assert not served(str(m.path))
        assert (m.path / "hidden.txt").read_bytes() == b"the user's own file"

        m.mount("nonempty")  # asked for: mounted over it, its files hidden meanwhile
        assert served(str(m.path))
        assert sorted(p.name for p in m.path.iterdir()) == ["served.txt"]
        m.umount()
        assert (m.path / "hidden.txt").read_bytes() == b"the user's own file"
    finally:
        m.teardown()


def test_fs_mount_through_the_daemon_makes_its_mount_point(local_mount: Mounted) -> None:
    other = local_mount.path.parent / "other-store"
    (other / "train").mkdir(parents=True)
    (other / "train" / "a.jpg").write_bytes(b"jpeg")
    home = local_mount.home
    shoal("fs", "mount", "/extra", str(other), home=home)  # runs in the daemon: it holds home
    assert (local_mount.path / "extra" / "train" / "a.jpg").read_bytes() == b"jpeg"
    (local_mount.path / "busy").mkdir()
    (local_mount.path / "busy" / "f").write_bytes(b"x")
    full = shoal("fs", "mount", "/busy", str(other), home=home, expect=1)
    assert "/busy is not empty" in full.stderr
    # A directory only the store has so far (made beside the mount) is found, not made anew.
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    (ufs / "from-store").mkdir()
    (ufs / "from-store" / "g").write_bytes(b"y")
    unseen = shoal("fs", "mount", "/from-store", str(other), home=home, expect=1)
    assert "/from-store is not empty" in unseen.stderr, unseen.stderr
