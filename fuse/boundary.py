"""The one place where engine errors become errno for the kernel.

Any exception other than ``FUSEError`` escaping a handler would take the whole mount down
("Transport endpoint is not connected"), so every handler goes through ``answers_errno``:
engine errors and OS errors keep their errno, anything else is a bug, logged with its
traceback and answered EIO. An errno no engine rule chose (an OS error escaping the engine, a
store failure of no known kind) is logged with its traceback too: the kernel's caller sees only
the number.
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from time import perf_counter_ns
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from engine import metrics
from engine.errors import ShoalError
from fuse import opstats

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


class FlushNotNeeded(Exception):
    """The answer to FLUSH on a mount that needs none: ENOSYS, which turns FLUSH off for the
    whole connection (a round trip less per close)."""


def errno_of(exc: BaseException) -> int:
    if isinstance(exc, ShoalError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


def unexpected(exc: BaseException) -> bool:
    """Whether an error reached the kernel without an engine rule choosing its errno: an OS
    error that escaped the engine (a descriptor used after its close, a negative length), or
    an engine error made of a failure of no known kind (a store's, engine/mounts.py chains
    it as the cause)."""
    if not isinstance(exc, ShoalError):
        return True
    return exc.__cause__ is not None and not isinstance(exc.__cause__, ShoalError)


def answers_errno(
    handler: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    name = handler.__name__
    count = opstats.slot(name)  # `shoal stats`: counted always, cheaply (fuse/opstats.py)
    reads, writes, mask = name == "read", name == "write", opstats.TIMED_MASK

    @functools.wraps(handler)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        count.calls += 1
        if count.calls & mask == 1 or metrics.ENABLED:
            return await timed(*args, **kwargs)
        try:  # answered's body again: one coroutine less on every request's path
            result: Any = await handler(*args, **kwargs)
        except Exception as exc:
            count.errors += 1
            raise _answer(name, exc) from None
        if reads:
            count.bytes += len(result)
        elif writes:
            count.bytes += result
        return result

    async def answered(*args: Any, **kwargs: Any) -> T:
        try:
            result: Any = await handler(*args, **kwargs)
        except Exception as exc:
            count.errors += 1
            raise _answer(name, exc) from None
        if reads:
            count.bytes += len(result)
        elif writes:
            count.bytes += result
        return result

    async def timed(*args: Any, **kwargs: Any) -> T:
        # A clock read costs ~0.1 us here: a sample of the requests is timed, not each.
        start = perf_counter_ns()
        try:
            if metrics.ENABLED:
                return await _measured(name, answered, *args, **kwargs)
            return await answered(*args, **kwargs)
        finally:
            count.timed += 1
            count.ns += perf_counter_ns() - start

    return guarded


def _answer(name: str, exc: Exception) -> pyfuse3.FUSEError:
    """The FUSEError a handler's exception is answered with (logged as it deserves)."""
    if isinstance(exc, pyfuse3.FUSEError):
        return exc
    if isinstance(exc, FlushNotNeeded):
        return pyfuse3.FUSEError(errno.ENOSYS)
    if isinstance(exc, ShoalError | OSError):
        code = errno_of(exc)
        if unexpected(exc):
            # No engine rule chose this errno, and the caller sees only the errno (close(2)
            # answering EINVAL): where it came from is in this traceback alone.
            what = errno.errorcode.get(code, str(code))
            log.warning("%s answered %s, unexpectedly: %r", name, what, exc, exc_info=exc)
            return pyfuse3.FUSEError(code)
        if code == errno.EIO:
            log.warning("%s: %s", name, exc)
        else:
            log.debug("%s: %s", name, exc)
        return pyfuse3.FUSEError(code)
    log.error("%s failed unexpectedly; answered EIO", name, exc_info=exc)
    return pyfuse3.FUSEError(errno.EIO)


async def _measured(name: str, call: Callable[..., Coroutine[Any, Any, T]], *args: Any,
                    **kwargs: Any) -> T:  # fmt: skip
    start = time.perf_counter()
    try:
        return await call(*args, **kwargs)
    except pyfuse3.FUSEError as exc:
        metrics.FUSE_ERRORS.labels(name, errno.errorcode.get(exc.errno, str(exc.errno))).inc()
        raise
    finally:
        metrics.FUSE_REQUESTS.labels(name).inc()
        metrics.FUSE_SECONDS.labels(name).observe(time.perf_counter() - start)
