"""A tier directory is cleaned by reconciliation only once it is Shoal's
(engine/cache/tierclaim.py): one holding anything else is refused at a start, left as it was."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

import engine.engine as engine_module
from engine.cache.release import clear_tiers
from engine.cache.tierclaim import TierOwner
from engine.cache.tiers import TIER_MARK
from engine.config import default_tiers
from engine.errors import InvalidArgument
from tests.cli.shoal_cli import shoal
from tests.homes import write_config
from tests.invariants import CheckedEngine, OpenEngine
from tests.ufs.stores import LocalStore

NOBODY = 65534


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode for p in [root, *root.rglob("*")]}


def planted(tmp_path: Path) -> Path:
    """A directory of someone's data, readable by all, as a tier configured onto it by mistake
    would find it."""
    theirs = tmp_path / "data"
    (theirs / "train" / "n01").mkdir(parents=True)
    (theirs / "train" / "n01" / "img_0001.JPEG").write_bytes(b"a picture")
    (theirs / "README").write_bytes(b"keep me")
    (theirs / "7").mkdir()  # named like a file's block folder, holding something else
    (theirs / "7" / "notes.txt").write_bytes(b"mine")
    for path in [theirs, *theirs.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return theirs


def cache_only_file(open_engine: OpenEngine, store: LocalStore, home: Path | None = None) -> None:
    """A start of ``home`` (the test's own by default) that writes /only-cached MUST_CACHE over
    ``store``: its one block, in the tiers, is the file's only copy. Stopped after."""
    engine = open_engine(home)
    engine.mounts.mount("/", store.uri)
    engine.fs.write_file("/only-cached", io.BytesIO(b"q" * 40), write_type="MUST_CACHE")
    engine.close()


def test_a_tier_directory_holding_other_files_is_refused_and_left_as_it_is(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A tier configured onto a directory that holds other things (a path mistyped, /data):
    a start used to remove everything in it as orphans of the block map, and then (with the
    claim) still took the group's and others' permissions from all of it before refusing."""
    theirs = planted(tmp_path)
    before, before_modes = contents(theirs), modes(theirs)
    write_config(home, tiers=[("MEM", tmp_path / "mem", 1 << 20), ("SSD", theirs, 1 << 20)])
    with pytest.raises(InvalidArgument) as refused:
        open_engine()
    said = str(refused.value)
    assert str(theirs) in said and "README" in said and "7/notes.txt" in said
    assert not (tmp_path / "mem").exists()  # made by the refused start, and removed again
    assert contents(theirs) == before
    assert modes(theirs) == before_modes
    assert not (theirs / TIER_MARK).exists()


def test_a_tier_directory_from_before_the_mark_is_taken_and_cleaned(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A home from before the mark: its tier directories hold only block folders, block files
    and temporary files. They are marked at the next start and reconciled as before."""
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16, tiers=[("SSD", ssd, 1 << 20)])
    store = LocalStore(tmp_path / "ufs")
    store.put("a", b"x" * 40)  # three 16-byte blocks
    engine = open_engine()
    engine.mounts.mount("/", store.uri)
    assert engine.fs.read("/a", 0, 40) == b"x" * 40
    engine.close()
    (ssd / TIER_MARK).unlink()  # as an older version left it
    (ssd / "999").mkdir()
    (ssd / "999" / "1-0.blk").write_bytes(b"an orphan block")
    (ssd / ".tmp-left").write_bytes(b"a crash's temporary file")
    engine = open_engine()
    assert (ssd / TIER_MARK).exists()
    assert not (ssd / "999" / "1-0.blk").exists() and not (ssd / ".tmp-left").exists()
    assert engine.fs.read_cached(engine.sync.lookup("/a"), 0, 16) == b"x" * 16  # still cached


def test_a_volatile_tier_goes_with_its_mark_at_a_clean_stop(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    mem = tmp_path / "mem"
    write_config(home, tiers=[("MEM", mem, 1 << 20), ("SSD", tmp_path / "ssd", 1 << 20)])
    engine = open_engine()
    assert (mem / TIER_MARK).exists()
    store = LocalStore(tmp_path / "ufs")
    store.put("a", b"y" * 100)
    engine.mounts.mount("/", store.uri)
    engine.fs.write_file("/b", io.BytesIO(b"z" * 100), write_type="CACHE_THROUGH")
    engine.close(release_memory=True)
    assert not mem.exists()


def test_a_start_that_cached_nothing_leaves_no_tier_directory(
    home: Path, open_engine: OpenEngine
) -> None:
    """A start for use makes and marks its tier directories; a stop takes those holding no
    block away again, or every command run on a home would leave one in /dev/shm."""
    roots = [p for tier in default_tiers(str(home)) for p in tier.paths]
    try:
        engine = open_engine()
        assert all(os.path.isfile(os.path.join(p, TIER_MARK)) for p in roots)
        engine.ns.mkdir("/d")
        engine.close()
        assert not any(os.path.exists(p) for p in roots)
    finally:
        for p in roots:
            shutil.rmtree(p, ignore_errors=True)


def cleared_once(open_engine: OpenEngine, tmp_path: Path, top: Path) -> CheckedEngine:
    """An engine of the test's home over a store of files /a and /b (16 bytes each), /a read
    and its block stored in tier directory ``top``, then `shoal cache clear` run on it while it
    runs: ``top`` is gone, /b not read yet."""
    store = LocalStore(tmp_path / "ufs")
    store.put("a", b"x" * 16)
    store.put("b", b"y" * 16)
    engine = open_engine()
    engine.mounts.mount("/", store.uri)
    assert engine.cache is not None
    engine.fs.read("/a", 0, 16)
    engine.cache.drain()
    assert any(p.suffix == ".blk" for p in top.rglob("*"))
    clear_tiers(engine.cache)
    assert not top.exists()
    return engine


def test_a_tier_directory_made_again_after_a_clear_is_checked_again(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """`shoal cache clear` on a running engine removes the tier directories it empties; the
    next block stored makes them again. One another user made meanwhile is refused then too,
    as at a start, and nothing is written into it."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a directory to another user")
    mem = tmp_path / "mem"
    write_config(
        home, block_size=16, tiers=[("MEM", mem, 1 << 20), ("SSD", tmp_path / "ssd", 1 << 20)]
    )
    engine = cleared_once(open_engine, tmp_path, mem)
    assert engine.cache is not None
    mem.mkdir(mode=0o700)  # another user's, made before the next block is stored
    os.chown(mem, NOBODY, NOBODY)
    assert engine.fs.read("/b", 0, 16) == b"y" * 16  # served all the same, from its store
    engine.cache.drain()
    assert list(mem.iterdir()) == []
    assert not any(
        info.tier == "MEM" for blocks in engine.state.blocks.values() for info in blocks.values()
    )


def test_a_tier_directory_inside_the_home_is_not_refused_for_its_owner(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """Only a tier directory another user could make first (outside the home) must be this
    user's: root serving a home another user set up stores its blocks in that home's cache
    directory as before."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a directory to another user")
    write_config(home, block_size=16, tiers=[("SSD", home / "cache", 1 << 20)])
    store = LocalStore(tmp_path / "ufs")
    store.put("a", b"x" * 16)
    engine = open_engine()
    engine.mounts.mount("/", store.uri)
    assert engine.cache is not None
    os.chown(home / "cache", NOBODY, NOBODY)
    engine.fs.read("/a", 0, 16)
    engine.cache.drain()
    assert any(p.suffix == ".blk" for p in (home / "cache").rglob("*"))


def test_fsck_repair_leaves_a_tier_directory_holding_other_files_as_it_is(
    home: Path, tmp_path: Path
) -> None:
    """`shoal fsck --repair` reconciles the tiers without a start's claim before it: it removed
    such a directory's files as orphans. The claim is reconciliation's own now."""
    theirs = tmp_path / "data"
    theirs.mkdir()
    (theirs / "README").write_bytes(b"keep me")
    write_config(home, tiers=[("SSD", theirs, 1 << 20)])
    refused = shoal("fsck", "--repair", home=home, expect=None)
    assert refused.returncode != 0 and str(theirs) in refused.stderr, refused.stderr
    assert (theirs / "README").read_bytes() == b"keep me"


def test_fsck_names_a_tier_directory_it_would_not_use_and_repair_changes_nothing_in_it(
    home: Path, tmp_path: Path
) -> None:
    """fsck had no check of the mark: a tier directory holding someone's files showed nothing
    (`shoal fsck` clean), and `fsck --repair` tightened their modes before refusing."""
    theirs = planted(tmp_path)
    before, before_modes = contents(theirs), modes(theirs)
    write_config(home, tiers=[("SSD", theirs, 1 << 20)])
    out = shoal("fsck", home=home, expect=1).stdout
    failed = [line for line in out.splitlines() if "FAIL  tier-marks" in line]
    assert failed, out
    assert str(theirs) in out and "README" in out, out
    refused = shoal("fsck", "--repair", home=home, expect=None)
    assert refused.returncode != 0 and "README" in refused.stderr, refused.stderr
    assert contents(theirs) == before and modes(theirs) == before_modes


def test_fsck_names_an_unmarked_tier_directory_and_repair_marks_it(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A tier directory from before the mark (only Shoal's files in it): fsck names it, and
    --repair marks it, as the next start would."""
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16, tiers=[("SSD", ssd, 1 << 20)])
    cache_only_file(open_engine, LocalStore(tmp_path / "ufs"))
    assert "ok    tier-marks" in shoal("fsck", home=home).stdout
    (ssd / TIER_MARK).unlink()
    out = shoal("fsck", home=home, expect=1).stdout
    assert "FAIL  tier-marks" in out and "not marked" in out, out
    shoal("fsck", "--repair", home=home)
    assert (ssd / TIER_MARK).exists()
    assert "ok    tier-marks" in shoal("fsck", home=home).stdout


def test_fsck_repair_leaves_no_tier_directory_it_made(home: Path, tmp_path: Path) -> None:
    """fsck --repair claims the tier directories (making the missing ones) before it changes
    anything; those holding no block go again when it ends, as at a daemon's stop."""
    mem, ssd = tmp_path / "mem", tmp_path / "ssd"
    write_config(home, tiers=[("MEM", mem, 1 << 20), ("SSD", ssd, 1 << 20)])
    shoal("fsck", "--repair", home=home)
    assert not mem.exists() and not ssd.exists()


def test_a_tier_directory_another_home_marked_is_refused_and_its_blocks_kept(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    """Two homes configured onto one tier directory: the second's start removed the first's
    blocks as orphans of its own block map, a file only the cache held (not yet uploaded)
    with them."""
    shared = tmp_path / "ssd"
    first, second = tmp_path / "first", tmp_path / "second"
    for home in (first, second):
        home.mkdir()
        write_config(home, block_size=16, tiers=[("SSD", shared, 1 << 20)])
    store = LocalStore(tmp_path / "ufs")
    cache_only_file(open_engine, store, first)
    before = contents(shared)
    assert any(name.endswith(".blk") for name in before)
    with pytest.raises(InvalidArgument) as refused:
        open_engine(second)
    said = str(refused.value)
    assert str(shared) in said and str(first) in said and "another Shoal home" in said
    assert contents(shared) == before
    out = shoal("fsck", home=second, expect=1).stdout
    assert "FAIL  tier-marks" in out and "another Shoal home" in out, out
    engine = open_engine(first)  # still the first home's, whole
    assert engine.fs.read("/only-cached", 0, 40) == b"q" * 40


def test_a_mark_that_names_no_home_becomes_the_starting_homes(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """Marks from before they named their home are taken by the next start, not refused."""
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16, tiers=[("SSD", ssd, 1 << 20)])
    cache_only_file(open_engine, LocalStore(tmp_path / "ufs"))
    (ssd / TIER_MARK).write_bytes(b"A Shoal cache tier\n")  # as the first marks were
    engine = open_engine()
    assert str(home) in (ssd / TIER_MARK).read_text()
    assert engine.fs.read("/only-cached", 0, 40) == b"q" * 40


@pytest.mark.parametrize("layout", ["twice", "linked", "nested"])
def test_tier_directories_that_overlap_are_refused_before_anything_is_removed(
    home: Path, tmp_path: Path, open_engine: OpenEngine, layout: str
) -> None:
    """Two tiers on one directory (listed twice, or a link to it), or one inside the other:
    each tier's reconciliation removed the other's blocks as its own orphans at every start,
    a file only the cache held among them."""
    store = LocalStore(tmp_path / "ufs")
    write_config(home, block_size=16, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    cache_only_file(open_engine, store)
    before = contents(tmp_path / "ssd")
    other = {
        "twice": tmp_path / "ssd" / ".." / "ssd",  # the same directory, spelled otherwise
        "linked": tmp_path / "link",
        "nested": tmp_path / "ssd" / "hdd",
    }
    if layout == "linked":
        (tmp_path / "link").symlink_to(tmp_path / "ssd")
    write_config(
        home,
        block_size=16,
        tiers=[("SSD", tmp_path / "ssd", 1 << 20), ("HDD", other[layout], 1 << 20)],
    )
    with pytest.raises(InvalidArgument) as refused:
        open_engine()
    said = str(refused.value)
    assert "SSD" in said and "HDD" in said and str(tmp_path / "ssd") in said
    assert contents(tmp_path / "ssd") == before
    # The refusal let the home go (it was refused before the lock was given back, once):
    write_config(home, block_size=16, tiers=[("SSD", tmp_path / "ssd", 1 << 20)])
    assert open_engine().fs.read("/only-cached", 0, 40) == b"q" * 40


def test_a_relative_tier_path_is_taken_from_the_home_not_the_working_directory(
    home: Path, tmp_path: Path, open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path was taken from the working directory: a daemon started in one and a
    command run from another used two directories, each dropping the other's blocks."""
    (home / "shoal.toml").write_text(
        'block_size = 16\n[[cache.tiers]]\nname = "SSD"\npaths = ["relcache"]\nquota = 1048576\n'
    )
    store = LocalStore(tmp_path / "ufs")
    first, second = tmp_path / "here", tmp_path / "there"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    cache_only_file(open_engine, store)
    assert any(p.suffix == ".blk" for p in (home / "relcache").rglob("*"))
    monkeypatch.chdir(second)
    engine = open_engine()
    assert engine.fs.read("/only-cached", 0, 40) == b"q" * 40
    assert not (second / "relcache").exists() and not (first / "relcache").exists()


def test_a_home_that_lost_its_id_takes_its_own_tier_directories_back(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A home whose id file went (removed, or unreadable after a crash) made a new id, and its
    own marks named "another home" from then on: every start refused."""
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16, tiers=[("SSD", ssd, 1 << 20)])
    store = LocalStore(tmp_path / "ufs")
    cache_only_file(open_engine, store)
    (home / "home-id").unlink()
    engine = open_engine()
    assert engine.fs.read("/only-cached", 0, 40) == b"q" * 40
    assert (home / "home-id").read_text().strip() in (ssd / TIER_MARK).read_text()


def test_a_directory_shoal_found_empty_is_left_at_a_stop(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A stop removed every tier directory holding no block, one an administrator had made
    (its owner, group, attributes chosen) too: made again by the next start, 0700 and root's."""
    made_by_hand = tmp_path / "nvme"
    made_by_hand.mkdir(mode=0o700)
    os.setxattr(made_by_hand, "user.chosen", b"by hand")
    write_config(home, tiers=[("SSD", made_by_hand, 1 << 20)])
    engine = open_engine()
    engine.ns.mkdir("/d")
    engine.close()
    assert made_by_hand.is_dir() and os.getxattr(made_by_hand, "user.chosen") == b"by hand"
    assert (made_by_hand / TIER_MARK).exists()  # still this home's
    open_engine().close()
    said = shoal("cache", "clear", home=home).stdout  # says why it stays
    assert f"kept, empty (Shoal did not make it): {made_by_hand}" in said, said
    assert made_by_hand.is_dir()


def test_a_tier_directory_made_again_during_a_run_is_marked(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """`shoal cache clear` removes the tier directories it empties; the next block made them
    again without a mark, which fsck reported, and which another home could then take."""
    ssd = tmp_path / "ssd"
    write_config(home, block_size=16, tiers=[("SSD", ssd, 1 << 20)])
    engine = cleared_once(open_engine, tmp_path, ssd)
    assert engine.cache is not None
    engine.fs.read("/b", 0, 16)
    engine.cache.drain()
    assert any(p.suffix == ".blk" for p in ssd.rglob("*"))
    assert str(home) in (ssd / TIER_MARK).read_text()


def test_a_tier_path_that_is_no_directory_or_whose_mark_is_not_a_file_is_named(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    afile = home / "afile"  # inside the home: a start does not make it first (claim_dirs)
    afile.write_bytes(b"mine")
    write_config(home, tiers=[("SSD", afile, 1 << 20)])
    with pytest.raises(InvalidArgument, match="is not a directory"):
        open_engine()
    assert afile.read_bytes() == b"mine"
    odd = tmp_path / "odd"
    (odd / TIER_MARK).mkdir(parents=True)
    write_config(home, tiers=[("SSD", odd, 1 << 20)])
    with pytest.raises(InvalidArgument, match="cannot be read"):
        open_engine()


def test_a_refused_start_leaves_a_directory_another_home_took_meanwhile(
    home: Path, tmp_path: Path, open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two homes starting at once on one new directory: the other linked its mark first, this
    one is refused. Its cleanup removed the directory it had found missing, the other home's
    mark with it, so that home's blocks were later taken for orphans."""
    shared = tmp_path / "ssd"
    write_config(home, tiers=[("SSD", shared, 1 << 20)])

    def raced(roots: list[str], owner: TierOwner, made: object = ()) -> None:
        shared.mkdir(mode=0o700, exist_ok=True)  # (claim_dirs made it: outside the home)
        (shared / TIER_MARK).write_bytes(b"A Shoal cache tier\nhome 0123456789abcdef /elsewhere\n")
        raise InvalidArgument(f"cache tier directory {shared} is another Shoal home's")

    monkeypatch.setattr(engine_module, "claim_tier_dirs", raced)
    with pytest.raises(InvalidArgument):
        open_engine()
    assert "0123456789abcdef" in (shared / TIER_MARK).read_text()


def test_a_new_home_at_another_homes_path_is_refused_its_directories(
    tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A mark naming this home's path under another id was taken as this home's own (a lost
    id file). But two homes can have one path: another container's `--home`, another host's
    on a shared tier directory, a home removed and made anew. Only a home whose journal
    outlived its id takes such a mark."""
    home, shared = tmp_path / "another", tmp_path / "ssd"
    home.mkdir()
    write_config(home, block_size=16, tiers=[("SSD", shared, 1 << 20)])
    store = LocalStore(tmp_path / "ufs")
    cache_only_file(open_engine, store, home)
    before = contents(shared)
    shutil.rmtree(home)  # another home at the same path, with the same configuration
    home.mkdir()
    write_config(home, block_size=16, tiers=[("SSD", shared, 1 << 20)])
    with pytest.raises(InvalidArgument, match="another Shoal home"):
        open_engine(home)
    assert contents(shared) == before


def test_a_relative_tier_path_whose_blocks_are_where_it_was_taken_from_is_refused(
    home: Path, tmp_path: Path, open_engine: OpenEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home whose relative tier path was taken from the working directory: taken from the
    home now, its first start dropped every block as missing (some the only copy of a file)."""
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "relcache"
    (old / "7").mkdir(parents=True)
    (old / "7" / "0-0.blk").write_bytes(b"q" * 16)
    (old / TIER_MARK).write_bytes(b"A Shoal cache tier\n")
    (home / "shoal.toml").write_text(
        '[[cache.tiers]]\nname = "SSD"\npaths = ["relcache"]\nquota = 1048576\n'
    )
    with pytest.raises(InvalidArgument) as refused:
        open_engine()
    said = str(refused.value)
    assert str(old) in said and str(home / "relcache") in said
    assert (old / "7" / "0-0.blk").read_bytes() == b"q" * 16


def test_a_temporary_file_a_kill_left_does_not_make_a_found_directory_shoals(
    home: Path, tmp_path: Path, open_engine: OpenEngine
) -> None:
    """A kill between writing a new mark's temporary file and linking it left the file: the
    next start took the administrator's directory for one Shoal had made, and a stop removed
    it."""
    made_by_hand = tmp_path / "nvme"
    made_by_hand.mkdir(mode=0o700)
    (made_by_hand / ".tmp-mark-0123").write_bytes(b"A Shoal cache tier\n")
    write_config(home, tiers=[("SSD", made_by_hand, 1 << 20)])
    open_engine().close()
    assert made_by_hand.is_dir() and "found" in (made_by_hand / TIER_MARK).read_text()
