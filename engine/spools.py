"""Where the frontend spools a new file written through its store (THROUGH, CACHE_THROUGH):
in the store itself, when it can hold a temporary file of ours (ufs/staged.py).

The writer's bytes then go to their final disk once, as they are written, and close or fsync
only lands them (fsync and rename) instead of copying the whole spool into the store first.
Everything else spools in the home, as before: a store that stages nothing, a file written
to the cache first, a path the store cannot stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import ShoalError
from engine.inode import Inode
from engine.mounts import ufs_errors
from engine.placement import Placement
from engine.state import Mount
from ufs.staged import StagedWrite


@dataclass(eq=False)
class StoreSpool:
    """A staged write in ``mount``'s store, as the frontend's write buffer holds it."""

    staged: StagedWrite
    mount: Mount

    @property
    def fd(self) -> int:
        return self.staged.fd

    @property
    def landed(self) -> bool:
        return self.staged.landed

    def discard(self) -> None:
        """The temporary file removed: its content will not land (the file was unlinked
        while open, or its commit failed and the last handle closed)."""
        try:
            self.staged.discard()
        except OSError:  # a sweep removes it once this process is gone; fsck lists it
            pass

    def close(self) -> None:
        """The writer is done with the descriptor: closed now, or once the store's own
        threads no longer read it (an upload's parts)."""
        self.staged.close()

    def drop(self) -> None:
        """``discard``, then ``close``: a spool whose content will never land, let go."""
        self.discard()
        self.close()

    def abandon(self) -> None:
        """As ``discard``, waiting for what the store must undo (an upload begun: aborted)."""
        try:
            self.staged.abandon()
        except Exception:  # fsck lists what is left (a store that failed to answer)
            pass

    def wrote(self, offset: int, end: int) -> None:
        """The writer wrote [offset, end): a store that uploads as parts fill sends them."""
        self.staged.wrote(offset, end)

    def truncated(self, size: int) -> None:
        self.staged.truncated(size)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.staged.fd, length, offset)


def may_spool_in_store(placement: Placement, node: Inode) -> bool:
    """``store_spool``'s answer for the new file ``node`` without the store: False if it would
    make no spool (not below a mount, or a write type that writes the store later); True if it
    might (the store may still stage nothing). Reads only the namespace: no directory loaded,
    for the event loop."""
    where = placement.sync.mount_of(node)
    return where is not None and placement.write_type_of(node, where[0], None).writes_ufs_at_close


def store_spool(placement: Placement, path: str, spool_dir: str | None = None) -> StoreSpool | None:
    """A spool in the store for the new file at ``path``, if its write type writes the store
    at close and the store stages writes; None otherwise (or if the store refuses now: the
    write at close reports that). ``spool_dir``: the frontend's spool directory, where a
    store that uploads parts as they fill (S3) keeps the spool it sends them from."""
    try:
        parent, name, ufs = placement.target(path)
        if ufs is None:
            return None
        mount, connector, rel = ufs
        node = parent.children.get(name)  # type: ignore[union-attr]
        if not placement.write_type_of(node or parent, mount, None).writes_ufs_at_close:
            return None
        with ufs_errors():
            staged = connector.stage(rel, spool_dir)
    except ShoalError:
        return None
    return StoreSpool(staged, mount) if staged is not None else None
