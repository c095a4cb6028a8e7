"""`shoal worker` and `shoal mount --cluster` refusing what they cannot use, each with a line
that names the problem, before anything is started or mounted."""

from __future__ import annotations

from pathlib import Path

from cli.bench.s3server import free_port
from tests.cli.shoal_cli import shoal


def test_a_cluster_address_that_is_not_etcd_url_is_refused(
    tmp_path: Path, token_file: Path
) -> None:
    for bad, said in (("http://127.0.0.1:2379/x", "etcd://HOST:PORT/CLUSTER"),
                      ("etcd://127.0.0.1/x", "HOST:PORT"),
                      ("etcd://127.0.0.1:2379/", "cluster's name")):  # fmt: skip
        done = shoal("worker", "--cluster", bad, "--listen", "127.0.0.1:0",
                     "--cluster-token-file", str(token_file), str(tmp_path),
                     home=tmp_path / "home", expect=1)  # fmt: skip
        assert said in done.stderr, done.stderr


def test_a_cluster_without_its_token_or_with_a_readable_one_is_refused(
    tmp_path: Path, token_file: Path
) -> None:
    url = f"etcd://127.0.0.1:{free_port()}/c"
    done = shoal("worker", "--cluster", url, "--listen", "127.0.0.1:0", str(tmp_path),
                 home=tmp_path / "home", expect=2)  # fmt: skip
    assert "--cluster-token-file" in done.stderr, done.stderr
    token_file.chmod(0o644)
    mnt = tmp_path / "mnt"
    done = shoal("mount", "--cluster", url, "--cluster-token-file", str(token_file),
                 str(tmp_path), str(mnt), home=tmp_path / "home", expect=1)  # fmt: skip
    assert "chmod 600" in done.stderr, done.stderr


def test_a_cluster_whose_etcd_does_not_answer_is_not_mounted(
    tmp_path: Path, token_file: Path
) -> None:
    port = free_port()  # nothing listens there
    (tmp_path / "mnt").mkdir()
    done = shoal("mount", "--cluster", f"etcd://127.0.0.1:{port}/c", "--cluster-token-file",
                 str(token_file), str(tmp_path / "ufs"), str(tmp_path / "mnt"),
                 home=tmp_path / "home", expect=1)  # fmt: skip
    assert f"etcd at http://127.0.0.1:{port} did not answer" in done.stderr, done.stderr
    assert not (tmp_path / "home" / "journal").exists()  # refused before the home was made


def test_serve_without_a_cluster_or_with_a_bad_address_is_refused(
    tmp_path: Path, token_file: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    mount = ("mount", str(tmp_path / "ufs"), str(tmp_path / "mnt"))
    done = shoal(*mount, "--serve", "127.0.0.1:7070", home=tmp_path / "home", expect=2)
    assert "give --cluster too" in done.stderr, done.stderr
    done = shoal(*mount, "--id", "n1", home=tmp_path / "home", expect=2)
    assert "give --serve HOST:PORT too" in done.stderr, done.stderr
    url = f"etcd://127.0.0.1:{free_port()}/c"
    done = shoal(*mount, "--cluster", url, "--cluster-token-file", str(token_file),
                 "--serve", "7070", home=tmp_path / "home", expect=1)  # fmt: skip
    assert "--serve '7070': write it HOST:PORT" in done.stderr, done.stderr
    assert not (tmp_path / "home" / "journal").exists()  # refused before the home was made
