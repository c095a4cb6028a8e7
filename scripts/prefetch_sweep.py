"""Directory prefetch's thread count against direct boto3 GETs (docs/configuration.md).

    PYTHONPATH=. python scripts/prefetch_sweep.py off 4 8 16 32 off:nometa 32:nometa

One moto S3 server behind a 20 ms proxy holding CLASSES (10) class folders of 150 files of
110 KB; per setting a fresh read-only mount (``off``: prefetch=false; N: cache.prefetch_threads;
``:nometa``: posix_metadata=false) read once by 4 reader processes, against 4 boto3 threads
measured right before and after that epoch (averaged); boto3 with 16 and 64 threads first (the
endpoint's ceiling). Uses `shoal bench read`'s helpers (cli/bench/read.py).
"""

import json
import os
import shutil
import sys
import tempfile

from cli.bench import read as R
from cli.bench.faultproxy import Fault, FaultProxy
from cli.bench.s3server import s3_client, start_s3_server
from engine.config import default_tiers

classes = int(os.environ.get("CLASSES", "10"))
settings = sys.argv[1:]  # e.g. off 4 8 16 32 ; suffix :nometa for posix_metadata=false
scratch = tempfile.mkdtemp(prefix="pf-sweep-", dir="/tmp/pf-bench")
src = os.path.join(scratch, "src")
R._make_dataset(src, classes, 150, 0, 1)
small = R._listing(src)[0]
server = start_s3_server()
proxy = FaultProxy(server.endpoint).start()
out: dict[str, object] = {}
try:
    R._upload(s3_client(server.endpoint), src, small)
    proxy.add(Fault("delay", -1, seconds=0.02))
    client = s3_client(proxy.endpoint)

    def boto(n: int) -> float:
        return len(small) / R._s3_reader(client, src, n)(small)[0]

    for n in (16, 64):
        out[f"boto3_x{n}"] = boto(n)
    for i, setting in enumerate(settings):
        name, flag = setting.partition(":")[::2]
        home, mnt = os.path.join(scratch, f"home{i}"), os.path.join(scratch, f"mnt{i}")
        os.makedirs(mnt)
        args = R._mount_args(home, mnt, proxy.endpoint)
        if name == "off":
            args += ["-o", "prefetch=false"]
        else:
            args += ["-o", f"cache.prefetch_threads={name}"]
        if flag == "nometa":
            args += ["-o", "posix_metadata=false"]
        b1 = boto(4)
        R._shoal(*args)
        try:
            secs = R._timed(4, [os.path.join(mnt, os.path.relpath(p, src)) for p in small])[0]
        finally:
            R._shoal("umount", mnt)
            for t in default_tiers(home):
                for p in t.paths:
                    shutil.rmtree(p, ignore_errors=True)
        b2 = boto(4)
        rate = len(small) / secs
        out[setting] = {
            "files_per_s": rate,
            "boto3_4": (b1 + b2) / 2,
            "ratio": rate / ((b1 + b2) / 2),
        }
        print(setting, json.dumps(out[setting]), flush=True)
    print(json.dumps(out))
finally:
    proxy.stop()
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
