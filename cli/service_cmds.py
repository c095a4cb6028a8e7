"""`shoal service unit|install`: Shoal as a systemd service, and the helpers that let a line of
/etc/fstab mount it (docs/operations.md, "Running as a service").

One template unit, ``shoal@.service``, serves every mount: instance NAME reads its home, store,
mountpoint and -o options from ``/etc/shoal/NAME.env``. It is ``Type=notify``: the daemon says
READY=1 once the mount is live (fuse.sdnotify), so units ordered after it find their data, and
it is stopped by ``shoal umount``, which returns once the journal is flushed and checkpointed.
Secrets never appear in the unit nor in its environment (anyone may read both through systemctl
show): the options name files that hold them (``secret_key_file=``) or a profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from cli.common import EXIT_OK, UsageError, add_command, command_group, home_of
from engine.credentials import FILE_SUFFIX, is_secret_option

UNIT_NAME = "shoal@.service"
UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/shoal"
HELPER_DIR = "/sbin"  # where mount(8) and umount(8) look for mount.TYPE and umount.TYPE
HELPERS = ("mount.shoal", "mount.fuse.shoal", "umount.fuse.shoal")
UMOUNT_WAIT_S = 330  # shoal umount waits up to 300 s for the checkpoint

UNIT = """\
# Shoal mount NAME: systemctl enable --now shoal@NAME (written by `shoal service install`).
[Unit]
Description=Shoal mount %i
Wants=network-online.target
After=network-online.target local-fs.target
ConditionPathExists={config_dir}/%i.env

[Service]
Type=notify
NotifyAccess=main
EnvironmentFile={config_dir}/%i.env
ExecStart={shoal} mount --foreground --home ${{SHOAL_HOME}} $SHOAL_OPTIONS ${{SHOAL_STORE}} \
${{SHOAL_MOUNTPOINT}}
ExecStop={shoal} umount ${{SHOAL_MOUNTPOINT}}
TimeoutStopSec={stop_s}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target remote-fs.target
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = command_group(sub, common, "service", "run Shoal mounts as systemd services")
    p = add_command(group, common, "unit", cmd_unit, f"print the {UNIT_NAME} template")
    p.add_argument("--shoal", metavar="PATH", help="the shoal program (default: this one)")
    p = add_command(
        group,
        common,
        "install",
        cmd_install,
        "install shoal@NAME: the unit template, NAME's settings and the fstab mount helpers",
        description="Writes shoal@.service, /etc/shoal/NAME.env (the home, UFS_URI, MOUNTPOINT"
        " and -o options) and links mount.shoal, mount.fuse.shoal and umount.fuse.shoal into"
        " /sbin for fstab lines of type fuse.shoal; then: systemctl daemon-reload && systemctl"
        " enable --now shoal@NAME. Secrets by value are refused: -o secret_key_file=PATH.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("uri", metavar="UFS_URI")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-o", dest="option", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--shoal", metavar="PATH", help="the shoal program (default: this one)")
    p.add_argument("--unit-dir", default=UNIT_DIR, metavar="DIR")
    p.add_argument("--config-dir", default=CONFIG_DIR, metavar="DIR")
    p.add_argument("--helper-dir", default=HELPER_DIR, metavar="DIR")


def shoal_program(given: str | None) -> str:
    """The installed ``shoal`` beside this Python (a virtual environment's bin/), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "shoal")
    found = given or (beside if os.access(beside, os.X_OK) else shutil.which("shoal"))
    if not found:
        raise UsageError("no shoal program found beside this Python nor on PATH: --shoal PATH")
    return os.path.abspath(found)


def unit_text(shoal: str, config_dir: str = CONFIG_DIR) -> str:
    return UNIT.format(shoal=shoal, config_dir=config_dir, stop_s=UMOUNT_WAIT_S)


def environment_text(home: str, uri: str, mountpoint: str, options: list[str]) -> str:
    """NAME.env. systemd splits an unbraced $SHOAL_OPTIONS at whitespace, so no value may hold
    any; a secret by value would be readable by any user (systemctl show): refused."""
    items = [part for item in options for part in item.split(",") if part]
    for item in items:
        key = item.partition("=")[0].strip()
        if is_secret_option(key) and not key.endswith(FILE_SUFFIX):
            raise UsageError(
                f"-o {key}=... would put a secret in the unit's environment, readable by any"
                f" user: give -o {key}{FILE_SUFFIX}=PATH (a file of mode 0600) instead"
            )
    for value in (home, uri, mountpoint, *items):
        if any(c.isspace() or c in "\"'\\$%" for c in value):
            raise UsageError(f"{value!r}: a service cannot take spaces, quotes, \\, $ or % here")
    values = {"SHOAL_HOME": home, "SHOAL_STORE": uri, "SHOAL_MOUNTPOINT": mountpoint}
    values["SHOAL_OPTIONS"] = " ".join(f"-o {item}" for item in items)
    return "".join(f"{name}={value}\n" for name, value in values.items())


def cmd_unit(args: argparse.Namespace) -> int:
    sys.stdout.write(unit_text(shoal_program(args.shoal)))
    return EXIT_OK


def _write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
        f.write(text)
    os.replace(temporary, path)
    print(f"wrote {path}")


def cmd_install(args: argparse.Namespace) -> int:
    if "@" in args.name or "/" in args.name or not args.name:
        raise UsageError(f"service name {args.name!r}: no '@' or '/' in it")
    shoal = shoal_program(args.shoal)
    home = home_of(args)
    mountpoint = os.path.abspath(args.mountpoint)
    uri = args.uri if "://" in args.uri else os.path.abspath(args.uri)
    environment = environment_text(home, uri, mountpoint, args.option)
    _write(os.path.join(args.unit_dir, UNIT_NAME), unit_text(shoal, args.config_dir), 0o644)
    _write(os.path.join(args.config_dir, f"{args.name}.env"), environment, 0o600)
    os.makedirs(args.helper_dir, exist_ok=True)
    for helper in HELPERS:
        target = os.path.join(os.path.dirname(shoal), helper)
        link = os.path.join(args.helper_dir, helper)
        if not os.path.exists(target):
            continue  # not installed as a package (a source tree): see docs/operations.md
        if os.path.lexists(link):
            print(f"left {link} as it is (-> {os.path.realpath(link)})")
        else:
            os.symlink(target, link)
            print(f"linked {link} -> {target}")
    print(f"now: systemctl daemon-reload && systemctl enable --now shoal@{args.name}")
    return EXIT_OK
