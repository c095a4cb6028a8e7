"""fsck's part of the stores' name rules (ufs/base.py NameRules): names below a mount that its
store could not hold. Known from the mount's URI alone: no store is asked."""

from __future__ import annotations

from engine.state import State
from ufs.base import join as ufs_join
from ufs.errors import UfsError
from ufs.uri import name_rules


def unstorable_below(state: State, mount_id: int, uri: str) -> list[str]:
    """Names below a mount that its store could not hold (S3: not UTF-8, or a key over 1,024
    bytes): the engine refuses them before they are journaled, so none should be here."""
    top = state.tree.find(mount_id)
    try:
        rules = name_rules(uri)
    except UfsError:
        return []  # a URI no connector takes: the mount's own problem, not its names'
    out = []
    stack = [(top, "")] if top is not None and top.children is not None else []
    while stack:
        directory, rel = stack.pop()
        for name, child in directory.children.items():  # type: ignore[union-attr]
            if child.id in state.mounts:
                continue  # a mount below: its own store's rules
            # Only a store that limits whole keys needs the path; per name is enough elsewhere.
            path = ufs_join(rel, name) if rules.key_max is not None else name
            try:
                rules.check(path, child.children is not None)
            except UfsError as exc:
                out.append(f"inode {child.id} in {uri}: {exc}")
            if child.children:
                stack.append((child, path))
    return out
