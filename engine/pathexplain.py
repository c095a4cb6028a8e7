"""What applies at a path and where each value comes from (`shoal fs pathconf list PATH`).

The same order the operations follow (engine/placement.py for the read and write types,
engine/sync.py for the sync interval, engine/ttl.py for the TTL), told without a call's option:
the type set on the node or an ancestor (`fs settype`; a TTL by `fs setttl`), the deepest path
conf, the mount's option, the configuration. Reads the namespace only: no store is asked, and
the path need not exist (what exists of it gives the node, the mount and inode settings).
"""

from __future__ import annotations

from engine.inode import ROOT_ID, Inode
from engine.names import split_path
from engine.pathconf import KEYS
from engine.placement import Placement

_MOUNTED = ("read_type", "write_type", "sync_interval")  # the keys a mount has options for
Explained = list[tuple[str, str, str]]  # (key, canonical value, where it comes from)


def _nearest(placement: Placement, path: str) -> Inode:
    """The node at ``path``, or at the deepest part of it that exists."""
    node = placement.ns.tree.root
    for name in split_path(path):
        nxt = node.children.get(name) if node.children is not None else None
        if nxt is None:
            break
        node = nxt
    return node


def _inode_setting(placement: Placement, node: Inode, attr: str) -> tuple[str, str] | None:
    """(value, path of the node holding it) of ``attr`` on ``node`` or its nearest ancestor."""
    tree = placement.ns.tree
    cur: Inode | None = node
    while cur is not None:
        value = getattr(cur.ext, attr, None) if cur.ext is not None else None
        if value is not None and value != "":
            return str(value), tree.path_of(cur)
        cur = None if cur.id == ROOT_ID else tree.find(cur.parent)
    return None


def explain(placement: Placement, path: str, sync_default: float) -> Explained:
    with placement.ns.lock:
        node = _nearest(placement, path)
        conf = placement.pathconf.for_path(path)
        where = placement.sync.mount_of(node)
        defaults = {
            "read_type": (placement.read_type, "config read_type"),
            "write_type": (placement.write_type, "config write_type"),
            "sync_interval": (f"{sync_default:g}", "config ufs.sync_interval"),
            "ttl": ("-1", "none"),
            "ttl_action": ("free", "default"),
        }
        out: Explained = []
        for key in KEYS:
            attr = {"ttl": "ttl_ms"}.get(key, key)
            own = _inode_setting(placement, node, attr) if key != "sync_interval" else None
            mounted = where[0].options.get(key) if where is not None and key in _MOUNTED else None
            point = placement.ns.tree.find(where[0].id) if where is not None else None
            if own is not None:
                setter = "setttl" if key.startswith("ttl") else "settype"
                out.append((key, own[0], f"fs {setter} on {own[1]}"))
            elif key in conf:
                out.append((key, conf[key][0], f"path conf {conf[key][1]}"))
            elif mounted is not None and point is not None:
                out.append((key, mounted, f"mount option of {placement.ns.tree.path_of(point)}"))
            else:
                out.append((key, *defaults[key]))
        return out
