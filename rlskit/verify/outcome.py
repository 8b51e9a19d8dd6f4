"""What a probe of the access matrix did, or what the model says it should do, as values.

An `Outcome` is rows touched (by their labels: ``A1``, ``B2``…), denied (no privilege),
refused (a row-level security check), inserted, or an error by SQLSTATE. An INSERT probe
tries a row of the context's own tenant and one of the other's: an `Insertion` holds both.
A cell's `Promise` sums its expected outcomes over the contexts, in words a reviewer reads.
They print as the words the reports show (``rows A1 B2``, ``own inserted, other refused``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..textenum import TextEnum

__all__ = ["DENIED", "INSERTED", "REFUSED", "Insertion", "Outcome", "Promise", "Result",
           "Verdict", "promise"]


class Verdict(TextEnum):
    ROWS = "rows"
    DENIED = "denied"  # no privilege on the relation or column
    REFUSED = "refused"  # a row-level security check said no
    INSERTED = "inserted"
    ERROR = "error"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    rows: frozenset[str] = frozenset()  # with ROWS: the labels of the rows touched
    sqlstate: str = ""  # with ERROR

    @classmethod
    def of_rows(cls, labels: Iterable[str]) -> Outcome:
        return cls(Verdict.ROWS, frozenset(labels))

    @classmethod
    def error(cls, sqlstate: str) -> Outcome:
        return cls(Verdict.ERROR, sqlstate=sqlstate)

    def __str__(self) -> str:
        if self.verdict is Verdict.ROWS:
            return "rows " + " ".join(sorted(self.rows)) if self.rows else "no rows"
        if self.verdict is Verdict.ERROR:
            return f"error {self.sqlstate}"
        return str(self.verdict)


DENIED = Outcome(Verdict.DENIED)
REFUSED = Outcome(Verdict.REFUSED)
INSERTED = Outcome(Verdict.INSERTED)


@dataclass(frozen=True)
class Insertion:
    """An INSERT probe: a row of the context's own tenant, then one of the other's."""
    own: Outcome
    other: Outcome

    def __str__(self) -> str:
        if self.own == self.other == DENIED:
            return "denied"
        return f"own {self.own}, other {self.other}"


Result = Outcome | Insertion


class Promise(TextEnum):
    """What a cell promises, from nothing to more than the caller's tenant."""
    DENIED = "denied"
    REFUSED = "refused"
    NO_ROWS = "no rows"
    OWN_ROWS = "own rows"  # some of its tenant's rows (e.g. only its own membership)
    OWN_TENANT = "own tenant"
    BEYOND = "beyond own tenant"


def promise(expected: dict[str, Result], seeded: Iterable[str],
            tenants: tuple[str, ...]) -> Promise:
    """Sum a cell's expected outcomes by context (`tenants` and ``none``); `seeded` are
    the labels of the relation's rows, which start with their tenant's label."""
    if all(e in (DENIED, Insertion(DENIED, DENIED)) for e in expected.values()):
        return Promise.DENIED
    first = expected[tenants[0]]
    if isinstance(first, Insertion):
        if first.other == INSERTED:
            return Promise.BEYOND
        return Promise.OWN_TENANT if first.own == INSERTED else Promise.REFUSED
    seen = {c: e.rows if isinstance(e, Outcome) else frozenset() for c, e in expected.items()}
    if not any(seen.values()):
        return Promise.NO_ROWS
    if seen["none"] or any(label[0] != c for c in tenants for label in seen[c]):
        return Promise.BEYOND
    labels = set(seeded)
    whole = all(seen[c] >= {label for label in labels if label[0] == c} for c in tenants)
    return Promise.OWN_TENANT if whole else Promise.OWN_ROWS
