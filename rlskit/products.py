"""Data products: tables whose readers, writers and owner are roles named after the
product, held by whoever the owner decides (see `rlskit.access`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ModelError
from .tables import table_identity

if TYPE_CHECKING:
    from .model import Model, Policy, Role, Table, View

__all__ = ["DataProduct", "declare_product"]

KINDS = ("analyst", "engineer", "owner")


@dataclass
class DataProduct:
    """A data product: its tables and three roles named ``<product>_analyst`` (reads),
    ``<product>_engineer`` (reads and writes) and ``<product>_owner`` (reads, writes, and
    grants the analyst and engineer roles to others). The roles start empty: who holds
    them is data, not code."""

    name: str
    schema: str
    tables: list[Table]
    analyst: Role
    engineer: Role
    owner: Role
    model: Model = field(repr=False, compare=False)
    ports: list[View] = field(default_factory=list)

    def output_port(self, name: str, *, query: str,
                    to: Iterable[Role | str] = ("analyst",)) -> View:
        """A restricted view over the product's tables, in its schema, readable by the
        product roles `to` (e.g. an aggregate for analysts). It runs with the reader's
        rights (security_invoker), so row filters and grants still apply."""
        roles = [getattr(self, self._kind(r)) for r in to]
        if not roles:
            raise ModelError(f"output port {name!r} of data product {self.name!r} needs at "
                             "least one role")
        view = self.model.view(name, query=query, schema=self.schema,
                               grants=dict.fromkeys(roles, "SELECT"))
        self.ports.append(view)
        return view

    def row_filter(self, role: Role | str, table: Any, using: str) -> Policy:
        """Limit the rows `role` sees (and, for writers, touches) in one of the product's
        tables, e.g. ``row_filter(product.analyst, Orders, "region = 'EU'")``."""
        target = self._table(table)
        kind = self._kind(role)
        name = f"{kind}_access"
        default = next(p for p in target.policies if p.name == name)
        target.policies.remove(default)
        return target.policy(name, command=default.command, to=default.to, using=using)

    def role(self, kind: str) -> Role:
        """The product's `kind` role: ``analyst``, ``engineer`` or ``owner``."""
        return getattr(self, self._kind(kind))

    def _kind(self, role: Role | str) -> str:
        for kind in ("analyst", "engineer", "owner"):
            own = getattr(self, kind)
            if role is own or role == own.name or role == kind:
                return kind
        raise ModelError(f"data product {self.name!r} has no role {role!r} (analyst, "
                         "engineer, owner)")

    def _table(self, table: Any) -> Table:
        name = table if isinstance(table, str) else table_identity(table, None)[0]
        for t in self.tables:
            if t.name == name:
                return t
        raise ModelError(f"data product {self.name!r} has no table {name!r}")


def declare_product(model: Model, name: str, tables: list[Any], schema: str | None
                    ) -> DataProduct:
    """The product's roles and tables in `model`: RLS and one policy per product role;
    analysts read, engineers and the owner read and write, the owner administers the
    analyst and engineer roles."""
    if not tables:
        raise ModelError(f"data product {name!r} needs at least one table")
    roles = {kind: model.role(f"{name}_{kind}") for kind in KINDS}
    declared = []
    for table in tables:
        t = model.table(table, schema=schema, rls=True, grants={
            roles["analyst"]: "SELECT", roles["engineer"]: "ALL", roles["owner"]: "ALL"})
        t.policy("analyst_access", command="SELECT", to=roles["analyst"], using="true")
        for kind in ("engineer", "owner"):
            t.policy(f"{kind}_access", command="ALL", to=roles[kind], using="true")
        declared.append(t)
    model.admin(roles["owner"], of=[roles["analyst"], roles["engineer"]])
    return DataProduct(name, schema or model.schema, declared, roles["analyst"],
                       roles["engineer"], roles["owner"], model=model)
