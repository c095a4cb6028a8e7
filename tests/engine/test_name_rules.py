"""Names as POSIX has them, bytes, and as each store takes them (engine/names.py, ufs/base.py
NameRules): a local store's names that are not UTF-8 load, are written, survive the journal,
a checkpoint and replay byte for byte; S3 refuses them, and keys over 1,024 bytes, before
anything reaches the store or the journal. Real engines on real homes, a local directory and
moto's S3 over HTTP."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from engine.engine import Engine
from engine.errors import InvalidName, NameTooLong, ShoalError
from engine.names import check_name
from engine.posix import Caller
from engine.snapshot import digest
from engine.state import State
from journal import entries as E
from recovery.fsck import run_checks
from tests.invariants import OpenEngine
from tests.ufs.stores import LocalStore, S3Store

CAFE = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: "caf\udce9" in memory
RESUME = os.fsdecode(b"r\xe9sum\xe9.txt")
ROOT = Caller(0, 0, umask=0o022)


def _names(engine: Engine, path: str) -> set[bytes]:
    return {os.fsencode(n.name) for n in engine.sync.listdir(path)}


def _bytes_tree(root: Path) -> dict[bytes, bytes | None]:
    """Every file (its content) and directory (None) below ``root``, by its path's bytes."""
    out: dict[bytes, bytes | None] = {}
    top = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), top)] = None
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[os.path.relpath(os.path.join(dirpath, f), top)] = fh.read()
    return out


def test_names_that_are_not_utf8_load_write_and_survive_checkpoint_and_replay(
    tmp_path: Path, home: Path, open_engine: OpenEngine
) -> None:
    store = LocalStore(tmp_path / "ufs")
    root = os.fsencode(store.root)
    os.mkdir(root + b"/caf\xe9")
    with open(root + b"/caf\xe9/r\xe9sum\xe9.txt", "wb") as f:
        f.write(b"latin-1 named")
    os.mkdir(root + b"/sub")
    engine = open_engine(home)
    fs = engine.fs
    engine.mounts.mount("/", store.uri)
    assert _names(engine, "/") == {b"caf\xe9", b"sub"}  # the root lists, the name as it is
    assert _names(engine, f"/{CAFE}") == {b"r\xe9sum\xe9.txt"}
    assert fs.read(f"/{CAFE}/{RESUME}", 0, 100) == b"latin-1 named"

    # Made through the engine: in the store under the same bytes.
    fs.mkdir("/sub/" + os.fsdecode(b"d\xff"))
    fs.write_file("/sub/" + os.fsdecode(b"d\xff/f\xfe"), io.BytesIO(b"new"))
    fs.rename("/sub/" + os.fsdecode(b"d\xff/f\xfe"), "/sub/" + os.fsdecode(b"d\xff/g\xfd"))
    fs.symlink("/sub/" + os.fsdecode(b"l\xfc"), os.fsdecode(b"d\xff/g\xfd"))
    tree = _bytes_tree(store.root)
    assert tree[b"sub/d\xff/g\xfd"] == b"new" and b"sub/d\xff/f\xfe" not in tree
    link = engine.sync.lookup("/sub/" + os.fsdecode(b"l\xfc"))
    assert link.size == len(b"d\xff/g\xfd")  # a symlink's size counts its target's bytes
    before = _settled_digest(engine)
    engine.close(checkpoint=False)

    for how in ("replayed", "from a checkpoint"):
        engine = open_engine(home)
        assert digest(engine.state) == before, how
        assert _names(engine, "/sub") == {b"d\xff", b"l\xfc"}, how
        assert fs_read(engine, "/sub/" + os.fsdecode(b"d\xff/g\xfd")) == b"new", how
        target = engine.sync.lookup("/sub/" + os.fsdecode(b"l\xfc")).ext
        assert target is not None and os.fsencode(target.target or "") == b"d\xff/g\xfd", how
        assert fs_read(engine, f"/{CAFE}/{RESUME}") == b"latin-1 named", how
        before = _settled_digest(engine)
        engine.close()  # the second round starts from this checkpoint


def _settled_digest(engine: Engine) -> str:
    """The state's digest once the blocks being cached by reads are journaled."""
    if engine.cache is not None:
        engine.cache.drain()
    with engine.gate.lock:
        return digest(engine.state)


def fs_read(engine: Engine, path: str) -> bytes:
    return engine.fs.read(path, 0, 1 << 20)


def test_names_in_two_spellings_of_the_same_bytes_are_refused(engine: Engine) -> None:
    """Escapes of bytes that are UTF-8 after all would be a second entry for one name."""
    with pytest.raises(InvalidName, match="canonical"):
        check_name("\udcc3\udca9")  # the bytes of "é"
    with pytest.raises(InvalidName, match="stand for no bytes"):
        check_name("\ud800")
    last = engine.journal.last_seq
    with pytest.raises(InvalidName):
        engine.ns.mkdir("/\udcc3\udca9")
    with pytest.raises(ShoalError):
        engine.ns.symlink("/link", "\udcc3\udca9")
    assert engine.journal.last_seq == last


def _s3_engine(open_engine: OpenEngine, home: Path, store: S3Store) -> Engine:
    engine = open_engine(home)
    engine.fs.makedirs("/m")
    engine.mounts.mount("/m", store.uri, store.options)
    engine.fs.write_file("/m/file", io.BytesIO(b"x"))
    engine.fs.mkdir("/m/dir")
    engine.sync.listdir("/m/dir")  # loaded now: its listing's entry is not the refusal's
    return engine


