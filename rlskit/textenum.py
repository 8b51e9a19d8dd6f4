"""`TextEnum`: a ``str`` enum that prints as its value (the standard `StrEnum` needs
Python 3.11), so it reads and serialises as the plain word it replaces."""

from __future__ import annotations

from enum import Enum

__all__ = ["TextEnum"]


class TextEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __hash__(self) -> int:  # as the word's, on every Python version
        return hash(str(self.value))
