"""Every kind of object rlskit manages, in creation order: the one table the target, the
generated SQL, the diff and the migrations read.

Adding a kind: a class in `objects`, a row here, its DDL in `ddl` (create, drop, and update
or alter when it changes in place), where the catalog reads it in `catalog`, how the target
derives it in `target`, and its ops in `migrations.ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import objects as o

__all__ = ["KINDS", "NOUNS", "Kind", "kind_of", "position"]


@dataclass(frozen=True)
class Kind:
    type: type
    noun: str  # how revision summaries count it: "+3 policies, -1 grant"
    section: str  # its heading in the generated SQL
    plural: str = ""

    @property
    def nouns(self) -> str:
        return self.plural or self.noun + "s"


KINDS: tuple[Kind, ...] = (
    Kind(o.Schema, "schema", "Helper schema"),
    Kind(o.ContextSeal, "context seal",
         "Sealed context: key table and verifier (keys come from `rlskit key rotate`)"),
    Kind(o.HelperFunction, "helper",
         "Request-context helpers (fail closed: NULL when unset or empty)"),
    Kind(o.AccessStore, "access store", "Data products: who holds which role (grants as data)"),
    Kind(o.DbRole, "role", "Roles (cluster-wide: created only when missing)"),
    Kind(o.Membership, "membership", "Role hierarchy and authenticator memberships"),
    Kind(o.SchemaUsage, "grant", "Schema usage"),
    Kind(o.FunctionGrant, "grant", "Who may run rlskit's functions (never PUBLIC)"),
    Kind(o.TableGrant, "grant", "Table and view privileges"),
    Kind(o.TableOwner, "owner", "Table owner (NOLOGIN, no BYPASSRLS: FORCE binds it)"),
    Kind(o.Distribution, "distributed table",
         "Citus: tables sharded by tenant, and reference tables on every node"),
    Kind(o.RowSecurity, "row security", "Row-level security", plural="row security"),
    Kind(o.DbPolicy, "policy", "Policies", plural="policies"),
    Kind(o.DbView, "view", "Restricted views"),
)

_BY_TYPE = {kind.type: kind for kind in KINDS}
_POSITION = {kind.type: i for i, kind in enumerate(KINDS)}
NOUNS: tuple[Kind, ...] = tuple({k.noun: k for k in KINDS}.values())  # one per noun, in order


def kind_of(obj: object) -> Kind:
    """The kind of an object (or of an object type)."""
    return _BY_TYPE[obj if isinstance(obj, type) else type(obj)]


def position(obj: object) -> int:
    """Where the kind of `obj` comes in creation order."""
    return _POSITION[obj if isinstance(obj, type) else type(obj)]
