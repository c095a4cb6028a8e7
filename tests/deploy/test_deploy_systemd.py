"""deploy/systemd: the worker's and the client's template units pass `systemd-analyze verify`,
their command lines (with the example settings, expanded as systemd expands them) are ones
Shoal's parser accepts, the token comes only as a credential file, and the worker, started as
the unit starts it, tells systemd it is ready (Type=notify)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli.bench.etcdserver import has_etcd, start_etcd
from cli.bench.s3server import free_port
from engine.credentials import FILE_SUFFIX, is_secret_option
from tests.cli.shoal_cli import ROOT, env, shoal
from tests.deploy.manifests import SYSTEMD, command_problems
from tests.fuse.mounting import Mounted

PROGRAM = "/usr/local/bin/shoal"
CREDENTIALS = "/run/credentials/unit"  # what %d becomes
UNITS = {"worker": "shoal-worker@.service", "client": "shoal-client@.service"}
READY_WAIT_S = 90.0  # a worker's start: its home, its store, etcd's lease


def settings(text: str) -> dict[str, str]:
    """The unit's key=value lines, continuation lines joined (the last of a repeated key)."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line for line in joined.splitlines() if "=" in line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def expand(command: str, environment: dict[str, str], credentials: str = CREDENTIALS) -> list[str]:
    """As systemd does: ${VAR} is one word, $VAR splits at whitespace, %d the credentials."""
    words = []
    for word in command.split():
        word = word.replace("%d", credentials).replace("%i", "x")
        if word.startswith("${"):
            words.append(environment.get(word[2:-1], ""))
        elif word.startswith("$"):
            words += environment.get(word[1:], "").split()
        else:
            words.append(word)
    return words


def unit_problems(unit: str, environment_file: str) -> list[str]:
    keys = settings(unit)
    environment = settings(environment_file)
    problems = []
    for name in ("ExecStart", "ExecStop"):
        if name in keys:
            argv = expand(keys[name], environment)
            if argv[0] != PROGRAM:
                problems.append(f"{name} runs {argv[0]}")
            problems += command_problems(argv[1:])
    start = expand(keys["ExecStart"], environment)
    credential, _, source = keys.get("LoadCredential", "").partition(":")
    if not credential or not source.startswith("/etc/shoal/"):
        problems.append("the token is not a LoadCredential= from /etc/shoal")
    elif f"--cluster-token-file={CREDENTIALS}/{credential}" not in " ".join(start).replace(
        "--cluster-token-file ", "--cluster-token-file="
    ):
        problems.append(f"--cluster-token-file is not the credential {credential}")
    if "Environment" in keys:
        problems.append("Environment= in the unit: anyone may read it (systemctl show)")
    for item in re.findall(r"-o (\S+)", environment.get("SHOAL_OPTIONS", "")):
        key = item.partition("=")[0]
        if is_secret_option(key) and not key.endswith(FILE_SUFFIX):
            problems.append(f"-o {key}=... puts a secret in the environment")
    if keys.get("Type") != "notify" or keys.get("Restart") != "on-failure":
        problems.append("not Type=notify with Restart=on-failure")
    return problems


def shipped(role: str) -> tuple[str, str]:
    unit = (SYSTEMD / UNITS[role]).read_text()
    return unit, (SYSTEMD / f"{role}-example.env").read_text()


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_deploy_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    for role, name in UNITS.items():
        # Verify checks the program exists: any that does stands for shoal.
        text = (SYSTEMD / name).read_text().replace(PROGRAM, sys.executable)
        instance = tmp_path / name.replace("@", "@train")
        instance.write_text(text)
        done = verify(instance)
        assert done.returncode == 0 and not done.stderr.strip(), (role, done.stderr)
        broken = tmp_path / name.replace("@", "@broken")
        broken.write_text(text.replace("LoadCredential=", "LoadCredentials="))
        done = verify(broken)
        assert "LoadCredentials" in done.stderr, done.stderr


def test_deploy_units_run_commands_shoal_accepts_with_the_token_as_a_credential() -> None:
    for role in UNITS:
        unit, environment = shipped(role)
        assert unit_problems(unit, environment) == [], role


