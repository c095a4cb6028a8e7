"""`shoal fsck`'s checks of the tree's shape: every inode reachable from the root through
names that point back to it, no cycles, valid names, and link counts (a hard-linked file's
names, a directory's subdirectories) that match the names found."""

from __future__ import annotations

from engine.errors import InvalidName
from engine.inode import ROOT_ID, Inode, InodeTree
from engine.names import check_name
from engine.state import State
from recovery.storenames import unstorable_below


def nodes_of(state: State) -> list[Inode]:
    return [n for n in state.tree.table if n is not None]


def _link_to_parent(tree: InodeTree, node: Inode) -> list[str]:
    parent = tree.find(node.parent)
    if parent is None:
        return [f"inode {node.id} ({node.name!r}): parent {node.parent} does not exist"]
    if parent.children is None:
        return [f"inode {node.id}: parent {node.parent} is not a directory"]
    if parent.children.get(node.name) is not node:
        return [f"inode {node.id}: directory {node.parent} does not list it as {node.name!r}"]
    return []


def check_parent_links(state: State) -> list[str]:
    """Each inode is listed by its parent under its name, and each directory entry (the root's
    too) names an inode of the table whose parent and name are that directory and that entry."""
    tree = state.tree
    out = []
    for node in nodes_of(state):
        if node.id != ROOT_ID:  # the root's own links are check_root's
            out.extend(_link_to_parent(tree, node))
        if node.children is not None:
            for name, child in node.children.items():
                if (node.id, name) not in tree.names_of(child):
                    out.append(
                        f"directory {node.id} lists {name!r} as inode {child.id}, whose parent"
                        f" is {child.parent} and name {child.name!r}"
                    )
                if tree.find(child.id) is not child:
                    out.append(
                        f"directory {node.id} lists {name!r} as inode {child.id},"
                        " which is not in the id table"
                    )
    return out


def check_names(state: State) -> list[str]:
    out = []
    for node in nodes_of(state):
        if node.id == ROOT_ID:
            continue
        for _parent, name in state.tree.names_of(node):  # a hard-linked file's every name
            try:
                check_name(name)
            except InvalidName as exc:
                out.append(f"inode {node.id}: {exc}")
    for mount in state.mounts.values():
        out += unstorable_below(state, mount.id, mount.uri)
    return out


def check_no_cycles(state: State) -> list[str]:
    """Following parents from any inode reaches the root, and the root reaches every inode."""
    tree = state.tree
    out = []
    limit = len(tree.table)
    for node in nodes_of(state):
        cur, steps = node, 0
        while cur.id != ROOT_ID and steps <= limit:
            nxt = tree.find(cur.parent)
            if nxt is None:
                break  # reported by parent-links
            cur, steps = nxt, steps + 1
        if steps > limit:
            out.append(f"inode {node.id}: following parents never reaches the root (a cycle)")
    reached: dict[int, int] = {}
    stack = [tree.root] if tree.find(ROOT_ID) is not None else []
    while stack:
        cur = stack.pop()
        seen = reached[cur.id] = reached.get(cur.id, 0) + 1
        if seen > 1:
            # A hard-linked file is reached once per name (link-counts judges how many).
            if cur.children is not None or seen > cur.nlink:
                out.append(f"inode {cur.id} is reachable by more paths than it has names")
            continue
        if cur.children:
            stack.extend(cur.children.values())
    for node in nodes_of(state):
        if node.id not in reached:
            out.append(f"inode {node.id} ({node.name!r}) is not reachable from the root")
    return out


def check_link_counts(state: State) -> list[str]:
    """A file's link count is the number of directory entries naming it: each of its names
    (its own and its hard links') is listed by its directory, once; directories have one."""
    tree = state.tree
    entries: dict[int, int] = {}
    for node in nodes_of(state):
        for child in (node.children or {}).values():
            entries[child.id] = entries.get(child.id, 0) + 1
    out = []
    for node in nodes_of(state):
        names = tree.names_of(node)
        if node.children is not None and len(names) > 1:
            out.append(f"directory {node.id} has hard links {names[1:]}")
        if len(set(names)) != len(names):
            out.append(f"inode {node.id} holds one name twice: {names}")
        found = entries.get(node.id, 0)
        if node.id != ROOT_ID and found != node.nlink:
            out.append(f"inode {node.id}: link count {node.nlink}, named by {found} entries")
    return out


def check_directory_links(state: State) -> list[str]:
    """A directory's link count (2 + its subdirectories), kept as the tree changes, matches
    the subdirectories it holds."""
    tree = state.tree
    out = []
    for node in nodes_of(state):
        if node.children is None:
            continue
        subdirs = sum(1 for c in node.children.values() if c.children is not None)
        if tree.nlink(node) != 2 + subdirs:
            out.append(
                f"directory {node.id}: link count {tree.nlink(node)}, but {subdirs} subdirectories"
            )
    stray = [ino for ino in tree.subdirs if (d := tree.find(ino)) is None or d.children is None]
    if stray:
        out.append(f"subdirectory counts kept for {sorted(stray)[:5]}, not directories")
    return out
