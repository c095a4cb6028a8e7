"""POSIX ACLs on a real mount, which keeps none (docs/mount.md, engine/acls.py): an access ACL
that says no more than the mode is a chmod, as on ext4 (tar --acls sets one on every file it
extracts), removing an absent ACL changes nothing, anything more is refused."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from errno import EOPNOTSUPP, EPERM
from pathlib import Path

import pytest

from tests.fuse.mounting import Mounted
from tests.fuse.test_posix import as_nobody
from tests.fuse.test_tools_archive import (
    NOBODY,
    acl,
    make_source,
    other_user_mount,  # noqa: F401 (a fixture)
    same_as_source,
)

ANYONE = 0xFFFFFFFF
# user::rw- user:1000:rw- group::r-- mask::rw- other::---
EXTENDED = acl((1, 6, ANYONE), (2, 6, 1000), (4, 4, ANYONE), (0x10, 6, ANYONE), (0x20, 0, ANYONE))


def mode_acl(owner: int, group: int, other: int) -> bytes:
    return acl((0x01, owner, ANYONE), (0x04, group, ANYONE), (0x20, other, ANYONE))


def test_tar_acls_of_a_tree_without_acls_is_silent(any_mount: Mounted, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    archive = tmp_path / "a.tar"
    flags = ("--acls", "--xattrs", "--xattrs-include=user.*")
    subprocess.run(["tar", *flags, "-C", str(tmp_path / "src"), "-cf", str(archive), "."],
                   check=True)  # fmt: skip
    (any_mount.path / "tar").mkdir()
    done = subprocess.run(["tar", *flags, "-C", str(any_mount.path / "tar"), "-xpf", str(archive)],
                          capture_output=True, text=True)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")  # no "Cannot set POSIX ACLs" per file
    same_as_source(source, any_mount.path / "tar")


def test_an_acl_of_mode_bits_is_a_chmod_of_the_owner(
    other_user_mount: Mounted,  # noqa: F811 (test_tools_archive's fixture)
) -> None:
    mnt = other_user_mount.path
    own, roots = mnt / "own", mnt / "roots"
    own.write_bytes(b"x")
    os.chown(own, NOBODY, NOBODY)
    os.chmod(own, 0o2644)
    roots.mkdir()
    os.setxattr(own, "system.posix_acl_access", mode_acl(6, 0, 0))  # root may
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o2600  # seen at once: no stale attributes
    with pytest.raises(OSError) as exc:
        os.getxattr(own, "system.posix_acl_access")
    assert exc.value.errno == errno.ENODATA  # kept as the mode alone, as ext4 keeps it
    code = (
        f"os.setxattr({str(own)!r}, 'system.posix_acl_access', {mode_acl(7, 5, 4)!r})\n"
        f"os.removexattr({str(own)!r}, 'system.posix_acl_access')\n"
        "for path, name, value in [\n"
        f"    ({str(roots)!r}, 'system.posix_acl_access', {mode_acl(7, 7, 7)!r}),\n"
        f"    ({str(roots)!r}, 'system.posix_acl_default', None),\n"
        f"    ({str(own)!r}, 'system.posix_acl_access',\n"
        f"     {EXTENDED!r}),\n"
        "]:\n"
        "    try:\n"
        "        os.setxattr(path, name, value) if value else os.removexattr(path, name)\n"
        "    except OSError as e:\n"
        "        print(e.errno)\n"
    )  # fmt: skip
    out = as_nobody(code)
    assert out.returncode == 0, out.stderr
    # Not the owner: EPERM; an ACL beyond the mode bits: EOPNOTSUPP.
    assert out.stdout.split() == [str(e) for e in (EPERM, EPERM, EOPNOTSUPP)]
    # nobody's own ACL: a chmod; setgid kept, as nobody is in the file's group.
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o2754
    with pytest.raises(OSError) as exc:
        os.setxattr(roots, "system.posix_acl_default", mode_acl(7, 5, 5))
    assert exc.value.errno == errno.EOPNOTSUPP  # a default ACL would change inheritance
    os.removexattr(roots, "system.posix_acl_default")  # none there: nothing to do
    other_user_mount.umount()
    store = other_user_mount.store  # type: ignore[attr-defined]
    assert stat.S_IMODE(os.stat(store.root / "own").st_mode) == 0o2754  # the store's own mode
