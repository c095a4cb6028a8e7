"""engine/posix.py ``may_access`` (the fsspec client's permission rule) against the kernel's
own decision on real files: os.access, for root and for user nobody."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.inode import Inode
from engine.posix import Caller, may_access

NOBODY = 65534
WANTS = [os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.X_OK, os.R_OK | os.W_OK]


def _node(st: os.stat_result) -> Inode:
    children: dict[str, Inode] | None = {} if stat.S_ISDIR(st.st_mode) else None
    return Inode(2, 1, "x", st.st_mode, st.st_uid, st.st_gid, 0, 0, 0, 0, 0, children, None)


def test_may_access_decides_as_the_kernel_does() -> None:
    rng = random.Random(16)
    base = Path(tempfile.mkdtemp(prefix="shoal-access-"))
    try:
        base.chmod(0o755)
        cases = []
        for i in range(60):
            path = base / str(i)
            if i % 4 == 0:
                path.mkdir()
            else:
                path.write_bytes(b"")
            # Owned by nobody, by its group only, or by neither: each class of bits decides.
            uid, gid = [(NOBODY, 0), (0, NOBODY), (0, 0)][i % 3]
            os.chown(path, uid, gid)
            os.chmod(path, rng.randrange(0o1000))
            cases.append(str(path))
        probe = (
            "import json, os, sys\n"
            f"print(json.dumps([[os.access(p, w) for w in {WANTS}] for p in sys.argv[1:]]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, *cases], user=NOBODY, group=NOBODY, extra_groups=[],
            capture_output=True, text=True, cwd="/", timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        kernel_nobody = json.loads(out.stdout)
        nobody, root = Caller(NOBODY, NOBODY), Caller(0, 0)
        for case, kernel in zip(cases, kernel_nobody, strict=True):
            node = _node(os.stat(case))
            mine = [may_access(node, nobody, w) for w in WANTS]
            assert mine == kernel, (case, oct(node.mode))
            mine_root = [may_access(node, root, w) for w in WANTS]
            assert mine_root == [os.access(case, w) for w in WANTS], (case, oct(node.mode))
    finally:
        shutil.rmtree(base)


def test_may_access_counts_supplementary_groups() -> None:
    node = Inode(2, 1, "x", stat.S_IFREG | 0o040, 0, 1234, 0, 0, 0, 0, 0, None, None)
    assert not may_access(node, Caller(NOBODY, NOBODY), os.R_OK)
    assert may_access(node, Caller(NOBODY, NOBODY, groups=frozenset({1234})), os.R_OK)
