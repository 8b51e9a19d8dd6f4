"""Review by meaning: what a change does to who can do what, cell by cell.

A change is read off the access matrix: for every actor × relation × command, what the
database does now (verify's observed outcomes) and what the model promises (its expected
ones), each summed up as a `Promise`. A cell whose promise grows — nothing to some rows, a
user's own rows to the whole tenant, the tenant to beyond it — is a widening (someone
gains access: dangerous); one that shrinks is a narrowing (someone loses access: breaking);
one that changes among the ways of seeing nothing (denied, refused, no rows) is neutral.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..textenum import TextEnum
from .matrix import Matrix
from .outcome import Promise

__all__ = ["CellChange", "Kind", "review"]

_REACH = {Promise.DENIED: 0, Promise.REFUSED: 0, Promise.NO_ROWS: 0, Promise.OWN_ROWS: 1,
          Promise.OWN_TENANT: 2, Promise.BEYOND: 3}


class Kind(TextEnum):
    WIDENING = "widening"  # someone gains access: dangerous
    NARROWING = "narrowing"  # someone loses access: breaking
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class CellChange:
    actor: str
    relation: str
    command: str
    before: Promise
    after: Promise

    @property
    def kind(self) -> Kind:
        grows = _REACH[self.after] - _REACH[self.before]
        return Kind.WIDENING if grows > 0 else Kind.NARROWING if grows < 0 else Kind.NEUTRAL

    def __str__(self) -> str:
        return (f"{self.actor}: {self.command} on {self.relation}: {self.before} → "
                f"{self.after} ({self.kind})")


def review(matrix: Matrix) -> list[CellChange]:
    """The cells whose promise differs from what the database does, widenings first."""
    changes = [CellChange(c.actor, c.relation, c.command, c.observed, c.promise)
               for c in matrix.cells if c.observed != c.promise]
    order = {Kind.WIDENING: 0, Kind.NARROWING: 1, Kind.NEUTRAL: 2}
    return sorted(changes, key=lambda change: order[change.kind])
