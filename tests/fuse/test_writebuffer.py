"""The write buffer against a plain bytearray model: random writes, truncates and reads over
old content that is copied in block by block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fuse.writebuffer import WriteBuffer

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 80), st.binary(min_size=1, max_size=20)),
        st.tuples(st.just("truncate"), st.integers(0, 90), st.just(b"")),
        st.tuples(st.just("read"), st.integers(0, 80), st.integers(0, 30)),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(old=st.binary(max_size=60), block_size=st.sampled_from([4, 8, 16]), steps=ops)
def test_buffer_matches_model(old: bytes, block_size: int, steps: list[tuple]) -> None:
    model = bytearray(old)
    reads: list[tuple[int, int]] = []

    def read_old(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        assert offset % block_size == 0 and length <= block_size  # whole blocks only
        return old[offset : offset + length]

    buffer = WriteBuffer("/tmp", 1, len(old), block_size, read_old)
    try:
        for kind, offset, arg in steps:
            if kind == "write":
                if offset > len(model):
                    model.extend(b"\0" * (offset - len(model)))
                model[offset : offset + len(arg)] = arg
                assert buffer.write(offset, arg) == len(arg)
            elif kind == "truncate":
                del model[offset:]
                model.extend(b"\0" * (offset - len(model)))
                buffer.truncate(offset)
            else:
                assert buffer.read(offset, arg) == bytes(model[offset : offset + arg])
            assert buffer.size == len(model)
        with buffer.lock:
            assert buffer.content().read() == bytes(model)
        assert len(reads) == len(set(reads))  # an old block is copied in at most once
    finally:
        buffer.close()


def test_small_change_to_large_file_copies_one_block() -> None:
    old = bytes(range(256)) * 64  # 16 KiB in 4 KiB blocks
    fetched: list[int] = []

    def read_old(offset: int, length: int) -> bytes:
        fetched.append(offset)
        return old[offset : offset + length]

    buffer = WriteBuffer("/tmp", 1, len(old), 4096, read_old)
    try:
        buffer.write(5000, b"xyz")
        assert fetched == [4096]
        buffer.write(8192, b"q" * 4096)  # covers a whole block: nothing to copy
        assert fetched == [4096]
    finally:
        buffer.close()
