"""``mount.shoal`` / ``mount.fuse.shoal``: what mount(8) runs for a line of /etc/fstab of type
``shoal`` or ``fuse.shoal`` (docs/operations.md, "Running as a service").

mount(8) calls ``mount.TYPE SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]``, with the fstab's options
plus its own (rw, _netdev, nofail...). Those that only mount(8) or systemd read are dropped;
``home=`` and ``config=`` become ``--home`` and ``--config``; the rest are ``shoal mount``'s -o
options (configuration keys, UFS options, ``secret_key_file=``, ``ro``, ``allow_other``). The
helper returns once the mount is live, the daemon serving it in the background, as mount(8)
expects; a failure is one line on stderr and mount(8)'s exit code 32 (1: a wrong invocation).
"""

from __future__ import annotations

import sys

from cli import main as shoal
from cli.common import EXIT_USAGE as SHOAL_EXIT_USAGE

EXIT_USAGE = 1  # mount(8): incorrect invocation or permissions
EXIT_MOUNT_FAILED = 32  # mount(8): mount failure

# Options of mount(8), util-linux's libmount or systemd's fstab generator: never Shoal's.
DROPPED = {
    "defaults", "rw", "auto", "noauto", "user", "users", "nouser", "owner", "group",
    "_netdev", "nofail", "sync", "async", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
    "atime", "noatime", "relatime", "norelatime", "strictatime", "diratime", "nodiratime",
    "lazytime", "nolazytime", "silent", "loud", "bg", "fg",
}  # fmt: skip
DROPPED_PREFIXES = ("x-", "comment=", "fsname=", "subtype=")


class HelperUsage(Exception):
    pass


def split(argv: list[str]) -> tuple[str, str, list[str], set[str]]:
    """(source, mountpoint, options, flags) from mount(8)'s argument order."""
    positional: list[str] = []
    options: list[str] = []
    flags: set[str] = set()
    args = iter(argv)
    for arg in args:
        if arg in ("-o", "-t"):
            value = next(args, None)
            if value is None:
                raise HelperUsage(f"{arg} needs a value")
            if arg == "-o":
                options += [o for o in value.split(",") if o]
        elif arg.startswith("-o"):
            options += [o for o in arg[2:].split(",") if o]
        elif arg.startswith("-") and len(arg) > 1:
            flags.update(arg[1:])
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise HelperUsage("expected SOURCE MOUNTPOINT [-o OPTIONS], as mount(8) passes them")
    return positional[0], positional[1], options, flags


def shoal_argv(source: str, mountpoint: str, options: list[str], flags: set[str]) -> list[str]:
    """The ``shoal mount`` command that the fstab line stands for."""
    argv = ["mount"]
    passed: list[str] = []
    for option in options:
        key, sep, value = option.partition("=")
        if option in DROPPED or option.startswith(DROPPED_PREFIXES):
            continue
        if key in ("home", "config"):
            if not sep or not value:
                raise HelperUsage(f"option {key}= needs a value: {key}=PATH")
            argv += [f"--{key}", value]
        else:
            passed.append(option)
    if "v" in flags:
        argv.append("-v")
    for option in passed:
        argv += ["-o", option]
    return argv + [source, mountpoint]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        source, mountpoint, options, flags = split(argv)
        command = shoal_argv(source, mountpoint, options, flags)
    except HelperUsage as exc:
        print(f"mount.shoal: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if "f" in flags:  # mount -f: pretend
        return 0
    try:
        code = shoal.main(command)
    except SystemExit as exc:  # argparse refused the command and said why
        code = exc.code if isinstance(exc.code, int) else SHOAL_EXIT_USAGE
    if code == 0:
        return 0
    return EXIT_USAGE if code == SHOAL_EXIT_USAGE else EXIT_MOUNT_FAILED


if __name__ == "__main__":
    sys.exit(main())


def umount_main(argv: list[str] | None = None) -> int:
    """``umount.fuse.shoal MOUNTPOINT [-flnrv]``: umount(8) runs it for a mount of type
    fuse.shoal; ``shoal umount`` returns only once the daemon has flushed and checkpointed, where
    the bare system call would return at once and leave that to happen after."""
    argv = sys.argv[1:] if argv is None else argv
    positional: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-t":  # -t TYPE: its value is not a mountpoint
            if next(args, None) is None:
                positional = []
                break
        elif not arg.startswith("-"):
            positional.append(arg)
    if len(positional) != 1:
        print("umount.shoal: expected MOUNTPOINT [-flnrv], as umount(8) passes it", file=sys.stderr)
        return EXIT_USAGE
    code = shoal.main(["umount", positional[0]])
    return 0 if code == 0 else EXIT_MOUNT_FAILED
