#!/usr/bin/env bash
# Shoal's main job on the embedded default (local journal, no cloud account), until the FUSE
# mount lands: build a training-data namespace through the CLI, checkpoint it, change it, kill a
# writer with SIGKILL in the middle of its work, and show that a fresh process recovers every
# acknowledged change from checkpoint + log, with the same state digest as a replay from zero.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
export SHOAL_HOME="${SHOAL_HOME:-$(mktemp -d /tmp/shoal-demo.XXXXXX)/home}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a namespace for an ImageNet-like dataset in $SHOAL_HOME"
shoal fs mkdir -p /datasets/imagenet/train/n01440764 /datasets/imagenet/train/n01443537 \
  /datasets/imagenet/val /checkpoints
shoal fs touch /datasets/imagenet/train/n01440764/img_{0001..0050}.JPEG
shoal fs touch /datasets/imagenet/train/n01443537/img_{0001..0050}.JPEG
shoal fs ln -s /datasets/imagenet/train /datasets/train
shoal fs ls /datasets/imagenet/train

step "checkpoint, then more changes that only the log holds"
shoal journal checkpoint
shoal fs mv /datasets/imagenet/train/n01443537 /datasets/imagenet/val/n01443537
shoal fs rm /datasets/imagenet/train/n01440764/img_0050.JPEG
shoal fs touch /checkpoints/epoch-1.pt

step "a writer killed with SIGKILL mid-work (every line it printed was acknowledged)"
acked=$(mktemp)
python - "$acked" <<'PY' &
import sys, threading
from engine.engine import Engine
engine = Engine.open_home(None)
lock = threading.Lock()
out = open(sys.argv[1], "w", buffering=1)
def work(t: int) -> None:
    engine.ns.mkdir(f"/scratch/t{t}", parents=True)
    n = 0
    while True:
        path = f"/scratch/t{t}/f{n:06d}"
        engine.ns.create(path)  # returns once the entry is fsynced
        with lock:
            out.write(path + "\n")
        n += 1
for t in range(8):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
PY
writer=$!
sleep 2
kill -9 "$writer"; wait "$writer" 2>/dev/null || true
echo "killed the writer after $(wc -l < "$acked") acknowledged creates"

step "a fresh process recovers: checkpoint + log tail (any torn tail is set aside and cut)"
python - "$acked" <<'PY'
import sys
from engine.engine import Engine
from engine.errors import NotFound
acked = open(sys.argv[1]).read().split()
engine = Engine.open_home(None)
try:
    report = engine.journal.report
    lost = []
    for path in acked:
        try:
            engine.ns.lookup(path)
        except NotFound:
            lost.append(path)
    print(f"recovered from {report.checkpoint.path if report.checkpoint else 'no checkpoint'}"
          f" + {report.replayed} log entries"
          + (f"; torn tail cut at {report.repaired_tail.path}:{report.repaired_tail.offset}"
             if report.repaired_tail else ""))
    print(f"{len(acked)} acknowledged creates, {len(lost)} lost")
finally:
    engine.close(checkpoint=False)  # keep the log from entry 1 for the full replay below
sys.exit(1 if lost else 0)
PY
shoal journal replay --verify
shoal journal verify
shoal fsck
shoal fs ls -R /datasets | head -n 16

step "the log, as text (last entries)"
shoal journal dump --format text | tail -n 5

step "a local directory mounted as a UFS: a sample dataset read cold, then warm from the cache"
ufs="$(dirname "$SHOAL_HOME")/ufs"
python - "$ufs" <<'PY'
import os, sys
root = sys.argv[1]
for c in range(4):
    os.makedirs(f"{root}/train/class{c}", exist_ok=True)
    for i in range(50):
        with open(f"{root}/train/class{c}/img{i:03d}.jpg", "wb") as f:
            f.write(os.urandom(110_000))
print(f"{root}: 200 files of 110 KB")
PY
shoal fs mkdir /mnt-data
shoal fs mount /mnt-data "$ufs"
shoal fs mounts
python - <<'PY'
import time
from engine.engine import Engine
engine = Engine.open_home(None)
try:
    files = [(f"/mnt-data/train/{c.name}/{f.name}", f.size)
             for c in engine.sync.listdir("/mnt-data/train")
             for f in engine.sync.listdir(f"/mnt-data/train/{c.name}")]
    for label in ("cold (from the UFS, cached on the way)", "warm (cache hits)"):
        start = time.perf_counter()
        total = sum(len(engine.fs.read(path, 0, size)) for path, size in files)
        engine.cache.drain()
        seconds = time.perf_counter() - start
        print(f"{label:<40} {len(files) / seconds:8,.0f} files/s  {total / seconds / 2**20:7,.1f} MiB/s")
finally:
    engine.close()
PY
shoal report
shoal fsck
echo
echo "The demo's home, UFS and SSD tier are in $(dirname "$SHOAL_HOME"); its MEM tier is on"
echo "/dev/shm (shoal-*). Remove both when done."
