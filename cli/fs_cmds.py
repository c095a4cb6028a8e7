"""`shoal fs ...`: namespace operations on a home that no daemon has open.

Paths are namespace paths; a relative one is taken from the root. Files and directories are
created owned by the user running the command.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from typing import Any

from cli import cache_cmds, mount_cmds, pathconf_cmds, usage_cmds
from cli.common import EXIT_OK, UsageError, add_command, command_group, open_engine
from cli.output import (
    dumps,
    flag_names,
    format_time_full,
    inode_json,
    inode_stat_json,
    key_values,
    ls_rows,
    mode_string,
    safe,
)
from cli.paths import absolute as _abs
from engine.engine import Engine
from engine.errors import IsADirectory, NotFound
from engine.inode import Inode
from engine.state import block_size_of


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = command_group(
        sub, common, "fs", "namespace operations (in the daemon serving the home, if one runs)"
    )

    p = add_command(cmds, common, "mkdir", cmd_mkdir, "create directories")
    p.add_argument(
        "-p",
        "--parents",
        action="store_true",
        help="create missing parents; no error if the directory exists",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = add_command(
        cmds, common, "touch", cmd_touch, "create empty complete files, or update their mtime"
    )
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = add_command(cmds, common, "ls", cmd_ls, "list a directory like `ls -l`")
    p.add_argument("-R", "--recursive", action="store_true", help="list subdirectories too")
    p.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    p.add_argument(
        "--sync", action="store_true", help="list mounted directories from their UFS first"
    )
    p.add_argument("path", nargs="?", default="/", metavar="PATH")

    p = add_command(
        cmds, common, "put", cmd_put, "copy a local file to PATH (below a mount: THROUGH its UFS)"
    )
    p.add_argument("local", metavar="LOCAL_FILE", help="a file, or - for standard input")
    p.add_argument("path", metavar="PATH")
    p.add_argument(
        "--write-type",
        choices=["MUST_CACHE", "CACHE_THROUGH", "THROUGH", "ASYNC_THROUGH"],
        help="default: the mount's write_type option, else the write_type config key",
    )

    p = add_command(cmds, common, "cat", cmd_cat, "write a file's bytes to standard output")
    p.add_argument("path", metavar="PATH")

    p = add_command(
        cmds, common, "sync", cmd_sync, "bring PATH in step with its UFS now (metadata only)"
    )
    p.add_argument("-R", "--recursive", action="store_true", help="every directory below too")
    p.add_argument("path", metavar="PATH")

    p = add_command(cmds, common, "stat", cmd_stat, "show an inode's attributes")
    p.add_argument("--json", action="store_true")
    p.add_argument("path", metavar="PATH")

    p = add_command(cmds, common, "rm", cmd_rm, "remove files (directories with -R)")
    p.add_argument(
        "-R",
        "-r",
        "--recursive",
        dest="recursive",
        action="store_true",
        help="remove directories and everything below them",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")

    p = add_command(cmds, common, "mv", cmd_mv, "rename; into DST if DST is an existing directory")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")

    p = add_command(cmds, common, "ln", cmd_ln, "create a symbolic link (-s)")
    p.add_argument(
        "-s",
        "--symbolic",
        action="store_true",
        help="required: only symbolic links exist in the namespace",
    )
    p.add_argument("target", metavar="TARGET")
    p.add_argument("path", metavar="PATH")

    mount_cmds.register(cmds, common)
    cache_cmds.register(cmds, common)
    usage_cmds.register(cmds, common)
    pathconf_cmds.register(cmds, common)


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def _ids() -> tuple[int, int]:
    return os.getuid(), os.getgid()


# -- changes ------------------------------------------------------------------------------------


def cmd_mkdir(args: argparse.Namespace) -> int:
    uid, gid = _ids()
    with open_engine(args) as engine:
        for path in args.paths:
            if args.parents:
                engine.fs.makedirs(_abs(path), 0o755, uid, gid)
            else:
                engine.fs.mkdir(_abs(path), 0o755, uid, gid)
    return EXIT_OK


def cmd_touch(args: argparse.Namespace) -> int:
    uid, gid = _ids()
    with open_engine(args) as engine:
        ns = engine.ns
        for raw in args.paths:
            path = _abs(raw)
            try:
                node = engine.sync.lookup(path)
            except NotFound:
                if engine.fs.mount_of(path) is not None:  # an empty file, written THROUGH
                    engine.fs.write_file(path, io.BytesIO(b""), 0o644, uid, gid)
                    continue
                node = ns.create(path, 0o644, uid, gid)
                ns.complete(node.id, 0, engine.config.block_size)
            else:  # the store's copy too, as touch through the mount does
                engine.fs.set_attrs(node, mtime=time.time_ns())
    return EXIT_OK


def cmd_rm(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        for raw in args.paths:
            path = _abs(raw)
            if engine.sync.lookup(path).is_dir and not args.recursive:
                raise IsADirectory(f"{path} is a directory; use -R to remove it")
            engine.fs.delete(path, recursive=args.recursive)
    return EXIT_OK


def cmd_mv(args: argparse.Namespace) -> int:
    src, dst = _abs(args.src), _abs(args.dst)
    with open_engine(args) as engine:
        try:
            target = engine.sync.lookup(dst)
        except NotFound:
            target = None
        if target is not None and target.is_dir and engine.sync.lookup(src) is not target:
            dst = _join(dst, src.rstrip("/").rsplit("/", 1)[-1])
        engine.fs.rename(src, dst)
    return EXIT_OK


def cmd_ln(args: argparse.Namespace) -> int:
    if not args.symbolic:
        raise UsageError("only symbolic links exist in the namespace: use `shoal fs ln -s`")
    uid, gid = _ids()
    with open_engine(args) as engine:
        engine.fs.symlink(_abs(args.path), args.target, uid, gid)
    return EXIT_OK


# -- reading ------------------------------------------------------------------------------------


def _walk(engine: Engine, path: str, recursive: bool) -> list[tuple[str, Inode]]:
    """(path, node) of the directory's entries, depth-first when recursive."""
    out = []
    for name, child in engine.sync.entries(path):
        child_path = _join(path, name)
        out.append((child_path, child))
        if recursive and child.is_dir:
            out.extend(_walk(engine, child_path, recursive))
    return out


