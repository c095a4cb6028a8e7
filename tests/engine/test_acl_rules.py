"""engine/acls.py's rules without a mount: which ACL values are the mode bits written another
way, which are refused, and who may set them."""

from __future__ import annotations

import struct

import pytest

from engine.acls import ACL_ACCESS, ACL_DEFAULT, acl_chmod, mode_of_acl
from engine.errors import InvalidArgument, NotPermitted, NotSupported
from engine.inode import S_IFREG, Inode
from engine.posix import Caller

ANY = 0xFFFFFFFF
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def acl(*entries: tuple[int, int, int], version: int = 2) -> bytes:
    return struct.pack("<I", version) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_an_acl_of_the_three_base_entries_is_a_mode() -> None:
    assert mode_of_acl(acl((USER_OBJ, 7, ANY), (GROUP_OBJ, 5, ANY), (OTHER, 0, ANY))) == 0o750
    assert mode_of_acl(acl((OTHER, 4, ANY), (USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY))) == 0o644


def test_named_entries_or_a_mask_make_an_extended_acl() -> None:
    base = ((USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 0, ANY))
    assert mode_of_acl(acl(*base, (USER, 4, 1000), (MASK, 4, ANY))) is None
    assert mode_of_acl(acl(*base, (GROUP, 4, 1000), (MASK, 4, ANY))) is None


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        acl((USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 0, ANY), version=1),
        acl((USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY)),  # no entry for the others
        acl((USER_OBJ, 6, ANY), (USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 0, ANY)),
        acl((USER_OBJ, 8, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 0, ANY)),  # no such permission
        acl((USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 0, ANY), (0x40, 4, ANY)),
    ],
)
def test_malformed_acls_are_invalid(value: bytes) -> None:
    with pytest.raises(InvalidArgument):
        mode_of_acl(value)


def node(mode: int, uid: int = 1000, gid: int = 1000) -> Inode:
    return Inode(5, 1, "f", S_IFREG | mode, uid, gid, 0, 0, 0, 0, 0, None, None)


def test_who_may_set_one_and_what_it_changes() -> None:
    plain = acl((USER_OBJ, 6, ANY), (GROUP_OBJ, 0, ANY), (OTHER, 0, ANY))
    owner, member, stranger = Caller(1000, 1000), Caller(1000, 2000), Caller(3000, 3000)
    assert acl_chmod(owner, node(0o4755), ACL_ACCESS, plain) == 0o4600  # special bits kept
    assert acl_chmod(member, node(0o2755), ACL_ACCESS, plain) == 0o600  # not in its group
    assert acl_chmod(Caller(0, 0), node(0o2755), ACL_ACCESS, plain) == 0o2600  # root
    assert acl_chmod(owner, node(0o644), ACL_DEFAULT, None) is None  # none there to remove
    with pytest.raises(NotPermitted):
        acl_chmod(stranger, node(0o644), ACL_ACCESS, plain)
    with pytest.raises(NotPermitted):
        acl_chmod(stranger, node(0o644), ACL_DEFAULT, None)
    with pytest.raises(NotSupported):
        acl_chmod(owner, node(0o644), ACL_DEFAULT, plain)
    extended = acl((USER_OBJ, 6, ANY), (USER, 4, 7), (GROUP_OBJ, 4, ANY), (MASK, 4, ANY),
                   (OTHER, 0, ANY))  # fmt: skip
    with pytest.raises(NotSupported):
        acl_chmod(owner, node(0o644), ACL_ACCESS, extended)
