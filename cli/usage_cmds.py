"""`shoal fs du|count|checksum`: how much a tree holds, how much of it is cached, and a file's
MD5, as Alluxio's commands of the same names show them.

They run offline or, like every `fs` command, through the daemon serving the home (cli/online.py).
Directories below a mount are listed from its store as `fs ls` lists them; a checksum reads
through the cache (a miss is fetched, and cached as the mount's read type says).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cli.common import EXIT_OK, add_command, open_engine
from cli.output import safe
from cli.paths import absolute
from cli.report_cmd import human
from engine.engine import Engine
from engine.errors import InvalidArgument, IsADirectory
from engine.inode import Inode

CHECKSUM_CHUNK = 8 << 20


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        cmds,
        common,
        "du",
        cmd_du,
        "sizes of the files below PATH and how much of each is cached",
        description="One line per file below PATH (-s: one for PATH in all): its size, the"
        " bytes of it in Shoal's cache (with the percentage) and its path.",
        conflict_handler="resolve",  # -h is du's human sizes; --help stays
    )
    p.add_argument("-s", "--summarize", action="store_true", help="PATH's total only")
    p.add_argument(
        "-h", "--human-readable", dest="human", action="store_true", help="sizes in KiB, MiB..."
    )
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds,
        common,
        "count",
        cmd_count,
        "files, directories (PATH itself included) and bytes below PATH",
        conflict_handler="resolve",
    )
    p.add_argument(
        "-h", "--human-readable", dest="human", action="store_true", help="the size in KiB..."
    )
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds, common, "checksum", cmd_checksum, "the MD5 of a file's content, read through Shoal"
    )
    p.add_argument("path", metavar="PATH")


@dataclass
class Usage:
    """What one file, or a tree of them, holds."""

    size: int = 0
    cached: int = 0
    files: int = 0
    folders: int = 0

    def add(self, other: Usage) -> None:
        self.size += other.size
        self.cached += other.cached
        self.files += other.files
        self.folders += other.folders


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def walk(engine: Engine, path: str) -> Iterator[tuple[str, Inode]]:
    """(path, node) of PATH and everything below it, depth first, in name order."""
    node = engine.sync.lookup(path)
    yield path, node
    if node.children is None:
        return
    for name, child in sorted(engine.sync.entries(path), key=lambda item: item[0]):
        if child.children is not None:
            yield from walk(engine, _join(path, name))
        else:
            yield _join(path, name), child


def usage_of(engine: Engine, node: Inode) -> Usage:
    if node.children is not None:
        return Usage(folders=1)
    if node.kind != "file":  # a link or a special file: counted, holding no data
        return Usage(files=1)
    cached = 0
    if engine.cache is not None:
        with engine.ns.lock:  # the block map changes under a daemon's readers
            cached = engine.cache.cached_bytes(node.id, node.version)
    return Usage(size=node.size, cached=min(cached, node.size), files=1)


def _size(n: int, readable: bool) -> str:
    return human(n) if readable else str(n)


def _du_line(usage: Usage, path: str, readable: bool) -> str:
    share = f"{100 * usage.cached // usage.size}%" if usage.size else "100%"
    cached = f"{_size(usage.cached, readable)} ({share})"
    return f"{_size(usage.size, readable):<14}{cached:<22}{safe(path)}"


def cmd_du(args: argparse.Namespace) -> int:
    path = absolute(args.path)
    total = Usage()
    print(f"{'File Size':<14}{'In Shoal':<22}Path")
    with open_engine(args) as engine:
        for item_path, node in walk(engine, path):
            usage = usage_of(engine, node)
            total.add(usage)
            if not args.summarize and node.children is None:
                print(_du_line(usage, item_path, args.human))
    if args.summarize:
        print(_du_line(total, path, args.human))
    return EXIT_OK


def cmd_count(args: argparse.Namespace) -> int:
    total = Usage()
    with open_engine(args) as engine:
        for _path, node in walk(engine, absolute(args.path)):
            total.add(usage_of(engine, node))
    print(f"{'File Count':<16}{'Folder Count':<16}Folder Size")
    print(f"{total.files:<16}{total.folders:<16}{_size(total.size, args.human)}")
    return EXIT_OK


def cmd_checksum(args: argparse.Namespace) -> int:
    path = absolute(args.path)
    digest = hashlib.md5(usedforsecurity=False)
    with open_engine(args) as engine:
        node = engine.sync.lookup(path)
        if node.children is not None:
            raise IsADirectory(f"{path} is a directory: checksum takes a file")
        if node.kind != "file":
            raise InvalidArgument(f"{path} is a {node.kind}: checksum takes a file")
        for offset in range(0, node.size, CHECKSUM_CHUNK):
            digest.update(engine.fs.read(path, offset, CHECKSUM_CHUNK))
    print(f"md5sum: {digest.hexdigest()}")
    sys.stdout.flush()
    return EXIT_OK
