"""What the lint rules look at: one snapshot of the security-relevant state of a database.

A snapshot comes from a live catalog (`rlskit.checks.live`) or from a model alone
(`from_model`: what the model's migrations would create). Where a fact is unknown — the
owner of a table, or its indexes when the model names the table without an SQLAlchemy
definition — it is None and the rules that need it stay silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import objects as o
from ..ddl import create
from ..model import Model
from ..reach import reachable
from ..render import render
from ..sqltext import relations_read
from ..target import target_objects

__all__ = ["Facts", "FunctionFacts", "Grant", "Relation", "RoleFacts", "Scope",
           "SessionDefault", "from_model"]

PUBLIC = "PUBLIC"


@dataclass(frozen=True)
class Relation:
    """A table, a partitioned table or a view."""

    schema: str
    name: str
    kind: str  # "table", "view", "materialized view" or "foreign table"
    owner: str | None = None
    rls: bool = False
    force: bool = False
    columns: frozenset[str] | None = None
    indexed: frozenset[str] | None = None  # leading columns of its indexes
    parent: str | None = None  # partitions: the partitioned table, qualified
    security_invoker: bool = False  # views
    reads: tuple[str, ...] = ()  # (materialized) views: the relations they read, qualified
    nullable: frozenset[str] | None = None  # tables: columns that allow NULL
    unique_keys: tuple[tuple[str, ...], ...] | None = None  # unique keys but the primary

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Grant:
    relation: str  # qualified
    grantee: str  # a role name, or PUBLIC
    privilege: str
    column: str | None = None


@dataclass(frozen=True)
class RoleFacts:
    name: str
    superuser: bool = False
    bypassrls: bool = False
    createrole: bool = False
    login: bool = False
    members: int | None = None  # roles that are members of it (live databases only)


@dataclass(frozen=True)
class FunctionFacts:
    schema: str
    name: str
    arguments: str
    security_definer: bool
    fixed_search_path: bool
    definition: str | None = None  # as pg_get_functiondef prints it (helpers schema only)
    public_execute: bool = False  # PUBLIC may EXECUTE it
    search_path: str | None = None  # its fixed search_path, as proconfig holds it
    leakproof: bool = False
    executable_by: tuple[str, ...] = ()  # the application roles that may EXECUTE it

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}({self.arguments})"


@dataclass(frozen=True)
class SessionDefault:
    """``ALTER ROLE … SET`` / ``ALTER DATABASE … SET`` of a context setting."""

    setting: str
    value: str
    role: str | None
    database: str | None

    @property
    def target(self) -> str:
        if self.role and self.database:
            return f"role {self.role} in database {self.database}"
        return f"role {self.role}" if self.role else f"database {self.database}"


@dataclass(frozen=True)
class Scope:
    """What the model says about the database: which roles are the application's, which
    column names mark tenant rows, where the helpers live."""

    app_roles: frozenset[str]  # the model's roles and authenticators, database names
    tenant_columns: frozenset[str]
    tenant_tables: frozenset[str]  # qualified
    managed: frozenset[str]  # relations the model declares, qualified
    helpers_schema: str
    settings_prefix: str

    @classmethod
    def of(cls, model: Model) -> Scope:
        tenant = [t for t in model.tables.values() if t.tenant_column]
        columns = {t.tenant_column for t in tenant
                   if t.tenant_column is not None and t.tenant_column != "id"}
        roles = {model.role_name(r) for r in model.roles.values()}
        return cls(
            app_roles=frozenset(roles),
            tenant_columns=frozenset(columns or {"tenant_id"}),
            tenant_tables=frozenset(t.qualified for t in tenant),
            managed=frozenset(f"{s}.{n}" for s, n in (*model.tables, *model.views)),
            helpers_schema=model.helpers_schema,
            settings_prefix=model.settings_prefix,
        )


@dataclass
class Facts:
    scope: Scope
    relations: dict[str, Relation]
    policies: list[o.DbPolicy]
    grants: list[Grant]
    roles: dict[str, RoleFacts] = field(default_factory=dict)
    # role -> every role whose privileges it uses (inheritance), itself included
    privileges_of: dict[str, frozenset[str]] = field(default_factory=dict)
    # role -> every role it can become (SET ROLE) or use, itself included
    member_of: dict[str, frozenset[str]] = field(default_factory=dict)
    functions: list[FunctionFacts] = field(default_factory=list)
    defaults: list[SessionDefault] = field(default_factory=list)
    # (relation, role, sequence): the role may INSERT but not use the serial's sequence
    blocked_inserts: list[tuple[str, str, str]] = field(default_factory=list)
    exposed_schemas: frozenset[str] = frozenset()
    public_writable: frozenset[str] = frozenset()  # schemas where PUBLIC may CREATE
    server_version: int | None = None  # server_version_num (live databases only)
    # (table, its first referencing column, the referenced table) per foreign key
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)
    # Citus: (table, shard, the shard's policies, the table's), each "name:permissive:cmd,…"
    shard_policies: list[tuple[str, str, str, str]] = field(default_factory=list)
    citus: bool = False  # the database holds the Citus extension
    # Citus: functions of the helpers schema Citus does not keep on the workers
    undistributed_helpers: tuple[str, ...] = ()

    def is_tenant_table(self, rel: Relation) -> bool:
        return rel.qualified in self.scope.tenant_tables or bool(
            rel.columns and rel.columns & self.scope.tenant_columns)

    def is_protected(self, rel: Relation) -> bool:
        """Rows this relation holds are meant to be filtered by RLS."""
        return rel.kind == "table" and (rel.rls or self.is_tenant_table(rel)
                                        or rel.qualified in self.scope.managed)

    def uses(self, role: str) -> frozenset[str]:
        return self.privileges_of.get(role, frozenset({role}))

    def can_become(self, role: str) -> frozenset[str]:
        return self.member_of.get(role, self.uses(role))


def _indexed(definition: object) -> frozenset[str] | None:
    """Leading columns of the indexes, primary key and unique constraints of an SQLAlchemy
    Table; None without a definition."""
    if definition is None:
        return None
    leading = set()
    for index in getattr(definition, "indexes", ()):
        cols = list(index.columns)
        if cols:
            leading.add(cols[0].name)
    for constraint in getattr(definition, "constraints", ()):
        cols = list(getattr(constraint, "columns", ()))
        if cols and type(constraint).__name__ in ("PrimaryKeyConstraint", "UniqueConstraint"):
            leading.add(cols[0].name)
    leading |= {c.name for c in getattr(definition, "columns", ())
                if c.index or c.unique}
    return frozenset(leading)


def _nullable(definition: object) -> frozenset[str] | None:
    """The columns of an SQLAlchemy Table that allow NULL; None without a definition."""
    if definition is None:
        return None
    return frozenset(c.name for c in getattr(definition, "columns", ()) if c.nullable)


def _unique_keys(definition: object) -> tuple[tuple[str, ...], ...] | None:
    """The unique constraints and unique indexes of an SQLAlchemy Table (its primary key
    aside); None without a definition."""
    if definition is None:
        return None
    keys = [tuple(c.name for c in constraint.columns)
            for constraint in getattr(definition, "constraints", ())
            if type(constraint).__name__ == "UniqueConstraint"]
    keys += [tuple(c.name for c in index.columns)
             for index in getattr(definition, "indexes", ()) if index.unique]
    keys += [(c.name,) for c in getattr(definition, "columns", ())
             if c.unique and not c.primary_key and (c.name,) not in keys]
    return tuple(sorted(set(keys)))


def _closure(parents: dict[str, set[str]], roles: Iterable[str]) -> dict[str, frozenset[str]]:
    return {role: frozenset(reachable([role], lambda r: parents.get(r, ()))) for role in roles}


def from_model(model: Model, pg_version: int) -> Facts:
    """The facts the model's generated SQL would establish on `pg_version`."""
    objects = target_objects(model, pg_version)
    scope = Scope.of(model)
    relations: dict[str, Relation] = {}
    for table in model.tables.values():
        relations[table.qualified] = Relation(
            table.schema, table.name, "table", rls=table.rls, force=table.rls,
            columns=table.columns, indexed=_indexed(table.definition),
            nullable=_nullable(table.definition), unique_keys=_unique_keys(table.definition))
    for obj in objects:
        if isinstance(obj, o.DbView):
            relations[f"{obj.schema}.{obj.name}"] = Relation(
                obj.schema, obj.name, "view",
                security_invoker=("security_invoker", "true") in obj.options,
                reads=relations_read(obj.query, model.schema))
    grants = [Grant(f"{g.schema}.{g.table}", g.role, p.name, column)
              for g in objects if isinstance(g, o.TableGrant)
              for p in g.privileges for column in (p.columns or (None,))]
    inherits: dict[str, set[str]] = {}
    becomes: dict[str, set[str]] = {}
    for m in objects:
        if isinstance(m, o.Membership):
            becomes.setdefault(m.member, set()).add(m.role)
            if m.inherit:
                inherits.setdefault(m.member, set()).add(m.role)
    roles = [r.name for r in objects if isinstance(r, o.DbRole)]
    return Facts(
        scope=scope,
        relations=relations,
        policies=[p for p in objects if isinstance(p, o.DbPolicy)],
        grants=grants,
        roles={r.name: RoleFacts(r.name, bypassrls=r.bypassrls)
               for r in objects if isinstance(r, o.DbRole)},
        privileges_of=_closure(inherits, roles),
        member_of=_closure({r: becomes.get(r, set()) | inherits.get(r, set())
                            for r in roles}, roles),
        exposed_schemas=frozenset(u.schema for u in objects if isinstance(u, o.SchemaUsage)),
        functions=[FunctionFacts(f.schema, f.name, f.arguments, False, False,
                                 render(create(f, pg_version)[0]))
                   for f in objects if isinstance(f, o.HelperFunction)],
    )
