"""Names that are not UTF-8, in msgpack: the journal's entries and the checkpoint's rows.

A POSIX name is bytes, and a local store may hold names that are not UTF-8 (``b"caf\\xe9"``, a
Latin-1 name). In memory Shoal keeps every name as a str, with such bytes as lone surrogates
(Python's surrogateescape: what ``os.fsdecode``, ``os.listdir`` and the FUSE frontend give), so
``os.fsencode`` gives the exact bytes back at the store and at the kernel. msgpack's str type
must hold UTF-8, so a str that is not UTF-8 is written as ext type ``RAW_NAME`` holding its
bytes, and every decoder turns that back into the same str (``ext_hook``). UTF-8 strings, nearly
all of them, cost nothing: only a value that fails to pack as it is is looked at again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

RAW_NAME = 1  # ext type code: a name's bytes that are not UTF-8 (part of the on-disk format)


def ext_hook(code: int, data: bytes) -> Any:
    """For msgpack's decoders: a RAW_NAME as the str of its bytes; any other ext as it is (the
    entry's checks then refuse it)."""
    if code == RAW_NAME:
        return data.decode("utf-8", "surrogateescape")
    return msgpack.ExtType(code, data)


def raw_names(value: Any) -> Any:
    """``value`` with every str that is not UTF-8 replaced by its RAW_NAME ext (inside lists,
    tuples and dicts too). A str holding surrogates that stand for no byte cannot be stored
    (UnicodeEncodeError), nor one whose escaped bytes are UTF-8 (ValueError): the engine refuses
    such names before they reach an entry."""
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            if raw.decode("utf-8", "surrogateescape") != value:
                # Escapes of bytes that are UTF-8 after all: replay would read back another
                # str than the one applied (the engine refuses such names: engine/names.py).
                raise ValueError(f"{value!r} is not a name's canonical form") from None
            return msgpack.ExtType(RAW_NAME, raw)
        return value
    if isinstance(value, list | tuple):
        return [raw_names(v) for v in value]
    if isinstance(value, dict):
        return {raw_names(k): raw_names(v) for k, v in value.items()}
    return value


def packer() -> Callable[[Any], bytes]:
    """A msgpack ``pack`` (bin type for bytes) that writes names that are not UTF-8 as RAW_NAME."""
    pack = msgpack.Packer(use_bin_type=True).pack

    def pack_names(value: Any) -> bytes:
        try:
            return pack(value)
        except UnicodeEncodeError:  # the packer resets itself: nothing half-written is kept
            return pack(raw_names(value))

    return pack_names
