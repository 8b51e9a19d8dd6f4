"""What a check reports: one finding per rule and object."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    title: str
    object: str
    message: str
    why: str
    fix: str
    waived: str | None = None  # the reason, when the model waives it

    @property
    def counts(self) -> bool:
        """An unwaived error: makes ``rlskit check`` exit 1."""
        return self.severity == "error" and self.waived is None
