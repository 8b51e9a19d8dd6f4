"""What a check reports: one finding per rule and object."""

from __future__ import annotations

from dataclasses import dataclass

from ..textenum import TextEnum

__all__ = ["Finding", "Severity"]


class Severity(TextEnum):
    ERROR = "error"  # makes `rlskit check` exit 1, unless waived
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    title: str
    object: str
    message: str
    why: str
    fix: str
    waived: str | None = None  # the reason, when the model waives it

    @property
    def counts(self) -> bool:
        """An unwaived error: makes ``rlskit check`` exit 1."""
        return self.severity is Severity.ERROR and self.waived is None
