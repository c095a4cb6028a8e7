"""What mount(8) hands ``mount.shoal`` becomes the ``shoal mount`` an fstab line stands for."""

from __future__ import annotations

import pytest

from cli.mount_helper import EXIT_USAGE, main, shoal_argv, split, umount_main


def test_helper_drops_the_options_of_mount_and_systemd() -> None:
    argv = ["s3://b/p", "/mnt/x", "-v", "-o",
            "rw,home=/var/lib/shoal,secret_key_file=/root/k,_netdev,nofail,noauto,defaults,"
            "x-systemd.automount,x-systemd.requires=a.target,comment=x,user,ro,allow_other,"
            "endpoint=http://h:1"]  # fmt: skip
    assert shoal_argv(*split(argv)) == [
        "mount", "--home", "/var/lib/shoal", "-v",
        "-o", "secret_key_file=/root/k", "-o", "ro", "-o", "allow_other",
        "-o", "endpoint=http://h:1", "s3://b/p", "/mnt/x",
    ]  # fmt: skip


def test_helper_takes_config_and_options_glued_to_o() -> None:
    argv = ["/data", "/mnt/y", "-oconfig=/etc/shoal.toml,cache.readahead_blocks=4", "-n", "-s"]
    assert shoal_argv(*split(argv)) == [
        "mount", "--config", "/etc/shoal.toml", "-o", "cache.readahead_blocks=4", "/data", "/mnt/y",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["/data"], ["/data", "/mnt", "extra"], ["/data", "/mnt", "-o"], ["/d", "/m", "-o", "home="]],
)
def test_helper_refuses_what_mount_would_not_pass(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("mount.shoal: ") and len(err.strip().splitlines()) == 1


def test_helper_fake_mount_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/nonexistent", "/nonexistent-too", "-f", "-o", "home=/nonexistent-home"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv", [[], ["-t"], ["/a", "/b"]])
def test_umount_helper_wants_one_mountpoint(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert umount_main(argv) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("umount.shoal: ")