def test_deploy_unit_checks_refuse_a_broken_unit() -> None:
    unit, environment = shipped("worker")
    cases = [
        (unit.replace("--id ${SHOAL_WORKER_ID}", "--name ${SHOAL_WORKER_ID}"), environment,
         "unrecognized arguments"),
        (unit, environment.replace("SHOAL_LISTEN=0.0.0.0:7070", "SHOAL_LISTEN=7070"),
         "HOST:PORT"),
        (unit.replace("%d/cluster-token", "/etc/shoal/token"), environment,
         "not the credential"),
        (unit.replace("[Service]", "[Service]\nEnvironment=TOKEN=x"), environment,
         "Environment="),
        (unit, environment.replace("secret_key_file=", "secret_key="), "secret in the"),
        (unit.replace("Type=notify", "Type=simple"), environment, "Type=notify"),
    ]  # fmt: skip
    for text, settings_text, said in cases:
        problems = unit_problems(text, settings_text)
        assert len(problems) == 1 and said in problems[0], problems


def run_as_the_unit(role: str, environment: dict[str, str], tmp_path: Path) -> list[str]:
    """The unit's ExecStart with ``environment`` for its .env and a credentials directory laid
    out as systemd lays LoadCredential= out (0400 files in a 0700 directory); this tree's
    shoal in place of the installed one."""
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "cluster-token").write_text("token-of-the-unit\n")
    (credentials / "cluster-token").chmod(0o400)
    unit, _ = shipped(role)
    argv = expand(settings(unit)["ExecStart"], environment, str(credentials))
    assert argv[0] == PROGRAM
    return [sys.executable, "-m", "cli.main", *argv[1:]]


def test_deploy_worker_unit_starts_a_worker_that_tells_systemd_it_is_ready(
    tmp_path: Path,
) -> None:
    """shoal-worker@.service is Type=notify: systemd counts it started only at READY=1, which
    the worker must send once it serves and is registered."""
    if not has_etcd():
        pytest.fail("etcd is not installed (scripts/install.sh installs etcd-server)")
    etcd = start_etcd(tmp_path / "etcd")
    (tmp_path / "ufs").mkdir()
    port = free_port()
    environment = {
        "SHOAL_HOME": str(tmp_path / "home"), "SHOAL_CLUSTER": etcd.cluster_url("unit"),
        "SHOAL_LISTEN": f"127.0.0.1:{port}", "SHOAL_WORKER_ID": "w1", "SHOAL_OPTIONS": "",
        "SHOAL_STORE": str(tmp_path / "ufs"),
    }  # fmt: skip
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(READY_WAIT_S)
        argv = run_as_the_unit("worker", environment, tmp_path)
        worker = subprocess.Popen(argv, cwd=ROOT, env=env(NOTIFY_SOCKET=address))
        try:
            said = set(sock.recv(4096).decode().split("\n"))
            assert "READY=1" in said, said
            assert worker.poll() is None
            with socket.create_connection(("127.0.0.1", port), 5):
                pass  # listening when it said so
            # A stop right after READY=1 is a clean stop: the handlers are in place before it.
            worker.terminate()
            assert worker.wait(60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            etcd.stop()


def test_deploy_client_unit_mounts_and_its_stop_unmounts(tmp_path: Path) -> None:
    """shoal-client@.service's ExecStart mounts through the cluster (READY=1 once the mount is
    live, the token from the credential) and its ExecStop unmounts it."""
    if not has_etcd():
        pytest.fail("etcd is not installed (scripts/install.sh installs etcd-server)")
    etcd = start_etcd(tmp_path / "etcd")
    (tmp_path / "ufs").mkdir()
    (tmp_path / "ufs" / "a.txt").write_text("read through the unit")
    m = Mounted(tmp_path / "home", str(tmp_path / "ufs"), tmp_path / "mnt")
    environment = {
        "SHOAL_HOME": str(m.home), "SHOAL_CLUSTER": etcd.cluster_url("unit"),
        "SHOAL_OPTIONS": "", "SHOAL_STORE": m.uri, "SHOAL_MOUNTPOINT": str(m.path),
    }  # fmt: skip
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(READY_WAIT_S)
        argv = run_as_the_unit("client", environment, tmp_path)
        client = subprocess.Popen(argv, cwd=ROOT, env=env(NOTIFY_SOCKET=address))
        try:
            assert "READY=1" in sock.recv(4096).decode().split("\n")
            assert (m.path / "a.txt").read_text() == "read through the unit"
            stop = expand(settings(shipped("client")[0])["ExecStop"], environment)
            shoal(*stop[1:])
            assert client.wait(READY_WAIT_S) == 0
            assert not os.path.ismount(m.path)
        finally:
            m.teardown()
            if client.poll() is None:
                client.kill()
                client.wait()
            etcd.stop()
