"""The kernel's FALLOCATE request, which pyfuse3 (3.5) does not pass on.

libfuse calls the ``fallocate`` member of the session's operation table when the kernel sends
the request, and answers ENOSYS (which the kernel turns into EOPNOTSUPP for good) when it is
empty. pyfuse3 leaves it empty and offers no way to fill it, so after ``pyfuse3.init`` this
module fills it in the live session with a ctypes callback:

- the session pointer and pyfuse3's own operation table are static variables of pyfuse3's
  extension, found by name in its ELF symbol table;
- the session's copy of that table is found by comparing the two, and the layout is checked
  against libfuse 3's (``forget_multi`` and ``readdirplus``, which pyfuse3 sets, around the
  empty ``flock`` and ``fallocate``) before anything is written.

Where any of this does not hold (a stripped or different pyfuse3 build) nothing is changed and
fallocate stays unsupported (EOPNOTSUPP, as before), which is logged once.

The callback runs on the trio thread, inside pyfuse3's processing of the request: it starts
the handler as a trio system task and returns; the task replies with ``fuse_reply_err``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pyfuse3
import trio

log = logging.getLogger(__name__)

FALLOC_FL_KEEP_SIZE = 0x01
PTR = 8
# Members of libfuse 3's struct fuse_lowlevel_ops, by index.
OP_INIT, OP_FORGET_MULTI, OP_FLOCK, OP_FALLOCATE, OP_READDIRPLUS = 0, 38, 39, 40, 41
OPS_KNOWN = OP_READDIRPLUS + 1  # the members compared to find the session's table
SESSION_SCAN = 512  # bytes of the session searched for its table

Handler = Callable[[int, int, int, int], Awaitable[None]]  # (inode, mode, offset, length)
_CALLBACK = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
    ctypes.c_void_p,
)  # fmt: skip
_installed: list[Any] = []  # the callback object: it must outlive the session


def _symbols(path: str, wanted: set[bytes]) -> dict[bytes, int]:
    """The values of the ``wanted`` symbols in an ELF64 file's symbol table."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]  # fmt: skip
    found: dict[bytes, int] = {}
    for _name, kind, _f, _a, offset, size, link, _i, _al, entsize in sections:
        if kind != 2 or not entsize:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            (name_off,) = struct.unpack_from("<I", data, pos)
            (value,) = struct.unpack_from("<Q", data, pos + 8)
            end = data.index(b"\0", strtab + name_off)
            name = data[strtab + name_off : end]
            if name in wanted:
                found[name] = value
    return found


def _session_ops() -> int | None:
    """The address of the live session's operation table, or None (saying why in the log)."""
    so = pyfuse3.__file__
    names = {b"PyInit_pyfuse3", b"__pyx_v_7pyfuse3_session", b"__pyx_v_7pyfuse3_fuse_ops"}
    syms = _symbols(so, names)
    if set(syms) != names:
        log.warning("fallocate unsupported: pyfuse3's symbols not found in %s", so)
        return None
    lib = ctypes.CDLL(so)
    base = ctypes.cast(lib.PyInit_pyfuse3, ctypes.c_void_p).value - syms[b"PyInit_pyfuse3"]  # type: ignore[operator]
    session = ctypes.c_void_p.from_address(base + syms[b"__pyx_v_7pyfuse3_session"]).value
    ours = (ctypes.c_uint64 * OPS_KNOWN).from_address(base + syms[b"__pyx_v_7pyfuse3_fuse_ops"])
    table = list(ours)
    if not session or not table[OP_INIT] or not table[OP_FORGET_MULTI] or table[OP_FLOCK] \
            or table[OP_FALLOCATE] or not table[OP_READDIRPLUS]:  # fmt: skip
        log.warning("fallocate unsupported: pyfuse3's operation table is not libfuse 3's")
        return None
    window = (ctypes.c_uint64 * (SESSION_SCAN // PTR + OPS_KNOWN)).from_address(session)
    for start in range(SESSION_SCAN // PTR):
        if window[start] == table[0] and list(window[start : start + OPS_KNOWN]) == table:
            return session + start * PTR
    log.warning("fallocate unsupported: the session's operation table was not found")
    return None


def install(handler: Handler) -> bool:
    """Routes FALLOCATE requests to ``handler`` (which raises ``pyfuse3.FUSEError`` for an
    errno); call after ``pyfuse3.init``, before ``pyfuse3.main``. False if it cannot."""
    libfuse = ctypes.util.find_library("fuse3")
    ops = _session_ops()
    if ops is None or libfuse is None:
        return False
    reply_err = ctypes.CDLL(libfuse).fuse_reply_err
    reply_err.argtypes = [ctypes.c_void_p, ctypes.c_int]
    reply_err.restype = ctypes.c_int

    async def serve(req: int, ino: int, mode: int, offset: int, length: int) -> None:
        code = errno.EIO  # whatever happens, the request gets its answer
        try:
            await handler(ino, mode, offset, length)
            code = 0
        except pyfuse3.FUSEError as exc:
            code = exc.errno
        except Exception:  # a system task must not raise: it would end the mount
            log.exception("fallocate of inode %d failed unexpectedly; answered EIO", ino)
        finally:
            reply_err(req, code)

    def on_request(req: int, ino: int, mode: int, offset: int, length: int, _fi: int) -> None:
        try:
            trio.lowlevel.spawn_system_task(serve, req, ino, mode, offset, length)
        except BaseException:
            log.exception("fallocate request of inode %d not started; answered EIO", ino)
            reply_err(req, errno.EIO)

    callback = _CALLBACK(on_request)
    _installed.append(callback)
    ctypes.c_void_p.from_address(ops + OP_FALLOCATE * PTR).value = ctypes.cast(
        callback, ctypes.c_void_p
    ).value
    log.debug("fallocate requests routed to the mount")
    return True
