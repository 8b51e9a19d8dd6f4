"""What is reachable from some starting points by repeated steps (role inheritance, policies
reading tables, relations read or referenced)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

__all__ = ["reachable"]

T = TypeVar("T", bound=Hashable)


def reachable(start: Iterable[T], step: Callable[[T], Iterable[T]]) -> set[T]:
    """`start` and everything `step` leads to from it, at any remove."""
    seen: set[T] = set()
    todo = list(start)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += step(current)
    return seen
