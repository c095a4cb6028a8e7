"""Images/s of a PyTorch training input pipeline over Shoal, against a local copy in one run.

`torchvision.datasets.ImageFolder` + `DataLoader` (worker processes, JPEG decode,
RandomResizedCrop(224), ToTensor, batches of 64), one full epoch per figure, over an ImageNet-like
dataset of JPEGs (~100 KB each, made once with PIL into --data-dir):

- local: the dataset's own directory, page cache warm (the baseline every ratio is against);
- mount over a local UFS: cold (fresh home), warm (the next epoch), remount (a new daemon on the
  same home: the tiers hold the blocks, the kernel's page cache of the mount does not);
- mount over S3 (moto's server behind a proxy adding --latency-ms to every request): cold, warm;
- the fsspec client (`fsspec.filesystem("shoal", mountpoint=...)`), when it is installed;
- a larger dataset than a small MEM tier, read back from the SSD tier after a remount, with the
  tier files' pages dropped (posix_fadvise), and `shoal report` showing which tier holds what.

Each epoch's clock covers listing the dataset (ImageFolder's scan), starting the workers and
every batch. Each figure's ratio is against the mean of two epochs over the local copy, just
before and just after it: on a shared machine the load moves during a run.

torch, torchvision and Pillow are not Shoal's dependencies: `pip install '.[examples]'`
(docs/dataloader.md). `--smoke` reads every file whole and decodes it with PIL in this process
instead: no torch needed (the tests use it).

    PYTHONPATH=. .venv/bin/python scripts/dataloader_bench.py [--json] [--skip-s3] [--skip-ssd]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, HEIGHT, QUALITY, NOISE = 500, 375, 91, 0.2  # ~100 KB per JPEG, as ImageNet's mean
_KEEP: list[Any] = []  # the torch library fragment the torchvision fallback defines


# --- the dataset -----------------------------------------------------------------------------


def build_dataset(root: str, classes: int, per_class: int) -> int:
    """``classes`` directories of ``per_class`` JPEGs under ``root``, made once: a second call
    with the same sizes finds them. Returns the number of images."""
    from PIL import Image

    stamp = os.path.join(root, ".complete")
    wanted = f"{classes}x{per_class} {WIDTH}x{HEIGHT} q{QUALITY}"
    with contextlib.suppress(OSError), open(stamp) as f:
        if f.read() == wanted:
            return classes * per_class
    shutil.rmtree(root, ignore_errors=True)
    for c in range(classes):
        folder = os.path.join(root, f"class{c:04d}")
        os.makedirs(folder)
        for i in range(per_class):
            # Smooth colour fields with noise on top: real photos' size and decode cost, not
            # a flat image that compresses to nothing.
            base = Image.frombytes("RGB", (40, 30), os.urandom(40 * 30 * 3))
            base = base.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
            noise = Image.frombytes("RGB", (WIDTH, HEIGHT), os.urandom(WIDTH * HEIGHT * 3))
            img = Image.blend(base, noise, NOISE)
            img.save(os.path.join(folder, f"img{i:05d}.JPEG"), "JPEG", quality=QUALITY)
    with open(stamp, "w") as f:
        f.write(wanted)
    return classes * per_class


def dataset_bytes(root: str) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(root)
        for f in fs
        if f != ".complete"
    )


# --- the readers -----------------------------------------------------------------------------


def import_torchvision() -> Any:
    """torchvision, also where its wheel was built against another torch than the one installed
    (PyPI's torchvision with a CPU-only torch): its compiled detection ops then do not load,
    and its import insists on two of their schemas. ImageFolder and the transforms need none of
    them, so the schemas are defined and the import tried again."""
    try:
        import torchvision
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        import torch

        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)
        import torchvision
    return torchvision


class FsspecImageFolder:
    """ImageFolder's layout (one directory per class) read through an fsspec file system: the
    listing from ``fs.find``, each image through ``fs.open``. The file system is made in each
    process that reads (DataLoader workers included), never carried across a fork."""

    def __init__(self, protocol: str, options: dict[str, Any], root: str, transform: Any) -> None:
        self.protocol, self.options, self.transform = protocol, options, transform
        self._fs: Any = None
        self._pid = -1
        paths = sorted(p for p in self.fs().find(root) if p.endswith(".JPEG"))
        classes = sorted({os.path.basename(os.path.dirname(p)) for p in paths})
        index = {c: i for i, c in enumerate(classes)}
        self.samples = [(p, index[os.path.basename(os.path.dirname(p))]) for p in paths]

    def fs(self) -> Any:
        import fsspec

        if self._fs is None or self._pid != os.getpid():
            self._fs, self._pid = fsspec.filesystem(self.protocol, **self.options), os.getpid()
        return self._fs

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": -1}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        with self.fs().open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), label


def fsspec_missing(protocol: str = "shoal") -> str | None:
    """Why the fsspec client cannot be measured, or None when it can."""
    try:
        import fsspec

        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as e:
        return f"no fsspec implementation {protocol!r} installed ({e})"
    return None


def epoch(make_dataset: Callable[[Any], Any], workers: int, batch: int) -> dict[str, float]:
    """One full epoch: (images, seconds, images/s)."""
    from torch.utils.data import DataLoader

    # More workers than cores is the point here: they share the cores with Shoal's daemon.
    warnings.filterwarnings("ignore", "This DataLoader will create", UserWarning)
    transforms = import_torchvision().transforms
    transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()])
    start = time.perf_counter()
    loader = DataLoader(
        make_dataset(transform), batch_size=batch, shuffle=True, num_workers=workers
    )
    images = sum(len(labels) for _, labels in loader)
    seconds = time.perf_counter() - start
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds}


def image_folder(root: str) -> Callable[[Any], Any]:
    return lambda transform: import_torchvision().datasets.ImageFolder(root, transform=transform)


def smoke_epoch(root: str) -> dict[str, float]:
    """Every image read whole and decoded in this process: the pipeline without torch."""
    from PIL import Image

    start = time.perf_counter()
    images = 0
    for d, _, files in sorted(os.walk(root)):
        for name in sorted(f for f in files if f.endswith(".JPEG")):
            with Image.open(os.path.join(d, name)) as img:
                img.convert("RGB")
            images += 1
    seconds = time.perf_counter() - start
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds}


# --- Shoal, through its command line -----------------------------------------------------------


def shoal(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"shoal {' '.join(args[:1])} failed: {done.stderr.strip()}")
    return done.stdout


def write_tiers(home: str, mem_dir: str, mem_quota: str, ssd_quota: str) -> None:
    """The home's tiers: MEM in ``mem_dir`` (made by this script, so it can remove it), then
    SSD in the home."""
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "shoal.toml"), "w") as f:
        f.write(
            f'[[cache.tiers]]\nname = "MEM"\npaths = ["{mem_dir}"]\nquota = "{mem_quota}"\n'
            f"sync = false\n\n"
            f'[[cache.tiers]]\nname = "SSD"\npaths = ["{home}/cache"]\nquota = "{ssd_quota}"\n'
        )


@contextlib.contextmanager
def mounted(home: str, ufs: str, mnt: str, options: list[str]) -> Iterator[str]:
    args = ["mount", "--home", home, ufs, mnt, "-o", "ro"]
    for option in options:
        args += ["-o", option]
    shoal(*args)
    try:
        yield mnt
    finally:
        shoal("umount", mnt)


def report(home: str) -> dict[str, Any]:
    """`shoal report --json` of a mounted home (the daemon answers, with its counters)."""
    return dict(json.loads(shoal("report", "--home", home, "--json")))


def drop_pages(directory: str) -> None:
    """Drops the page cache of the files under ``directory`` only (not the machine's): the next
    read of a tier file comes from its disk."""
    for d, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(d, name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def disk_reads(home: str) -> int:
    """Bytes the home's daemon has read from block devices (its /proc io counter): what came
    from a disk rather than from the page cache."""
    from fuse.mountinfo import daemon_pid

    with open(f"/proc/{daemon_pid(home)}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("read_bytes:"))


def warm_local(root: str) -> None:
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                f.read()


# --- the cases --------------------------------------------------------------------------------

Reader = Callable[[str], dict[str, float]]


class Bench:
    """One run: where it works, how an epoch is read, and the figures so far. Every figure is
    compared with epochs over the local copy measured just before and just after it (their
    mean), so a machine whose load changes during the run (it is shared) moves both sides of
    each ratio alike."""

    def __init__(self, args: argparse.Namespace, scratch: str, mem: str, read: Reader) -> None:
        self.args, self.scratch, self.mem, self.read = args, scratch, mem, read
        self.out: dict[str, Any] = {"mode": "smoke" if args.smoke else "torch", "ratios": {}}
        self.baseline = 0.0

    def measure(
        self, label: str, case: Callable[[], dict[str, float]], local: str, *, before: bool = True
    ) -> None:
        """``case``'s epoch between two of ``local`` (``before=False``: the caller measured
        the first one, into ``self.baseline``)."""
        if before:
            self.baseline = self.read(local)["images_per_s"]
        figures = case()
        baseline = (self.baseline + self.read(local)["images_per_s"]) / 2
        self.out[label] = {**figures, "local_images_per_s": baseline, "load": os.getloadavg()[0]}
        self.out["ratios"][label] = figures["images_per_s"] / baseline

    def reading(self, root: str) -> Callable[[], dict[str, float]]:
        return lambda: self.read(root)

    def home(self, name: str, mem_quota: str) -> tuple[str, str]:
        """A fresh home (its own MEM directory) and mountpoint for one case."""
        home, mnt = (os.path.join(self.scratch, f"{d}-{name}") for d in ("home", "mnt"))
        os.makedirs(mnt)
        write_tiers(home, os.path.join(self.mem, name), mem_quota, "4GiB")
        return home, mnt


def local_ufs_cases(bench: Bench, data: str) -> None:
    """A mount of the dataset's own directory: cold, warm, the fsspec client, after a remount."""
    home, mnt = bench.home("local", "1GiB")
    with mounted(home, data, mnt, []):
        bench.measure("mount_cold", bench.reading(mnt), data)
        bench.measure("mount_warm", bench.reading(mnt), data)
        fsspec_cases(bench, mnt, data)
    with mounted(home, data, mnt, []):
        bench.measure("mount_remount", bench.reading(mnt), data)
        bench.out["mount_remount_report"] = report(home)


def fsspec_cases(bench: Bench, mnt: str, data: str) -> None:
    args = bench.args
    missing = fsspec_missing() if not args.smoke else "measured with torch only"
    if missing:
        print(f"skipping the fsspec client: {missing}", file=sys.stderr)
        bench.out["fsspec_skipped"] = missing
        return

    def make(transform: Any) -> FsspecImageFolder:
        return FsspecImageFolder("shoal", {"mountpoint": mnt}, mnt, transform)

    for label in ("fsspec_first", "fsspec_warm"):
        bench.measure(label, lambda: epoch(make, args.workers, args.batch), data)


def s3_cases(bench: Bench, data: str) -> None:
    """The dataset in moto's S3, every request delayed by the proxy: cold, then warm."""
    from cli.bench.faultproxy import Fault, FaultProxy
    from cli.bench.s3server import ACCESS_KEY, SECRET_KEY, s3_client, start_s3_server

    home, mnt = bench.home("s3", "1GiB")
    server = start_s3_server()
    proxy = FaultProxy(server.endpoint).start()
    try:
        upload(s3_client(server.endpoint), data)
        proxy.add(Fault("delay", -1, seconds=bench.args.latency_ms / 1000))
        options = [
            f"endpoint={proxy.endpoint}", "path_style=true", "region=us-east-1",
            f"access_key={ACCESS_KEY}", f"secret_key={SECRET_KEY}",
        ]  # fmt: skip
        with mounted(home, "s3://bench/ds", mnt, options):
            bench.measure("s3_cold", bench.reading(mnt), data)
            bench.measure("s3_warm", bench.reading(mnt), data)
    finally:
        proxy.stop()
        server.stop()


def upload(client: Any, data: str) -> None:
    client.create_bucket(Bucket="bench")
    paths = [os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs if f.endswith(".JPEG")]

    def put(path: str) -> None:
        with open(path, "rb") as f:
            client.put_object(Bucket="bench", Key="ds/" + os.path.relpath(path, data), Body=f)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, paths))


