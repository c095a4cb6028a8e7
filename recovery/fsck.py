"""`shoal fsck`: named invariant checks over a state rebuilt from the journal.

Each check is a function of the state returning its failures (one line each, empty when the
invariant holds). Most read the state only; a failure means the apply functions, a checkpoint
or the log produced a state the namespace operations could never have, so the report names the
inodes involved. The data checks (``reads_tiers``) also take the blocks the map lists but no
tier holds (a reconciliation finds them): they report acknowledged data lost from the cache —
its only copy — by a disk or by hand, which no operation could cause either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from engine.cache.durability import (
    acknowledged_without_blocks,
    describe,
    pending_without_bytes,
)
from engine.cache.tierclaim import TierOwner
from engine.cache.tiers import BlockKey
from engine.home import StopRecord
from engine.inode import (
    COMPLETE,
    PERSISTED,
    PINNED,
    PROVISIONAL,
    ROOT_ID,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    SPECIAL_TYPES,
    Inode,
)
from engine.listingmarks import parse_listing_mark
from engine.nodechecks import xattr_problem
from engine.pathconf import prefix_problem, value_problem
from engine.state import BLOCK_SHIFT_BITS, State
from recovery.homecheck import check_home_modes, check_tier_marks
from recovery.ordercheck import check_ordered_data
from recovery.orphancheck import check_orphans
from recovery.treecheck import (
    check_directory_links,
    check_link_counts,
    check_names,
    check_no_cycles,
    check_parent_links,
    nodes_of,
)

MAX_FAILURES = 20  # per check: enough to locate a problem without flooding the terminal
KNOWN_FLAGS = COMPLETE | PERSISTED | PINNED | PROVISIONAL
BLOCK_SIZE_BITS = 0xFF << BLOCK_SHIFT_BITS  # log2 of the file's block size


def check_root(state: State) -> list[str]:
    root = state.tree.find(ROOT_ID)
    if root is None:
        return ["inode 1 (the root) does not exist"]
    out = []
    if root.children is None or root.mode & S_IFMT != S_IFDIR:
        out.append("the root is not a directory")
    if root.parent != ROOT_ID or root.name != "":
        out.append(f"the root has parent {root.parent} and name {root.name!r}, not 1 and ''")
    return out


def check_table(state: State) -> list[str]:
    """Every inode sits in the id table under its own id."""
    return [
        f"table slot {i} holds inode {n.id}"
        for i, n in enumerate(state.tree.table)
        if n is not None and n.id != i
    ]


def check_counts(state: State) -> list[str]:
    present = len(nodes_of(state))
    if state.tree.count != present:
        return [f"the tree counts {state.tree.count} inodes but holds {present}"]
    return []


def check_next_id(state: State) -> list[str]:
    top = max((n.id for n in nodes_of(state)), default=0)
    if state.tree.next_id <= top:
        return [f"next_id {state.tree.next_id} is not above the highest id in use ({top})"]
    return []


def check_kinds(state: State) -> list[str]:
    """Type bits agree with the node's shape: directories have children, symlinks a target;
    flags hold only the known bits (and the block size bits above them)."""
    out = []
    for node in nodes_of(state):
        unknown = node.flags & ~(KNOWN_FLAGS | BLOCK_SIZE_BITS)
        if unknown:
            out.append(f"inode {node.id}: unknown flag bits {unknown:#x}")
        fmt = node.mode & S_IFMT
        if fmt == S_IFDIR and node.children is None:
            out.append(f"inode {node.id}: directory mode but no children table")
        elif fmt != S_IFDIR and node.children is not None:
            out.append(f"inode {node.id}: has a children table but mode {node.mode:#o}")
        if fmt == S_IFLNK and (node.ext is None or not node.ext.target):
            out.append(f"inode {node.id}: symlink without a target")
        if fmt not in (S_IFDIR, S_IFREG, S_IFLNK) and fmt not in SPECIAL_TYPES:
            out.append(f"inode {node.id}: unknown file type in mode {node.mode:#o}")
        if node.size < 0:
            out.append(f"inode {node.id}: negative size {node.size}")
    return out


def _target_problem(
    node: Inode | None, ino: int, what: str, *, directory: bool = False, count: str = ""
) -> str | None:
    """Why inode ``ino`` (``node``) cannot be the regular file (or directory) that ``what``: it
    does not exist (the message then starts with ``count``) or is of another type. None when it
    is fine."""
    if node is None:
        return f"{count}{what} inode {ino}, which does not exist"
    if directory and node.children is None:
        return f"{what} inode {ino}, which is not a directory"
    if not directory and node.mode & S_IFMT != S_IFREG:
        return f"{what} inode {ino}, which is not a regular file"
    return None


def check_mounts(state: State) -> list[str]:
    out = []
    for ino, mount in state.mounts.items():
        node = state.tree.find(ino)
        if mount.id != ino:
            out.append(f"mount table key {ino} holds a mount of inode {mount.id}")
        problem = _target_problem(node, ino, f"mount {mount.uri} points at", directory=True)
        if problem:
            out.append(problem)
    return out


def check_blocks(state: State) -> list[str]:
    out = []
    for file, blocks in state.blocks.items():
        node = state.tree.find(file) or state.orphans.get(file)  # orphans: check_orphans
        problem = _target_problem(node, file, "cached blocks belong to", count=f"{len(blocks)} ")
        if problem:
            out.append(problem)
        if node is None:
            continue
        if not blocks:
            out.append(f"inode {file} has an empty block map entry")
        for version, index in blocks:
            if version != node.version and version != node.version + 1:  # +1: check_staged's
                out.append(
                    f"inode {file}: cached block {index} is of version {version}, the file is"
                    f" at version {node.version}"
                )
            if index < 0:
                out.append(f"inode {file}: block index {index} is negative")
    return out


def check_staged(state: State) -> list[str]:
    """Blocks of the version above a file's own were staged by a rewrite (engine/cache/
    staging.py) that never committed: a crash cut it short. The file kept its old content;
    the next start drops them (`shoal fsck --repair` does it now)."""
    out = []
    for file, blocks in state.blocks.items():
        node = state.tree.find(file)
        if node is None:
            continue  # check_blocks's
        staged = sorted(i for v, i in blocks if v == node.version + 1)
        if staged:
            out.append(
                f"inode {file}: {len(staged)} staged block(s) of version {node.version + 1}"
                f" (indexes {staged[0]}-{staged[-1]}) of a rewrite that never committed; the"
                f" file keeps version {node.version}"
            )
    return out


def check_persists(state: State) -> list[str]:
    out = []
    for file, version in state.persists.items():
        node = state.tree.find(file)
        problem = _target_problem(node, file, "a persist is pending for")
        if problem:
            out.append(problem)
        elif node is not None and version > node.version:
            out.append(
                f"inode {file}: persist of version {version} is ahead of the file's"
                f" version {node.version}"
            )
    return out


def check_pending_bytes(state: State, lost: Collection[BlockKey] = ()) -> list[str]:
    """Every pending persist still has all its blocks in some tier: the cache holds the only
    copy of that content, so a missing block is data lost, and the upload can never run."""
    return [describe(state, item) for item in pending_without_bytes(state, lost)]


def check_acknowledged_blocks(state: State, lost: Collection[BlockKey] = ()) -> list[str]:
    """Every complete file whose content is not persisted (MUST_CACHE, or an upload still
    pending) has each of its blocks in some tier."""
    return [describe(state, item) for item in acknowledged_without_blocks(state, lost)]


def check_listing_marks(state: State) -> list[str]:
    """A directory's UFS fingerprint is only ever its listing mark (engine/sync.py: which mount
    it was listed from, and when), and no file's fingerprint is one: a mark elsewhere would
    make a sync serve or skip the wrong listing."""
    out = []
    for node in nodes_of(state):
        fingerprint = node.ext.fingerprint if node.ext is not None else None
        if fingerprint is None:
            continue
        marked = parse_listing_mark(fingerprint) is not None
        if node.children is not None and not marked:
            out.append(
                f"directory {node.id}: UFS fingerprint {fingerprint!r} is not a listing mark"
            )
        elif node.children is None and marked:
            out.append(f"inode {node.id}: a listing mark {fingerprint!r} on a non-directory")
    return out


def _below_mount(state: State, node: Inode, known: dict[int, bool]) -> bool:
    """Whether ``node`` is a mount point or below one; ``known``: directories' answers so far
    (millions of files share a few thousand directories)."""
    tree = state.tree
    path: list[int] = []
    cur: Inode | None = node
    answer = False
    while cur is not None and len(path) <= len(tree.table):  # a cycle is check_no_cycles's
        if cur.id in known:
            answer = known[cur.id]
            break
        if cur.id in state.mounts:
            answer = True
            break
        path.append(cur.id)
        if cur.id == ROOT_ID:
            break
        cur = tree.find(cur.parent)
    for ino in path[1:]:
        known[ino] = answer
    return answer


def check_store_copies(state: State) -> list[str]:
    """A file with a UFS fingerprint has a copy in a store: its content (persisted), or one it
    is to remove there — an older version, or the copy of a file it was renamed over
    (Rename.stale, engine/ufsfirst.py). Its next delete or rename removes a copy of the second
    kind only below a mount: outside every mount nothing would, and a later mount of that
    store would show it again."""
    out: list[str] = []
    known: dict[int, bool] = {}
    for node in nodes_of(state):
        fingerprint = node.ext.fingerprint if node.ext is not None else None
        if fingerprint is None or node.children is not None or _below_mount(state, node, known):
            continue
        kind = "its content" if node.flags & PERSISTED else "a stale copy it is to remove"
        out.append(
            f"inode {node.id} ({node.name!r}): UFS fingerprint {fingerprint!r} ({kind}) but"
            " it is below no mount"
        )
    return out


def check_provisional_attrs(state: State) -> list[str]:
    """Provisional owners and modes (engine/provisional.py) are only a regular file's whose
    store copy holds the real ones: one with a UFS fingerprint to read them from."""
    out = []
    for node in nodes_of(state):
        if not node.flags & PROVISIONAL:
            continue
        if node.mode & S_IFMT != S_IFREG:
            out.append(f"inode {node.id} ({node.name!r}): provisional attributes on a non-file")
        elif node.ext is None or not node.ext.fingerprint:
            out.append(f"inode {node.id} ({node.name!r}): provisional attributes, no store copy")
    return out


def check_xattrs(state: State) -> list[str]:
    """Extended attributes are only user.* ones, within Linux's sizes, on files and
    directories; an access time, where one is kept, is a time."""
    out = []
    for node in nodes_of(state):
        ext = node.ext
        if ext is None:
            continue
        for name, value in (ext.xattrs or {}).items():
            if not isinstance(value, bytes):
                out.append(f"inode {node.id}: attribute {name!r} holds {type(value).__name__}")
                continue
            problem = xattr_problem(node, name, value)
            if problem is not None:
                out.append(f"inode {node.id}: {problem}")
        if ext.xattrs is not None and not ext.xattrs:
            out.append(f"inode {node.id}: an empty attribute table kept")
        if ext.atime is not None and (not isinstance(ext.atime, int) or ext.atime < 0):
            out.append(f"inode {node.id}: access time {ext.atime!r} is not a time")
    return out


def check_store_moves(state: State) -> list[str]:
    """Every pending store move (a rename below a mount whose store part is not journaled done:
    Rename.store_from, engine/storemove.py) can complete: its inode exists below a mount, and
    the path it moves from is a store path. Pending ones are completed at the next start, or
    before the next listing of their mount; `shoal fsck` names them (and, in a local store,
    those whose content is at neither path) on its ``stores`` line."""
    out: list[str] = []
    known: dict[int, bool] = {}
    for ino, (old, _fingerprint) in sorted(state.store_moves.items()):
        node = state.tree.find(ino)
        if node is None:
            out.append(f"inode {ino}: a store move from {old!r} is pending but no such inode")
        elif not old:
            out.append(f"inode {ino} ({node.name!r}): a store move from an empty path")
        elif not _below_mount(state, node, known):
            out.append(
                f"inode {ino} ({node.name!r}): its store move from {old!r} is pending but it is"
                " below no mount"
            )
    return out


def check_path_confs(state: State) -> list[str]:
    out = []
    for prefix, conf in state.pathconfs.table.items():
        problem = prefix_problem(prefix)
        if problem is None and not conf:
            problem = f"path conf {prefix!r} sets no key"
        problems = [problem] + [
            value_problem(key, value) if value is not None else f"path conf {prefix} {key}: null"
            for key, value in conf.items()
        ]
        out += [p for p in problems if p is not None]
    return out


def check_stop_record(state: State, stops: StopRecord) -> list[str]:
    """The home's record of an unclean stop (engine/home.py) can be read: it says which
    listings predate the stop and are to be repeated once; one that cannot be read makes every
    loaded directory due again."""
    if stops.problem is None:
        return []
    return [f"{stops.problem}: the next start lists every loaded directory once more"]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[..., list[str]]
    # Also judges the tier directories: takes the blocks the map lists but no tier holds.
    reads_tiers: bool = False
    # Judges the home's record of how it was stopped instead: takes it.
    reads_stops: bool = False
    # Judges the files of the home and of its tiers: takes their root directories.
    reads_home: bool = False
    # Judges the tier directories themselves, inside the home or not: takes them.
    reads_tier_dirs: bool = False


CHECKS: list[Check] = [
    Check("root", "the root is inode 1, a directory, its own parent", check_root),
    Check("id-table", "every inode is stored under its own id", check_table),
    Check("parent-links", "parents and directory entries agree", check_parent_links),
    Check(
        "names",
        "every name is storable (1-255 bytes, no '/' or NUL), and below a mount by its store",
        check_names,
    ),
    Check("no-cycles", "every inode is reachable from the root exactly once", check_no_cycles),
    Check("link-counts", "files' link counts match the names found", check_link_counts),
    Check(
        "dir-link-counts",
        "directories' link counts are 2 + their subdirectories",
        check_directory_links,
    ),
    Check("counts", "the inode count matches the inodes present", check_counts),
    Check("next-id", "the next inode id is above every id in use", check_next_id),
    Check("kinds", "file type and flag bits match the inode's shape", check_kinds),
    Check("mounts", "mount points are existing directories", check_mounts),
    Check("blocks", "cached blocks belong to existing files' current versions", check_blocks),
    Check("staged", "no staged blocks of a rewrite that never committed", check_staged),
    Check("persists", "pending persists refer to existing files", check_persists),
    Check("orphans", "files unlinked while open: nameless, no upload, own blocks", check_orphans),
    Check(
        "pending-bytes",
        "no pending persist without its bytes (every block in some tier)",
        check_pending_bytes,
        reads_tiers=True,
    ),
    Check(
        "ack-blocks",
        "no acknowledged file whose blocks are gone (unpersisted content in the cache)",
        check_acknowledged_blocks,
        reads_tiers=True,
    ),
    Check(
        "ordered-data",
        "every block only the cache holds is on disk as its entry says (checksums read)",
        check_ordered_data,
        reads_tiers=True,
    ),
    Check("listing-marks", "directories' UFS fingerprints are listing marks", check_listing_marks),
    Check(
        "store-copies",
        "every file with a copy in a store (its content, or a stale one to remove) is below a"
        " mount",
        check_store_copies,
    ),
    Check(
        "provisional-attrs",
        "provisional owners and modes only on files whose store copy holds the real ones",
        check_provisional_attrs,
    ),
    Check("xattrs", "extended attributes are user.* ones of allowed sizes", check_xattrs),
    Check(
        "store-moves",
        "pending store moves of renamed files can complete (below a mount)",
        check_store_moves,
    ),
    Check(
        "path-confs",
        "per-path defaults: absolute normalized prefixes, known keys, valid values",
        check_path_confs,
    ),
    Check(
        "stop-record",
        "the record of an unclean stop (listings to repeat once) is readable",
        check_stop_record,
        reads_stops=True,
    ),
    Check(
        "home-modes",
        "the home and the cache tiers are their owner's only (0700 / 0600)",
        check_home_modes,
        reads_home=True,
    ),
    Check(
        "tier-marks",
        "every tier directory holding anything is this home's (marked), and holds only Shoal's"
        " files",
        check_tier_marks,
        reads_tier_dirs=True,
    ),
]


@dataclass
class CheckResult:
    check: Check
    failures: list[str] = field(default_factory=list)
    more: int = 0  # failures beyond those listed

    @property
    def ok(self) -> bool:
        return not self.failures


def run_checks(
    state: State,
    checks: list[Check] | None = None,
    lost: Collection[BlockKey] = (),
    stops: StopRecord | None = None,
    private: list[str] | None = None,
    tier_dirs: list[str] | None = None,
    owner: TierOwner | None = None,
) -> list[CheckResult]:
    """``lost``: blocks the block map lists whose files are missing or damaged (a
    reconciliation without repair finds them); the data checks count them as gone. ``stops``:
    the home's record of how it was stopped (none for a state without a home: not judged).
    ``private``: the home and its tier directories (none: not judged). ``tier_dirs``: every
    tier directory (none: not judged), of ``owner``'s home."""
    results = []
    lost = set(lost)
    for check in checks or CHECKS:
        if check.reads_tiers:
            failures = check.run(state, lost)
        elif check.reads_stops:
            failures = check.run(state, stops) if stops is not None else []
        elif check.reads_home:
            failures = check.run(state, private) if private is not None else []
        elif check.reads_tier_dirs:
            judged = tier_dirs is not None and owner is not None
            failures = check.run(state, tier_dirs, owner) if judged else []
        else:
            failures = check.run(state)
        results.append(
            CheckResult(check, failures[:MAX_FAILURES], max(0, len(failures) - MAX_FAILURES))
        )
    return results
