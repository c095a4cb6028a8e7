"""The developer-tool workloads of `shoal bench write` (cli/bench/write.py): what people do onto
a mount besides untarring, timed the same way onto the local disk and through a mount.

- `git clone` of a repository the benchmark makes (``files`` files in nested directories, a
  few commits), with ``--no-local --no-hardlinks``: git's own transport (upload-pack in a local
  process, no network) packs the objects, the clone indexes the pack and checks out every file,
  as a clone from a server would;
- `pip install --no-index --no-deps --target DIR WHEEL` of a wheel repacked from a
  distribution installed in this interpreter (botocore by default: some 2,000 files), as pip
  installed it here.

Each result is checked where it landed: the clone by `git fsck` and a clean `git status`, the
install by the files it left, which must be as many as the same install left on the local disk.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as metadata
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile

from engine.errors import Unavailable

COMMITS = 3  # the repository's history: its files added over this many commits, a few edited
FANOUT = 8  # directories per level of the repository's tree (three levels)
# Written by the installer, not part of a wheel.
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")
_GIT = ["git", "-c", "user.name=shoal bench", "-c", "user.email=bench@shoal.invalid",
        "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]  # fmt: skip


def require_git() -> None:
    """Refuses before minutes of work that would end at the clone."""
    if shutil.which("git") is None:
        raise Unavailable("the git clone workload needs git, not installed: pass --no-tools")


def _git(*args: str, cwd: str) -> str:
    done = subprocess.run([*_GIT, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} in {cwd} failed: {done.stderr.strip()}")
    return done.stdout


def make_repo(scratch: str, files: int) -> str:
    """A git repository of ``files`` small text files in three levels of nested directories,
    committed in COMMITS commits (the last one also edits a tenth of the earlier files): its
    path."""
    repo = os.path.join(scratch, "git-src")
    os.makedirs(repo)
    _git("init", "-q", ".", cwd=repo)
    levels = (("src", 1), ("pkg", FANOUT), ("m", FANOUT**2))
    paths = [
        os.path.join(*(f"{name}{i // step % FANOUT}" for name, step in levels), f"f{i:06d}.py")
        for i in range(files)
    ]
    for commit in range(COMMITS):
        for n, rel in enumerate(paths[commit::COMMITS]):
            path = os.path.join(repo, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f"# {rel}\n" + "".join(f"VALUE_{k} = {n * k}\n" for k in range(40)))
        if commit == COMMITS - 1:
            for rel in paths[:: 10 * COMMITS]:
                with open(os.path.join(repo, rel), "a") as f:
                    f.write("EDITED = True\n")
        _git("add", "-A", cwd=repo)
        _git("commit", "-q", "-m", f"commit {commit + 1}", cwd=repo)
    return repo


def git_clone(repo: str, dest: str) -> float:
    """Seconds for `git clone --no-local --no-hardlinks` of ``repo`` into ``dest`` (which must
    not exist) and the `sync` after it."""
    start = time.perf_counter()
    subprocess.run([*_GIT, "clone", "-q", "--no-local", "--no-hardlinks", repo, dest], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def check_clone(dest: str, files: int) -> int:
    """Files checked out in the clone at ``dest`` after `git fsck --full` found every object
    sound and `git status` found the work tree as committed; raises otherwise."""
    _git("fsck", "--full", "--no-progress", cwd=dest)
    dirty = _git("status", "--porcelain", cwd=dest)
    if dirty:
        raise RuntimeError(f"the clone in {dest} differs from its commit: {dirty[:300]}")
    tracked = len(_git("ls-files", cwd=dest).splitlines())
    if tracked != files:
        raise RuntimeError(f"the clone in {dest} tracks {tracked} files, not {files}")
    return tracked


def build_wheel(package: str, dest_dir: str) -> tuple[str, int]:
    """A wheel of the distribution ``package`` as installed in this interpreter (its files
    as pip installed them, bytecode left out, a fresh RECORD), in ``dest_dir``: (its path,
    the files in it)."""
    dist = metadata.distribution(package)
    base = dist.locate_file("")
    info = f"{dist.name.replace('-', '_')}-{dist.version}.dist-info"
    with open(os.path.join(str(base), info, "WHEEL")) as f:
        tag = next(line.split(":", 1)[1].strip() for line in f if line.startswith("Tag:"))
    wheel = os.path.join(dest_dir, f"{dist.name.replace('-', '_')}-{dist.version}-{tag}.whl")
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")
    names = 0
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in dist.files or []:
            name = str(rel)
            if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
                continue  # scripts outside the package, bytecode pip compiled here
            if name.startswith(info + "/") and name.split("/", 1)[1] in _INSTALLER_FILES:
                continue
            data = open(os.path.join(str(base), name), "rb").read()
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.writerow([name, f"sha256={digest.decode()}", len(data)])
            names += 1
        rows.writerow([f"{info}/RECORD", "", ""])
        zf.writestr(f"{info}/RECORD", record.getvalue())
    return wheel, names + 1


def pip_install(wheel: str, target: str) -> float:
    """Seconds for `pip install --no-index --no-deps --target TARGET WHEEL` (pip's defaults
    otherwise: bytecode compiled) and the `sync` after it."""
    args = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
            "--disable-pip-version-check", "--target", target, wheel]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    subprocess.run(["sync"], check=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"pip install into {target} failed: {done.stderr.strip()[-500:]}")
    return seconds