def ssd_cases(bench: Bench, big: str) -> None:
    """A dataset larger than the MEM tier: the first epoch fills MEM and demotes to SSD; after a
    remount, with the SSD tier's pages dropped, the epoch is served by the tiers, mostly SSD."""
    home, mnt = bench.home("ssd", bench.args.mem_quota)
    warm_local(big)
    with mounted(home, big, mnt, []):
        bench.measure("big_cold", bench.reading(mnt), big)
    with mounted(home, big, mnt, []):
        bench.baseline = bench.read(big)["images_per_s"]  # before the tier files' pages go
        drop_pages(os.path.join(home, "cache"))

        def from_tiers() -> dict[str, float]:
            before = disk_reads(home)
            figures = bench.read(mnt)
            return {**figures, "daemon_disk_read_bytes": disk_reads(home) - before}

        bench.measure("big_tiers", from_tiers, big, before=False)
        bench.out["big_tiers_report"] = report(home)


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = tempfile.mkdtemp(prefix="shoal-dataloader-", dir=args.workdir)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    mem = tempfile.mkdtemp(prefix="shoal-dataloader-", dir=shm)
    data_root = args.data_dir or os.path.join(scratch, "data")
    data = os.path.join(data_root, f"imagefolder-{args.classes}x{args.per_class}")
    read: Reader = smoke_epoch
    if not args.smoke:
        read = lambda root: epoch(image_folder(root), args.workers, args.batch)  # noqa: E731
    bench = Bench(args, scratch, mem, read)
    out = bench.out
    out.update(workers=args.workers, batch=args.batch, latency_ms=args.latency_ms)
    out.update(cpus=os.cpu_count(), load_at_start=os.getloadavg()[0])
    try:
        images = build_dataset(data, args.classes, args.per_class)
        out["dataset"] = {"images": images, "bytes": dataset_bytes(data), "classes": args.classes}
        warm_local(data)
        out["local"] = read(data)
        if not args.skip_local:
            local_ufs_cases(bench, data)
        if not args.skip_s3:
            s3_cases(bench, data)
        if not args.skip_ssd:
            big = os.path.join(data_root, f"imagefolder-{args.big_classes}x{args.per_class}")
            images = build_dataset(big, args.big_classes, args.per_class)
            out["big_dataset"] = {"images": images, "bytes": dataset_bytes(big)}
            out["mem_quota"] = args.mem_quota
            ssd_cases(bench, big)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(mem, ignore_errors=True)
    return out


