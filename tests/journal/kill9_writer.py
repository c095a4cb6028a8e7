"""Helper of test_kill9.py: appends to a home from several threads until it is killed.

Usage: kill9_writer.py HOME [THREADS]. Thread i creates /t{i}/f{n}, n = 0, 1, ... (continuing
after the files an earlier run left), and prints each path on its own line once ``create`` has
returned, i.e. once the entry is durable and the operation acknowledged. A line on stdout is
therefore a promise that the path survives a crash of this process.
"""

from __future__ import annotations

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from engine.engine import Engine  # noqa: E402


def main() -> int:
    home = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    engine = Engine.open_home(home)
    out_lock = threading.Lock()  # one whole line at a time, never interleaved
    out = sys.stdout

    def work(i: int) -> None:
        folder = f"/t{i}"
        engine.ns.mkdir(folder, parents=True)
        taken = [int(c.name[1:]) for c in engine.ns.listdir(folder)]
        n = max(taken, default=-1) + 1
        create = engine.ns.create
        while True:
            path = f"{folder}/f{n}"
            create(path)
            with out_lock:
                out.write(path + "\n")
                out.flush()
            n += 1

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()  # never returns while all goes well: the test ends this process with SIGKILL
    return 1


if __name__ == "__main__":
    sys.exit(main())