def cmd_put(args: argparse.Namespace) -> int:
    uid, gid = _ids()
    with open_engine(args) as engine:
        kind = args.write_type
        if args.local == "-":
            engine.fs.write_file(_abs(args.path), sys.stdin.buffer, 0o644, uid, gid, kind)
        else:
            with open(args.local, "rb") as source:
                engine.fs.write_file(_abs(args.path), source, 0o644, uid, gid, kind)
    return EXIT_OK


def cmd_cat(args: argparse.Namespace) -> int:
    chunk = 8 << 20
    with open_engine(args) as engine:
        path = _abs(args.path)
        size = engine.sync.lookup(path).size
        out = sys.stdout.buffer
        for offset in range(0, size, chunk):
            out.write(engine.fs.read(path, offset, chunk))
        out.flush()
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        changed = engine.sync.sync(_abs(args.path), recursive=args.recursive)
    print(f"{changed} change(s) journaled")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    path = _abs(args.path)
    with open_engine(args) as engine:
        node = engine.sync.lookup(path, 0.0 if args.sync else None)
        if not node.is_dir:
            if args.json:
                print(dumps(inode_json(node, path)))
            else:
                print("\n".join(ls_rows([(node, path)])))
            return EXIT_OK
        if args.json:
            for child_path, child in _walk(engine, path, args.recursive):
                print(dumps(inode_json(child, child_path)))
            return EXIT_OK
        _print_listing(engine, path, args.recursive, header=args.recursive)
    return EXIT_OK


def _print_listing(engine: Engine, path: str, recursive: bool, *, header: bool) -> None:
    children = engine.sync.entries(path)
    if header:
        print(f"{safe(path)}:")
    for line in ls_rows([(c, name) for name, c in children]):
        print(line)
    if recursive:
        for name, child in children:
            if child.is_dir:
                print()
                _print_listing(engine, _join(path, name), recursive, header=True)


def cmd_stat(args: argparse.Namespace) -> int:
    path = _abs(args.path)
    with open_engine(args) as engine:
        node = engine.sync.lookup(path)
        if args.json:
            print(dumps(inode_stat_json(node, path)))
            return EXIT_OK
        rows: list[tuple[str, object]] = [
            ("path", safe(path)),
            ("id", node.id),
            ("type", node.kind),
            ("mode", f"{node.mode & 0o7777:04o} ({mode_string(node.mode)})"),
            ("uid", node.uid),
            ("gid", node.gid),
            ("size", node.size),
            ("mtime", f"{format_time_full(node.mtime)} ({node.mtime} ns)"),
            ("ctime", f"{format_time_full(node.ctime)} ({node.ctime} ns)"),
            ("version", node.version),
            ("flags", ", ".join(flag_names(node)) or "-"),
        ]
        if node.children is not None:
            rows.append(("entries", len(node.children)))
        if block_size_of(node):
            rows.append(("block size", block_size_of(node)))
        if node.ext is not None and node.ext.target is not None:
            rows.append(("target", safe(node.ext.target)))
        for which in ("read_type", "write_type"):
            own = getattr(node.ext, which) if node.ext is not None else None
            effective = engine.fs.path_type(node, which)
            if effective:
                label = which.replace("_", " ")
                rows.append((label, own or f"{effective} (from a parent directory)"))
        print(key_values(rows))
    return EXIT_OK
