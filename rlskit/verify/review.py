"""Review by meaning: what a change does to who can do what, cell by cell.

A state of the database — as it is, as the model would make it, as a revision leaves it —
is read off the access matrix as its `Access`: for every actor × relation × command, what
that state lets the actor do, summed up as a `Promise`. Two states differ in cells. A cell
whose promise grows — nothing to some rows, a user's own rows to the whole tenant, the
tenant to beyond it — is a widening (someone gains access: dangerous); one that shrinks is
a narrowing (someone loses access: breaking); one that changes among the ways of seeing
nothing (denied, refused, no rows) is neutral. A cell one state lacks (a role or relation
that does not exist there) is denied in it.

A widening can be acknowledged where it is introduced, by a comment in the revision:
``# rlskit: widens member DELETE membership — members may remove anyone``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from .. import objects as o
from ..diff import Change
from ..errors import ConfigError
from ..model import ROW_COMMANDS
from ..textenum import TextEnum
from .matrix import Matrix
from .outcome import Promise

__all__ = ["Access", "Acknowledgement", "CellChange", "Kind", "acknowledge",
           "acknowledgements", "affected", "compare", "observed", "promised", "review"]

_REACH = {Promise.DENIED: 0, Promise.REFUSED: 0, Promise.NO_ROWS: 0, Promise.OWN_ROWS: 1,
          Promise.OWN_TENANT: 2, Promise.BEYOND: 3}

Access = dict[tuple[str, str, str], Promise]
"""A state's access matrix: (actor, relation, command) → what the actor may do there."""


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
    acknowledged: str | None = None  # the reason a revision gives for this widening

    @property
    def kind(self) -> Kind:
        grows = _REACH[self.after] - _REACH[self.before]
        return Kind.WIDENING if grows > 0 else Kind.NARROWING if grows < 0 else Kind.NEUTRAL

    @property
    def acknowledgement(self) -> str:
        """The line that acknowledges this change in a revision."""
        return f"# rlskit: widens {self.actor} {self.command} {self.relation} — <reason>"

    def __str__(self) -> str:
        note = f", acknowledged: {self.acknowledged}" if self.acknowledged else ""
        return (f"{self.actor}: {self.command} on {self.relation}: {self.before} → "
                f"{self.after} ({self.kind}{note})")


def observed(matrix: Matrix) -> Access:
    """What the database the matrix ran on does."""
    return {(c.actor, c.relation, c.command): c.observed for c in matrix.cells}


def promised(matrix: Matrix) -> Access:
    """What the model the matrix ran with promises."""
    return {(c.actor, c.relation, c.command): c.promise for c in matrix.cells}


def compare(before: Access, after: Access) -> list[CellChange]:
    """The cells whose promise differs between two states, widenings first, each kind in
    the order of the states' cells."""
    cells = list(before) + [cell for cell in after if cell not in before]
    changes = [CellChange(*cell, before.get(cell, Promise.DENIED),
                          after.get(cell, Promise.DENIED)) for cell in cells]
    return sorted((c for c in changes if c.before != c.after),
                  key=lambda change: list(Kind).index(change.kind))  # as declared


_OF_A_TABLE = (o.TableGrant, o.TableOwner, o.RowSecurity, o.Distribution, o.DbPolicy)


def affected(changes: Iterable[Change]) -> set[str] | None:
    """The relations whose own objects (grants, owner, row security, policies, view) the
    changes touch; None when one touches what every relation depends on (a role, a
    membership, a helper…). Relations that read these are found by the matrix."""
    out = set()
    for change in changes:
        obj = change.obj
        if isinstance(obj, _OF_A_TABLE):
            out.add(f"{obj.schema}.{obj.table}")
        elif isinstance(obj, o.DbView):
            out.add(f"{obj.schema}.{obj.name}")
        else:
            return None
    return out


def review(matrix: Matrix) -> list[CellChange]:
    """The cells whose promise differs from what the database does, widenings first."""
    return compare(observed(matrix), promised(matrix))


@dataclass(frozen=True)
class Acknowledgement:
    actor: str
    command: str
    relation: str  # as written: qualified, or a table name of any schema
    reason: str
    where: str  # file:line

    def covers(self, change: CellChange) -> bool:
        return (change.kind is Kind.WIDENING and change.actor == self.actor
                and change.command == self.command
                and self.relation in (change.relation, change.relation.partition(".")[2]))


_ACKNOWLEDGED = re.compile(r"#\s*rlskit:\s*widens\b(?P<rest>.*)$")
_PARTS = re.compile(r"\s*(?P<actor>\S+)\s+(?P<command>\S+)\s+(?P<relation>\S+)"
                    r"\s*(?:—|--|-|:)\s*(?P<reason>\S.*?)\s*$")


def acknowledgements(text: str, where: str) -> list[Acknowledgement]:
    """The ``# rlskit: widens ACTOR COMMAND RELATION — reason`` lines of a revision's
    source (`where` names the file); a malformed one, or one without a reason, is an
    error naming its line."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        marked = _ACKNOWLEDGED.search(line)
        if marked is None:
            continue
        parts = _PARTS.fullmatch(marked["rest"])
        if parts is None or parts["command"].upper() not in ROW_COMMANDS:
            raise ConfigError(f"{where}:{number}: write an acknowledgement as `# rlskit: "
                              f"widens ACTOR COMMAND RELATION — reason`, not {line.strip()!r}")
        found.append(Acknowledgement(parts["actor"], parts["command"].upper(),
                                     parts["relation"], parts["reason"],
                                     f"{where}:{number}"))
    return found


def acknowledge(changes: Iterable[CellChange], given: Iterable[Acknowledgement]
                ) -> list[CellChange]:
    """`changes` with each widening an acknowledgement covers marked with its reason."""
    given = list(given)
    return [next((replace(c, acknowledged=a.reason) for a in given if a.covers(c)), c)
            for c in changes]
