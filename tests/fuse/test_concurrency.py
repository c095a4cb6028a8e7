"""16 threads reading random ranges of several large files through the mount while another
thread writes new files: every byte is checked, and nothing fails."""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path

from tests.fuse.mounting import Mounted


def _content(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_readers_and_a_writer(local_mount: Mounted) -> None:
    ufs: Path = local_mount.store.root  # type: ignore[attr-defined]
    sizes = {"a.bin": 9 * 1024 * 1024 + 17, "b.bin": 6 * 1024 * 1024, "c.bin": 3_333_333}
    for name, size in sizes.items():  # straight into the UFS: the mount reads them cold
        (ufs / name).write_bytes(_content(name, size))
    mnt = local_mount.path
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0]

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(150):
                name = rng.choice(sorted(sizes))
                size = sizes[name]
                off = rng.randrange(size)
                n = rng.randrange(1, 2 * 1024 * 1024)
                with open(mnt / name, "rb") as f:
                    f.seek(off)
                    got = f.read(n)
                assert got == _content(name, size)[off : off + n], (name, off, n)
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    written: dict[str, bytes] = {}

    def writer() -> None:
        rng = random.Random(99)
        try:
            (mnt / "new").mkdir()
            i = 0
            while not done.is_set():
                data = rng.randbytes(rng.randrange(1, 700_000))
                name = f"new/w{i:04d}"
                (mnt / name).write_bytes(data)
                written[name] = data
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
    w = threading.Thread(target=writer)
    w.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    done.set()
    w.join()
    assert not errors, errors[:3]
    assert reads[0] == 16 * 150 and len(written) > 5
    for name, data in written.items():
        assert (mnt / name).read_bytes() == data
    local_mount.umount()
    for name, data in written.items():
        assert (ufs / name).read_bytes() == data
