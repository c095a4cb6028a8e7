#!/usr/bin/env bash
# Shoal's main job on the embedded default: a local directory (the UFS) served through a FUSE
# mount, with journal and cache in a local home. It generates an ImageNet-like sample dataset,
# mounts it, reads it twice through the mount with 4 parallel readers (cold: from the UFS,
# cached on the way; warm: from the cache), shows `shoal report` through the daemon, writes
# through the mount, unmounts, and checks the home with `shoal fsck`.
#
# Everything it makes is in one directory, ${TMPDIR:-/tmp}/shoal-demo.XXXXXX (the dataset, the
# home and its SSD tier), plus the MEM tier on /dev/shm while mounted. `bash scripts/demo.sh
# --clean` removes all of it, for every demo run, even one interrupted mid-way: it unmounts
# what is still mounted, clears the home's cache tiers (shoal cache clear: /dev/shm too), and
# removes the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

clean() {  # one demo's directory: its mount, its tiers (MEM on /dev/shm), then its files
  local dir=$1
  # From the mount table: `mountpoint` says no to a mount whose daemon was killed.
  if awk -v p="$dir/mnt" '$5 == p {up = 1} END {exit !up}' /proc/self/mountinfo; then
    shoal umount "$dir/mnt"
  fi
  if [ -d "$dir/home/journal" ] && ! SHOAL_HOME="$dir/home" shoal cache clear >/dev/null; then
    echo "demo.sh: the cache tiers of $dir/home could not be cleared (above); removing the rest" >&2
  fi
  rm -rf --one-file-system "$dir"
  echo "removed $dir"
}
if [ "${1:-}" = --clean ]; then
  command -v shoal >/dev/null || bash scripts/install.sh
  shopt -s nullglob
  for dir in "${TMPDIR:-/tmp}"/shoal-demo.??????; do clean "$dir"; done
  exit 0
fi

bash scripts/install.sh
work="$(mktemp -d "${TMPDIR:-/tmp}/shoal-demo.XXXXXX")"
export SHOAL_HOME="$work/home"
ufs="$work/ufs" mnt="$work/mnt"
mkdir -p "$ufs" "$mnt"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { mountpoint -q "$mnt" 2>/dev/null && shoal umount "$mnt" || true; }
trap cleanup EXIT

step "a sample dataset in $ufs: 8 classes of 250 images (110 KB) and 2 shards of 64 MiB"
python - "$ufs" <<'PY'
import os, sys
root = sys.argv[1]
for c in range(8):
    os.makedirs(f"{root}/train/n{c:08d}", exist_ok=True)
    for i in range(250):
        with open(f"{root}/train/n{c:08d}/img_{i:04d}.JPEG", "wb") as f:
            f.write(os.urandom(110_000))
os.makedirs(f"{root}/shards", exist_ok=True)
for s in range(2):
    with open(f"{root}/shards/shard-{s:04d}.tar", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
PY

step "shoal mount $ufs $mnt"
shoal mount "$ufs" "$mnt"
mount | grep " $mnt "
ls "$mnt" "$mnt/train" | head -n 8

step "read everything through the mount with 4 reader processes: cold, then warm"
python - "$mnt" <<'PY'
import os, sys, time
from concurrent.futures import ProcessPoolExecutor  # like a DataLoader's worker processes
mnt = sys.argv[1]
small = [os.path.join(d, f) for d, _, fs in os.walk(f"{mnt}/train") for f in fs]
large = [os.path.join(f"{mnt}/shards", f) for f in os.listdir(f"{mnt}/shards")]
def read(path):
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            n += len(chunk)
    return n
pool = ProcessPoolExecutor(4)
list(pool.map(abs, range(4)))  # the workers are up before the clock starts
for label in ("cold", "warm"):
    for kind, files in (("small files", small), ("large files", large)):
        start = time.perf_counter()
        total = sum(pool.map(read, files, chunksize=16 if len(files) > 64 else 1))
        s = time.perf_counter() - start
        print(f"{label}  {kind}: {len(files):5d} files  {len(files) / s:9,.0f} files/s"
              f"  {total / s / 2**20:9,.1f} MiB/s")
PY

step "shoal report (through the daemon's admin channel)"
shoal report

step "write through the mount, then unmount: the UFS has it"
cp -r "$mnt/train/n00000000" "$mnt/train/copy"
echo "epoch 1 done" > "$mnt/checkpoint.txt"
shoal umount "$mnt"
cat "$ufs/checkpoint.txt"
diff -r "$ufs/train/n00000000" "$ufs/train/copy" && echo "copy identical in the UFS"

step "shoal fsck (offline)"
shoal fsck

echo
echo "The demo's home, UFS and SSD tier are in $work (its MEM tier on /dev/shm went with the"
echo "umount). Remove everything the demo made: bash scripts/demo.sh --clean"
