"""The namespace model alone: the state machines check the engine against it, so check that it
is not vacuously agreeing by a few outcomes it must predict on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine import errors as err
from tests.models.namespace_model import (
    ROOT,
    Model,
    Refused,
    m_complete,
    m_create,
    m_delete,
    m_mkdir,
    m_rename,
    m_symlink,
)

Case = tuple[Callable[..., Any], tuple[Any, ...], type[err.ShoalError]]


def assert_refused(model: Model, cases: list[Case]) -> None:
    """Each call of the model is refused with the error the engine must raise."""
    for fn, args, error in cases:
        with pytest.raises(Refused) as info:
            fn(model, *args)
        assert info.value.error is error


def test_model_refuses_like_the_engine_on_a_small_script() -> None:
    m: Model = {"/": ROOT}
    (m,) = m_mkdir(m, "/a", 0o755, 0, False)
    m = m_create(m, "/a/f", 0o644, 0)
    assert_refused(
        m,
        [
            (m_mkdir, ("/a/f/x", 0o755, 0, True), err.NotADirectory),
            (m_rename, ("/a", "/a/b", False), err.InvalidArgument),
            (m_rename, ("/a", "/a/f", False), err.InvalidArgument),
            (m_rename, ("/a/f", "/a", False), err.IsADirectory),
            (m_delete, ("/a", False), err.NotEmpty),
            (m_create, ("/a/f", 0o644, 0), err.AlreadyExists),
        ],
    )
    assert sorted(m_mkdir(m, "/x/y", 0o700, 1, True)[-1]) == ["/", "/a", "/a/f", "/x", "/x/y"]
    (m,) = m_mkdir(m, "/b", 0o755, 0, False)
    assert_refused(m, [(m_rename, ("/b", "/a/f", False), err.NotADirectory)])
    moved = m_rename(m, "/a", "/b", False)
    assert moved is not None and sorted(moved) == ["/", "/b", "/b/f"]


def test_refused_operations_are_predicted_by_the_model() -> None:
    m: Model = {"/": ROOT}
    (m,) = m_mkdir(m, "/a", 0o755, 0, False)
    assert_refused(
        m,
        [
            (m_create, ("/a", 0o644, 0), err.AlreadyExists),
            (m_delete, ("/b", False), err.NotFound),
            (m_symlink, ("/s", "", 0), err.InvalidArgument),
            (m_complete, ("/a", 1, 4096), err.IsADirectory),
        ],
    )
