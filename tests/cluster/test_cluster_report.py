"""`shoal report --cluster` and a worker's /metrics, over three real workers: the workers, their
ring shares (summing to 1), their use matching what was read through them, a worker killed
with kill -9 shown unhealthy while its lease lasts, and /metrics counting the requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from cli.bench.etcdserver import EtcdServer
from engine.cluster.ring import HashRing
from tests.cli.shoal_cli import shoal
from tests.cluster.conftest import TOKEN, WorkerProcess, get

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _dataset(root: Path) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i:02}.bin": os.urandom(20_000 + 1_000 * i) for i in range(30)}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _report(url: str, token_file: Path, home: Path, expect: int = 0) -> dict[str, object]:
    done = shoal("report", "--cluster", url, "--cluster-token-file", str(token_file), "--json",
                 home=home, expect=expect)  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    return report


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics:\n{text}"
    return float(found.group(1))


def test_cluster_report_shows_workers_shares_use_and_a_killed_one_unhealthy(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    url = etcd.cluster_url("report")
    for name in ("w1", "w2", "w3"):
        workers.append(WorkerProcess(tmp_path, name, 16 << 20))
        workers[-1].start(url, token_file, str(ufs), {})
    by_id = {w.name: w for w in workers}
    ring = HashRing(by_id)
    expected = dict.fromkeys(by_id, 0)
    reads = dict.fromkeys(by_id, 0)
    for name, data in files.items():
        owner = ring.owner(name)
        assert owner is not None
        got = get(by_id[owner].addr, f"/v1/read?path={name}&offset=0&length=4194304", AUTH)
        assert got.status == 200 and got.data == data
        expected[owner] += len(data)
        reads[owner] += 1
    deadline = time.monotonic() + 30  # stored in the background after the replies
    while any(by_id[w].cached_bytes() < n for w, n in expected.items()):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    report = _report(url, token_file, tmp_path / "client")
    assert report["degraded"] is False
    shown = {w["id"]: w for w in report["workers"]}  # type: ignore[attr-defined]
    assert sorted(shown) == ["w1", "w2", "w3"]
    assert abs(sum(w["ring_share"] for w in shown.values()) - 1.0) < 1e-9
    for wid, w in shown.items():
        assert w["healthy"] and w["addr"] == by_id[wid].addr and w["store"] == str(ufs)
        assert 0.15 < w["ring_share"] < 0.55, w
        status = w["status"]
        assert status["used_bytes"] == expected[wid], (wid, status)
        assert status["capacity_bytes"] == 16 << 20
        assert status["cache_misses"] == reads[wid] and status["cache_hits"] == 0
        assert status["service"]["requests"]["read"] == reads[wid]
        assert status["service"]["bytes_served"] == expected[wid]
    human = shoal("report", "--cluster", url, "--cluster-token-file", str(token_file),
                  home=tmp_path / "client").stdout  # fmt: skip
    assert "3 registered (leases alive), 3 healthy" in human, human

    by_id["w2"].kill9()  # its key stays in etcd until its lease expires (5 s)
    report = _report(url, token_file, tmp_path / "client")
    shown = {w["id"]: w for w in report["workers"]}  # type: ignore[attr-defined]
    assert sorted(shown) == ["w1", "w2", "w3"]
    assert not shown["w2"]["healthy"] and shown["w2"]["status"] is None, shown["w2"]
    assert shown["w2"]["error"].startswith("no answer"), shown["w2"]
    assert shown["w1"]["healthy"] and shown["w3"]["healthy"]
    human = shoal("report", "--cluster", url, "--cluster-token-file", str(token_file),
                  home=tmp_path / "client").stdout  # fmt: skip
    assert "w2 at" in human and "UNHEALTHY" in human, human


def test_cluster_report_of_an_unreachable_etcd_says_degraded(
    etcd: EtcdServer, token_file: Path, tmp_path: Path
) -> None:
    url = etcd.cluster_url("gone")
    etcd.stop()
    report = _report(url, token_file, tmp_path / "client", expect=1)
    assert report["degraded"] is True and report["workers"] == []
    assert "did not answer" in str(report["error"]), report


def test_worker_metrics_count_block_requests_bytes_and_misses(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    ufs = tmp_path / "ufs"
    files = _dataset(ufs)
    workers.append(WorkerProcess(tmp_path, "w1", 16 << 20))
    workers[0].start(etcd.cluster_url("metrics"), token_file, str(ufs), {})
    addr = workers[0].addr
    assert get(addr, "/metrics").status == 401  # the token guards it as every service
    names = sorted(files)[:5]
    for name in names * 2:  # a miss, then (once stored) a hit
        assert get(addr, f"/v1/read?path={name}&offset=0&length=4194304", AUTH).status == 200
    text = get(addr, "/metrics", AUTH).data.decode()
    assert _metric(text, 'shoal_block_requests_total{service="read"}') == 10
    assert _metric(text, "shoal_block_served_bytes_total") == 2 * sum(len(files[n]) for n in names)
    assert _metric(text, "shoal_block_refused_total") == 1
    assert _metric(text, "shoal_cache_misses_total") >= 5
    assert _metric(text, "shoal_cache_hits_total") + _metric(text, "shoal_cache_misses_total") == 10
    assert "shoal_cache_flight_joins_total" in text and "shoal_journal_entries_total" in text


def _listen_backlog(port: int) -> int:
    """The listening socket's backlog, as the kernel holds it (ss: Send-Q of a listener)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    return int(out[2])


def test_block_service_listens_with_a_backlog_for_bursts_of_connections(
    etcd: EtcdServer, token_file: Path, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    # A burst of client connections beyond the backlog waits for a SYN retransmit (1 s), past
    # the clients' connect timeout: the read goes to the store instead (shoal bench cluster).
    (tmp_path / "ufs").mkdir()
    workers.append(WorkerProcess(tmp_path, "w1", 1 << 20))
    workers[0].start(etcd.cluster_url("backlog"), token_file, str(tmp_path / "ufs"), {})
    assert _listen_backlog(workers[0].port) >= 128