def test_s3_refuses_names_that_are_not_utf8_before_anything_is_written(
    s3_server: object, home: Path, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)  # type: ignore[arg-type]
    engine = _s3_engine(open_engine, home, store)
    fs = engine.fs
    keys, last = store.keys(), engine.journal.last_seq
    attempts = {
        "mkdir": lambda: fs.mkdir(f"/m/{CAFE}"),
        "mkdir -p": lambda: fs.makedirs(f"/m/new/{CAFE}/deeper"),
        "write": lambda: fs.write_file(f"/m/dir/{CAFE}", io.BytesIO(b"data")),
        "create": lambda: fs.create_as(ROOT, engine.sync.lookup("/m").id, CAFE, 0o644),
        "rename": lambda: fs.rename("/m/file", f"/m/dir/{CAFE}"),
        "rename dir": lambda: fs.rename("/m/dir", f"/m/{CAFE}"),
        "symlink": lambda: fs.symlink(f"/m/{CAFE}", "file"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(InvalidName, match="UTF-8") as refused:
            attempt()
        assert refused.value.errno == errno.EINVAL, what
        assert not isinstance(refused.value, NameTooLong), what
        assert store.keys() == keys, what
        assert engine.journal.last_seq == last, what
    assert _names(engine, "/m") == {b"file", b"dir"}


def test_s3_keys_over_1024_bytes_are_refused_before_anything_is_written(
    s3_server: object, home: Path, open_engine: OpenEngine
) -> None:
    store = S3Store(s3_server)  # type: ignore[arg-type]
    engine = _s3_engine(open_engine, home, store)
    fs = engine.fs
    # The key is "ds/" + the path below the mount: four directories of 250 bytes make a deep
    # one whose key is 3 + 4 * 251 - 1 = 1006 bytes, and whose marker's is 1007.
    deep = "/m/" + "/".join(c * 250 for c in "abcd")
    fs.makedirs(deep)
    fs.write_file(deep + "/" + "f" * 17, io.BytesIO(b"fits"))  # a key of exactly 1,024 bytes
    fs.mkdir(deep + "/" + "e" * 16)  # a marker of exactly 1,024 bytes
    assert store.get(deep[3:] + "/" + "f" * 17) == b"fits"
    engine.sync.sync("/m", recursive=True)  # every level loaded: no listing entry below
    keys, last = store.keys(), engine.journal.last_seq
    parent = engine.sync.lookup(deep).id
    attempts = {
        "write": lambda: fs.write_file(deep + "/" + "g" * 18, io.BytesIO(b"data")),
        "create": lambda: fs.create_as(ROOT, parent, "g" * 18, 0o644),
        "mkdir": lambda: fs.mkdir(deep + "/" + "h" * 17),
        "mkdir -p": lambda: fs.makedirs(deep + "/x/" + "y" * 15),
        "symlink": lambda: fs.symlink(deep + "/" + "s" * 18, "file"),
        "rename": lambda: fs.rename("/m/file", deep + "/" + "r" * 18),
        # the directory's own key fits, its file's would be 1,025 bytes
        "rename dir": lambda: fs.rename("/m/" + "a" * 250, "/m/" + "a" * 251),
    }
    for what, attempt in attempts.items():
        with pytest.raises(NameTooLong) as refused:
            attempt()
        assert refused.value.errno == errno.ENAMETOOLONG, what
        assert store.keys() == keys, what
        assert engine.journal.last_seq == last, what
    assert engine.sync.lookup(deep + "/" + "f" * 17).size == 4


def test_fsck_names_finds_a_name_its_store_cannot_hold() -> None:
    """The engine never journals such a name; a log that holds one (written by hand, or by an
    older Shoal) is reported by the names check, with the inode."""
    state = State()
    for seq, entry in enumerate(
        [
            E.MkDir(2, 1, "m", 0o755, 0, 0, 1),
            E.AddMount(2, "s3://bucket/ds", {}, False, None, 1),
            E.CreateFile(3, 2, CAFE, 0o644, 0, 0, 1),
            E.MkDir(4, 2, "d" * 255, 0o755, 0, 0, 1),
            E.MkDir(5, 4, "e" * 255, 0o755, 0, 0, 1),
            E.MkDir(6, 5, "f" * 255, 0o755, 0, 0, 1),
            E.CreateFile(7, 6, "g" * 255, 0o644, 0, 0, 1),  # a key of 3 + 4 * 256 - 1 bytes
            E.MkDir(8, 1, "local", 0o755, 0, 0, 1),
            E.AddMount(8, "/tmp", {}, False, None, 1),
            E.CreateFile(9, 8, CAFE, 0o644, 0, 0, 1),  # a local store takes it
        ],
        start=1,
    ):
        state.apply(entry, seq)
    (names,) = [r for r in run_checks(state) if r.check.name == "names"]
    assert len(names.failures) == 2, names.failures
    assert "inode 3 in s3://bucket/ds" in names.failures[0] + names.failures[1]
    assert any("inode 7" in f and "1026 bytes" in f for f in names.failures), names.failures


def test_a_ufs_uri_that_is_not_utf8_is_refused_with_a_clear_error(
    tmp_path: Path, engine: Engine
) -> None:
    """Checkpoints keep a mount's URI as text: such a directory is mounted through a symlink."""
    odd = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(odd)
    engine.fs.makedirs("/m")
    last = engine.journal.last_seq
    with pytest.raises(ShoalError, match="not UTF-8"):
        engine.mounts.mount("/m", os.fsdecode(odd))
    assert engine.journal.last_seq == last and not engine.state.mounts
    os.symlink(odd, tmp_path / "cafe")
    engine.mounts.mount("/m", str(tmp_path / "cafe"))
    assert _names(engine, "/m") == set()
