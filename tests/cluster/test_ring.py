"""The hash ring: a worker joining or leaving moves about 1/N of the files, and only those."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cluster.ring import HashRing

PATHS = [f"train/n{c:05d}/img_{i:04d}.JPEG" for c in range(40) for i in range(50)]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=8),
    leaving=st.integers(min_value=0, max_value=7),
    tag=st.text(alphabet="abcdef0123456789", min_size=1, max_size=6),
)
def test_one_of_n_workers_leaving_moves_about_one_nth(n: int, leaving: int, tag: str) -> None:
    workers = [f"10.0.0.{i}:7070-{tag}" for i in range(n)]
    gone = workers[leaving % n]
    before = HashRing(workers)
    after = HashRing([w for w in workers if w != gone])
    moved = [p for p in PATHS if before.owner(p) != after.owner(p)]
    # Only the leaver's files move, each to the worker that was next for it on the ring.
    assert all(before.owner(p) == gone for p in moved)
    assert all(after.owner(p) == before.owners(p, 2)[1] for p in moved)
    assert len(moved) == sum(1 for p in PATHS if before.owner(p) == gone)
    share = len(moved) / len(PATHS)
    assert 0.5 / n <= share <= 1.6 / n, f"{share:.3f} of the files moved, not about 1/{n}"


@settings(max_examples=30, deadline=None)
@given(n=st.integers(min_value=1, max_value=7), tag=st.text(alphabet="xyz", max_size=4))
def test_a_worker_joining_takes_about_one_nth_from_the_others(n: int, tag: str) -> None:
    workers = [f"w{i}{tag}" for i in range(n)]
    before, after = HashRing(workers), HashRing([*workers, f"new{tag}"])
    moved = [p for p in PATHS if before.owner(p) != after.owner(p)]
    assert all(after.owner(p) == f"new{tag}" for p in moved)
    share = len(moved) / len(PATHS)
    assert 0.5 / (n + 1) <= share <= 1.6 / (n + 1)


def test_owners_are_distinct_and_start_with_the_owner() -> None:
    ring = HashRing(["a", "b", "c"])
    for path in PATHS[:200]:
        owners = ring.owners(path)
        assert sorted(owners) == ["a", "b", "c"] and owners[0] == ring.owner(path)
    assert HashRing([]).owners("x") == [] and HashRing([]).owner("x") is None


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=8),
    tag=st.text(alphabet="abcdef0123456789", min_size=1, max_size=6),
)
def test_ring_shares_sum_to_one_and_match_the_paths_each_owns(n: int, tag: str) -> None:
    workers = [f"w{i}-{tag}" for i in range(n)]
    ring = HashRing(workers)
    shares = ring.shares()
    assert sorted(shares) == sorted(workers)
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    for worker, share in shares.items():  # the fraction of the circle is the fraction of paths
        owned = sum(1 for p in PATHS if ring.owner(p) == worker) / len(PATHS)
        assert abs(owned - share) < 0.05, (worker, owned, share)
