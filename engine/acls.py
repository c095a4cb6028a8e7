"""POSIX ACLs, which Shoal does not keep (docs/mount.md, "Extended attributes"): answered as
ext4 answers for the ACLs that say no more than the mode, refused for the others.

An access ACL of the owner's, the group's and the others' entries alone is the mode bits
written another way, and ext4 too keeps it as the mode alone: setting one is a chmod (tar
--acls sets one on every file it extracts). Removing an ACL that is not there changes nothing
(tar --acls drops every directory's default ACL). An extended ACL (named users or groups, a
mask) and any default ACL are refused (EOPNOTSUPP), as a file system without ACLs does: kept
without the kernel enforcing it, an ACL would show permissions the mount does not apply.

The value is Linux's xattr encoding: a little-endian version 2, then (tag u16, perm u16, id u32)
per entry.
"""

from __future__ import annotations

import stat
import struct

from engine.errors import InvalidArgument, NotPermitted, NotSupported
from engine.inode import Inode
from engine.posix import Caller

ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"
ACL_NAMES = frozenset((ACL_ACCESS, ACL_DEFAULT))

_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_SHIFT = {_USER_OBJ: 6, _GROUP_OBJ: 3, _OTHER: 0}  # where each base entry sits in the mode


def mode_of_acl(value: bytes) -> int | None:
    """The permission bits (0o777 at most) an access ACL amounts to, if it names no one but
    the owner, the group and the others; None for an extended ACL."""
    if len(value) < 4 or (len(value) - 4) % 8:
        raise InvalidArgument(f"an ACL of {len(value)} bytes is malformed")
    (version,) = struct.unpack_from("<I", value)
    if version != _VERSION:
        raise InvalidArgument(f"ACL version {version}, not {_VERSION}")
    base: dict[int, int] = {}
    extended = False
    for offset in range(4, len(value), 8):
        tag, perm, _id = struct.unpack_from("<HHI", value, offset)
        if perm & ~0o7 or tag not in (_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER):
            raise InvalidArgument(f"ACL entry with tag {tag:#x} and permissions {perm:#o}")
        if tag in _SHIFT:
            if tag in base:
                raise InvalidArgument(f"ACL with two entries of tag {tag:#x}")
            base[tag] = perm
        else:
            extended = True
    if len(base) != len(_SHIFT):
        raise InvalidArgument("an ACL needs the owner's, the group's and the others' entries")
    if extended:
        return None
    return sum(perm << _SHIFT[tag] for tag, perm in base.items())


def acl_chmod(caller: Caller, node: Inode, name: str, value: bytes | None) -> int | None:
    """The mode to give ``node`` for setxattr (``value`` None: removexattr) of ACL ``name`` by
    ``caller``; None: nothing to change. Only the owner or root may (EPERM); like a chmod, it
    drops the setgid bit of a file whose group the caller is not in (as far as the caller's
    groups are known: the frontend tells only its primary group)."""
    if not caller.privileged and caller.uid != node.uid:
        raise NotPermitted(f"inode {node.id}: only its owner may set its ACL")
    if value is None:
        return None  # none is kept, so none is there to remove
    if name == ACL_DEFAULT:
        raise NotSupported("default ACLs are not kept (docs/mount.md)")
    bits = mode_of_acl(value)
    if bits is None:
        raise NotSupported("ACLs beyond the mode bits are not kept (docs/mount.md)")
    mode = (node.mode & 0o7000) | bits
    in_group = node.gid == caller.gid or node.gid in caller.groups
    if not caller.privileged and not in_group:
        mode &= ~stat.S_ISGID
    return mode