LABELS = [
    ("local copy (page cache)", "local"),
    ("mount, local UFS, cold", "mount_cold"),
    ("mount, local UFS, warm", "mount_warm"),
    ("mount, local UFS, after remount", "mount_remount"),
    ("mount, S3, cold", "s3_cold"),
    ("mount, S3, warm", "s3_warm"),
    ("fsspec client, first pass", "fsspec_first"),
    ("fsspec client, warm", "fsspec_warm"),
    ("larger than MEM: mount, cold", "big_cold"),
    ("larger than MEM: from the tiers", "big_tiers"),
]


def format_table(out: dict[str, Any]) -> str:
    lines = [f"{'case':<34} {'images':>6} {'seconds':>8} {'images/s':>9} {'local':>6} {'ratio':>6}"]
    for label, key in LABELS:
        if key in out:
            f, ratio = out[key], out["ratios"].get(key)
            local = f.get("local_images_per_s")
            lines.append(
                f"{label:<34} {f['images']:>6} {f['seconds']:>8.2f} {f['images_per_s']:>9.0f}"
                + (f" {local:>6.0f} {ratio:>5.2f}x" if local else "")
            )
    lines.append("(local: images/s of the local copy, mean of the epochs just before and after it)")
    if "fsspec_skipped" in out:
        lines.append(f"fsspec client: skipped ({out['fsspec_skipped']})")
    if "big_tiers_report" in out:
        rep = out["big_tiers_report"]
        for tier in rep["tiers"]:
            lines.append(
                f"  tier {tier['name']}: {tier['used_bytes'] / 2**20:.0f} MiB of"
                f" {tier['capacity_bytes'] / 2**20:.0f} MiB, {tier['blocks']} blocks,"
                f" {tier['hits']} hits"
            )
        lines.append(
            f"  hits {rep['cache_hits']}  misses {rep['cache_misses']}"
            f"  UFS bytes read {rep['ufs_bytes_read']}"
            f"  daemon's disk reads {out['big_tiers']['daemon_disk_read_bytes'] / 2**20:.0f} MiB"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="ImageFolder + DataLoader images/s over Shoal against a local copy"
    )
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--big-classes", type=int, default=40, help="the dataset larger than MEM")
    p.add_argument("--mem-quota", default="128MiB", help="the MEM tier of the larger case")
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--latency-ms", type=float, default=20.0, help="added to every S3 request")
    p.add_argument("--data-dir", help="where the datasets are made and kept between runs")
    p.add_argument("--workdir", help="where homes and mountpoints go (default: $TMPDIR)")
    p.add_argument("--skip-local", action="store_true", help="no mount of the local copy")
    p.add_argument("--skip-s3", action="store_true")
    p.add_argument("--skip-ssd", action="store_true")
    p.add_argument("--smoke", action="store_true", help="PIL decode in this process, no torch")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = run(args)
    print(json.dumps(out, indent=2) if args.json else format_table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
