"""The Python model: request context, roles, tables, policies and restricted views.

Declaring something checks what can be checked on the spot (SQL syntax, privilege names,
commands); `Model.validate` checks the cross references (roles, context names, columns,
the role hierarchy). Nothing here knows about SQL generation, Alembic or the CLI.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pglast import ast

from .claims import Claim, claim_path
from .distribution import Distributed, declare_distribution
from .errors import ModelError
from .products import DataProduct, declare_product
from .sqltext import (
    Privilege,
    SqlTextError,
    deparse,
    parse_privileges,
    parse_query,
    policy_expression,
)
from .tables import table_identity
from .validation import validate

__all__ = ["Assignment", "Claim", "DataProduct", "Model", "Policy", "Role", "Table", "View",
           "Waiver"]

COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "ALL")
ROW_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def row_commands(command: str) -> tuple[str, ...]:
    """The row commands a policy ``FOR command`` covers (ALL: every one of them)."""
    return ROW_COMMANDS if command == "ALL" else (command,)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
VIEW_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
RESERVED_ROLE_NAMES = {"public", "none", "current_user", "session_user", "current_role"}
# Per-role limits: server settings a role's sessions and transactions get (role settings for
# logins, SET LOCAL with every request context for SET ROLE).
LIMITS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
          "idle_session_timeout", "work_mem", "temp_file_limit")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_RULE_ID = re.compile(r"^RLS[0-9]{3}$")
_MAX_NAME = 63


def _check_name(kind: str, name: object, *, table: str | None = None) -> str:
    if not isinstance(name, str) or not name:
        raise ModelError(f"{kind} name must be a non-empty string, got {name!r}", table=table)
    if len(name.encode()) > _MAX_NAME:
        raise ModelError(f"{kind} name {name!r} is longer than {_MAX_NAME} bytes", table=table)
    return name


@dataclass(eq=False)
class Role:
    """A NOLOGIN group role; `inherits` lists the roles whose rights it gets."""

    name: str
    inherits: tuple[Role | str, ...] = ()
    login: bool = False
    limits: tuple[tuple[str, str], ...] = ()  # (setting, value), sorted
    connection_limit: int | None = None

    def __repr__(self) -> str:
        return f"Role({self.name!r})"


@dataclass(frozen=True)
class Assignment:
    """Which callers get `role`: those whose role claim holds `role_claim`, whose group
    claim holds `group`, or whose context values equal every one of `attributes`."""

    role: Role | str
    role_claim: str | None = None
    group: str | None = None
    attributes: tuple[tuple[str, Any], ...] = ()

    @property
    def rule(self) -> str:
        """The rule as people read it, for error messages."""
        if self.role_claim is not None:
            return f"role claim {self.role_claim!r}"
        if self.group is not None:
            return f"group {self.group!r}"
        return " and ".join(f"{name} == {value!r}" for name, value in self.attributes)


@dataclass(frozen=True)
class Waiver:
    """A check rule switched off for one object (and what lies under it), with the reason
    every report shows."""

    rule: str
    on: str
    reason: str


@dataclass(frozen=True)
class Expression:
    """A policy expression: the text the model was given, its tree (helper calls wrapped
    for an InitPlan) and the SQL generated from it."""

    source: str
    tree: ast.Node = field(compare=False, repr=False)
    sql: str


@dataclass
class Policy:
    """A permissive or restrictive rule for one command on one table."""

    name: str
    table: str
    command: str
    to: tuple[Role | str, ...]
    using: Expression | None
    with_check: Expression | None
    permissive: bool = True

    @property
    def source(self) -> str:
        """The expressions as the model gave them (for error messages)."""
        return " / ".join(e.source for e in (self.using, self.with_check) if e is not None)


@dataclass
class Table:
    """A table under the model: tenant tables get RLS, FORCE and tenant isolation."""

    model: Model
    name: str
    schema: str
    tenant_column: str | None
    rls: bool
    columns: frozenset[str] | None
    policies: list[Policy] = field(default_factory=list)
    grants: dict[Role | str, tuple[Privilege, ...]] = field(default_factory=dict)
    definition: Any = None  # the SQLAlchemy Table, when the table was given as one

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def policy(
        self,
        name: str,
        *,
        command: str = "ALL",
        to: Role | str | Iterable[Role | str],
        using: str | None = None,
        with_check: str | None = None,
        permissive: bool = True,
    ) -> Policy:
        """Add a policy; `using` / `with_check` are SQL expressions over the table's columns."""
        _check_name("policy", name, table=self.name)
        if any(p.name == name for p in self.policies):
            raise ModelError("duplicate policy name", table=self.name, policy=name)
        if name in self.model.reserved_policy_names(self):
            raise ModelError(
                "policy name is reserved for a generated policy", table=self.name, policy=name
            )
        cmd = command.upper().strip() if isinstance(command, str) else command
        if cmd not in COMMANDS:
            raise ModelError(
                f"unknown command {command!r}; use one of {', '.join(COMMANDS)}",
                table=self.name,
                policy=name,
            )
        if cmd == "INSERT" and using is not None:
            raise ModelError(
                "an INSERT policy takes with_check, not using", table=self.name, policy=name
            )
        if cmd in ("SELECT", "DELETE") and with_check is not None:
            raise ModelError(
                f"a {cmd} policy takes using, not with_check", table=self.name, policy=name
            )
        if using is None and with_check is None:
            raise ModelError("a policy needs using or with_check", table=self.name, policy=name)
        roles = (to,) if isinstance(to, (Role, str)) else tuple(to)
        if not roles:
            raise ModelError("a policy must name at least one role in to=", table=self.name,
                             policy=name)
        pol = Policy(name=name, table=self.name, command=cmd, to=roles,
                     using=self._expression(name, using),
                     with_check=self._expression(name, with_check),
                     permissive=bool(permissive))
        self.policies.append(pol)
        return pol

    def _expression(self, policy: str, text: str | None) -> Expression | None:
        """An expression parsed, its helper calls wrapped for an InitPlan."""
        if text is None:
            return None
        if not isinstance(text, str):
            raise ModelError(f"expression must be SQL text, got {type(text).__name__}",
                             table=self.name, policy=policy)
        try:
            tree, sql = policy_expression(text, self.model.helpers_schema)
        except SqlTextError as exc:
            raise ModelError(str(exc), table=self.name, policy=policy, text=text) from None
        return Expression(text, tree, sql)


@dataclass
class View:
    """A restricted view: a fixed set of columns, run with the caller's rights."""

    name: str
    schema: str
    query: ast.SelectStmt
    source: str
    columns: tuple[str, ...]
    security_invoker: bool = True
    security_barrier: bool = True
    grants: dict[Role | str, tuple[Privilege, ...]] = field(default_factory=dict)

    @property
    def query_sql(self) -> str:
        return deparse(self.query)


def _limits(role: str, limits: Mapping[str, str | int]) -> tuple[tuple[str, str], ...]:
    if not isinstance(limits, Mapping):
        raise ModelError(f"role {role!r}: limits must be a mapping of setting to value")
    out = []
    for name, value in limits.items():
        if name not in LIMITS:
            raise ModelError(f"role {role!r}: {name!r} is not a per-role limit (use one of "
                             f"{', '.join(LIMITS)})")
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise ModelError(f"role {role!r}: limit {name} must be a value like '30s' or "
                             f"1024, got {value!r}")
        out.append((name, str(value).strip()))
    return tuple(sorted(out))


def _connection_limit(role: str, limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ModelError(f"role {role!r}: connection_limit must be a non-negative integer, "
                         f"got {limit!r}")
    return limit


class Model:
    """The whole access model of one application database."""

    def __init__(
        self,
        schema: str = "public",
        settings_prefix: str = "app",
        role_prefix: str = "",
        helpers_schema: str = "rlskit",
    ) -> None:
        for kind, value in (("schema", schema), ("helpers schema", helpers_schema),
                            ("settings prefix", settings_prefix)):
            _check_name(kind, value)
        if not _NAME.match(settings_prefix):
            raise ModelError(f"settings prefix {settings_prefix!r} must match {_NAME.pattern}")
        if not isinstance(role_prefix, str):
            raise ModelError(f"role prefix must be a string, got {role_prefix!r}")
        self.schema = schema
        self.settings_prefix = settings_prefix
        self.role_prefix = role_prefix
        self.helpers_schema = helpers_schema
        self.claims: dict[str, Claim] = {}
        self.roles: dict[str, Role] = {}
        self.authenticators: dict[str, tuple[Role | str, ...] | None] = {}
        self.tables: dict[tuple[str, str], Table] = {}
        self.views: dict[tuple[str, str], View] = {}
        self.role_claim: tuple[str, ...] = ("role",)
        self.groups_claim: tuple[str, ...] = ("groups",)
        self.anonymous: Role | str | None = None
        self.assignments: list[Assignment] = []
        self.waivers: list[Waiver] = []
        self.admins: list[tuple[Role | str, Role | str]] = []  # (admin, role it grants)
        self.products: dict[str, DataProduct] = {}
        self.distributions: dict[tuple[str, str], Distributed] = {}  # Citus
        self.sealed = True  # see context()
        self.table_owner: str | None = None  # see owner()

    # -- declarations -----------------------------------------------------------------

    def context(self, *, sealed: bool | None = None, **claims: Claim) -> None:
        """Declare request-context values: name -> Claim (setting ``prefix.name``).

        A sealed context (the default) is signed by the runtime and verified by the
        database: SQL inside a request cannot change it. ``sealed=False`` keeps plain
        settings anyone in the session can change (for tools that cannot sign; `rlskit
        check` warns)."""
        if sealed is not None:
            if not isinstance(sealed, bool):
                raise ModelError(f"context(sealed=...) must be True or False, got {sealed!r}")
            self.sealed = sealed
        for name, claim in claims.items():
            if not _NAME.match(name) or name in ("claim", "seal"):
                raise ModelError(f"context name {name!r} must match {_NAME.pattern} "
                                 "and not be 'claim' or 'seal'")
            if not isinstance(claim, Claim):
                raise ModelError(f"context {name!r} must be a Claim, got {claim!r}")
            if name in self.claims:
                raise ModelError(f"context {name!r} is declared twice")
            self.claims[name] = claim

    def role(self, name: str, inherits: Role | str | Iterable[Role | str] = (), *,
             limits: Mapping[str, str | int] | None = None,
             connection_limit: int | None = None) -> Role:
        """Declare a NOLOGIN group role; it gets the rights of the roles it inherits.

        `limits` (e.g. ``{"statement_timeout": "30s", "work_mem": "64MB"}``) become role
        settings and are applied with every request context in this role (or a role
        inheriting it); `connection_limit` caps its sessions."""
        self._new_role_name(name)
        parents = (inherits,) if isinstance(inherits, (Role, str)) else tuple(inherits)
        role = Role(name, parents, limits=_limits(name, limits or {}),
                    connection_limit=_connection_limit(name, connection_limit))
        self.roles[name] = role
        return role

    def owner(self, name: str) -> None:
        """Declare the NOLOGIN role (no BYPASSRLS, nobody's member) that owns every table
        the model declares: the migrations hand the tables to it, so that neither the
        migrating superuser nor an application role owns them (FORCE binds an owner, but
        not a superuser or a BYPASSRLS one)."""
        self._new_role_name(name)
        self.table_owner = name

    @property
    def citus(self) -> bool:
        """A model for a Citus cluster: it declares distributed or reference tables."""
        return bool(self.distributions)

    @property
    def owner_name(self) -> str | None:
        """The database name of the tables' owner role, if the model declares one."""
        return None if self.table_owner is None else self.role_prefix + self.table_owner

    def authenticator(self, name: str, roles: Iterable[Role | str] | None = None) -> Role:
        """Declare the LOGIN NOINHERIT role apps connect as; it may SET ROLE to `roles`
        (every group role when omitted)."""
        self._new_role_name(name)
        role = Role(name, (), login=True)
        self.roles[name] = role
        self.authenticators[name] = None if roles is None else tuple(roles)
        return role

    def callers(
        self,
        *,
        role_claim: str | tuple[str, ...] = "role",
        groups_claim: str | tuple[str, ...] = "groups",
        anonymous: Role | str | None = None,
    ) -> None:
        """Where tokens carry roles and groups (claim paths), and the role of callers
        without a token (none: they are refused)."""
        self.role_claim = claim_path(role_claim, "role claim")
        self.groups_claim = claim_path(groups_claim, "groups claim")
        self.anonymous = anonymous

    def assign(
        self,
        role: Role | str,
        *,
        role_claim: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Assignment:
        """Give `role` to callers whose role claim is `role_claim`, whose groups include
        `group`, or whose context values match `attributes` (e.g. ``{"department":
        "Sales"}``). Exactly one kind of rule per call."""
        given = [k for k, v in (("role_claim", role_claim), ("group", group),
                                ("attributes", attributes)) if v is not None]
        if len(given) != 1:
            raise ModelError(f"assign({role!r}) takes exactly one of role_claim=, group=, "
                             "attributes=")
        for kind, value in (("role claim", role_claim), ("group", group)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ModelError(f"assign({role!r}): {kind} must be a non-empty string")
        if attributes is not None and (not isinstance(attributes, Mapping) or not attributes):
            raise ModelError(f"assign({role!r}): attributes must be a non-empty mapping of "
                             "context name to value")
        rule = Assignment(role, role_claim, group, tuple((attributes or {}).items()))
        self.assignments.append(rule)
        return rule

    def tenant_table(
        self,
        table: Any,
        *,
        tenant_column: str = "tenant_id",
        grants: Mapping[Role | str, str] | None = None,
        schema: str | None = None,
    ) -> Table:
        """A table whose rows belong to tenants: RLS enabled and forced, isolated by
        `tenant_column` = the caller's tenant, plus per-role grants and rules."""
        _check_name("tenant column", tenant_column)
        return self._add_table(table, schema, tenant_column, True, grants or {})

    def table(
        self,
        table: Any,
        *,
        grants: Mapping[Role | str, str] | None = None,
        rls: bool = False,
        schema: str | None = None,
    ) -> Table:
        """A table without a tenant column; with ``rls=True`` only its own policies apply."""
        return self._add_table(table, schema, None, bool(rls), grants or {})

    def view(
        self,
        name: str,
        *,
        query: str,
        grants: Mapping[Role | str, str] | None = None,
        columns: Iterable[str] | None = None,
        schema: str | None = None,
        security_invoker: bool = True,
    ) -> View:
        """A restricted view created WITH (security_invoker, security_barrier)."""
        _check_name("view", name)
        schema = schema or self.schema
        if (schema, name) in self.views or (schema, name) in self.tables:
            raise ModelError(f"view {name!r} clashes with another table or view")
        if not isinstance(query, str):
            raise ModelError(f"view {name!r}: query must be SQL text")
        try:
            parsed = parse_query(query)
        except SqlTextError as exc:
            raise ModelError(f"view {name!r}: {exc}", text=query) from None
        cols = tuple(columns or ())
        for col in cols:
            _check_name("column", col)
        grant_map = self._parse_grants(name, grants or {}, VIEW_PRIVILEGES)
        view = View(name, schema, parsed, query, cols, security_invoker=security_invoker)
        view.grants = grant_map
        self.views[(schema, name)] = view
        return view

    def distribute(self, table: Any, *, by: str = "tenant_id", colocate_with: Any = None,
                   schema: str | None = None) -> Distributed:
        """Shard `table` across a Citus cluster by column `by` (a tenant table by its tenant
        column: each tenant's rows on one node). `colocate_with` names a table distributed
        earlier (default: Citus co-locates tables whose columns have the same type)."""
        found = declare_distribution(table, schema, self.schema, by, colocate_with,
                                     self.distributions)
        self.distributions[(found.schema, found.name)] = found
        return found

    def reference_table(self, table: Any, *, schema: str | None = None) -> Distributed:
        """Copy `table` to every node of a Citus cluster: a small shared table that
        distributed tables reference or join (the tenants themselves)."""
        found = declare_distribution(table, schema, self.schema, None, None,
                                     self.distributions)
        self.distributions[(found.schema, found.name)] = found
        return found

    def admin(self, role: Role | str, of: Iterable[Role | str]) -> None:
        """Let `role` grant each role in `of` to others (a membership WITH ADMIN that
        carries no rights on PostgreSQL 16+; WITH ADMIN OPTION before)."""
        self.admins += [(role, target) for target in of]

    def data_product(self, name: str, *, tables: Iterable[Any], schema: str | None = None,
                     ) -> DataProduct:
        """Declare a data product: its tables get RLS and one policy per product role
        (narrow one with `DataProduct.row_filter`); analysts read, engineers and the owner
        read and write, and the owner may grant the analyst and engineer roles. Role names
        carry the environment's prefix: ``dev_`` + ``sales_analytics_analyst``."""
        _check_name("data product", name)
        if not _NAME.match(name):
            raise ModelError(f"data product name {name!r} must match {_NAME.pattern}")
        if name in self.products:
            raise ModelError(f"data product {name!r} is declared twice")
        product = declare_product(self, name, list(tables), schema)
        self.products[name] = product
        return product

    def waive(self, rule: str, on: str, *, reason: str) -> Waiver:
        """Switch check `rule` (e.g. ``"RLS007"``) off for `on`: a relation
        (``"schema.table"``, which covers its policies too), a policy
        (``"schema.table.policy"``), a role, a function or a database, as the reports name
        them. The reason is required and is printed beside the waived finding."""
        if not isinstance(rule, str) or not _RULE_ID.match(rule):
            raise ModelError(f"waive: rule must be an id like 'RLS007', got {rule!r}")
        if not isinstance(on, str) or not on.strip():
            raise ModelError(f"waive({rule}): 'on' must name an object, got {on!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise ModelError(f"waive({rule}, {on!r}): a reason is required")
        waiver = Waiver(rule, on, reason.strip())
        self.waivers.append(waiver)
        return waiver

    # -- helpers used by declarations -----------------------------------------------------

    def _new_role_name(self, name: str) -> None:
        _check_name("role", self.role_prefix + name if isinstance(name, str) else name)
        if name.lower() in RESERVED_ROLE_NAMES or (self.role_prefix + name).startswith("pg_"):
            raise ModelError(f"role name {name!r} is reserved by PostgreSQL")
        if name in self.roles or name == getattr(self, "table_owner", None):
            raise ModelError(f"role {name!r} is declared twice")

    def _add_table(self, table: Any, schema: str | None, tenant_column: str | None,
                   rls: bool, grants: Mapping[Role | str, str]) -> Table:
        name, sa_schema, columns, definition = table_identity(table, schema)
        _check_name("table", name)
        schema = sa_schema or self.schema
        if (schema, name) in self.tables or (schema, name) in self.views:
            raise ModelError("table is declared twice", table=name)
        if columns is not None and tenant_column is not None and tenant_column not in columns:
            raise ModelError(f"tenant column {tenant_column!r} is not a column of the table",
                             table=name)
        tbl = Table(self, name, schema, tenant_column, rls, columns, definition=definition)
        tbl.grants = self._parse_grants(name, grants, TABLE_PRIVILEGES)
        for privs in tbl.grants.values():
            for priv in privs:
                missing = sorted(set(priv.columns) - columns) if columns is not None else []
                if missing:
                    raise ModelError(
                        f"grant of {priv.name} names missing column(s) {', '.join(missing)}",
                        table=name,
                    )
        self.tables[(schema, name)] = tbl
        return tbl

    @staticmethod
    def _parse_grants(obj: str, grants: Mapping[Role | str, str],
                      allowed: tuple[str, ...]) -> dict[Role | str, tuple[Privilege, ...]]:
        if not isinstance(grants, Mapping):
            raise ModelError(f"grants must be a mapping of role to privileges, got {grants!r}",
                             table=obj)
        out: dict[Role | str, tuple[Privilege, ...]] = {}
        for role, text in grants.items():
            if not isinstance(text, str):
                raise ModelError(f"privileges for {role!r} must be text like 'SELECT, INSERT'",
                                 table=obj)
            try:
                privs = parse_privileges(text)
            except SqlTextError as exc:
                raise ModelError(str(exc), table=obj, text=text) from None
            expanded: list[Privilege] = []
            for priv in privs:
                if priv.name == "ALL":
                    if priv.columns:
                        raise ModelError("ALL cannot be limited to columns", table=obj, text=text)
                    # ALL means the row-level commands; TRUNCATE/REFERENCES/TRIGGER bypass or
                    # sidestep RLS and must be granted by name.
                    expanded.extend(Privilege(p) for p in ROW_COMMANDS if p in allowed)
                elif priv.name not in allowed:
                    raise ModelError(f"unknown privilege {priv.name}; use one of "
                                     f"{', '.join(allowed)} or ALL", table=obj, text=text)
                else:
                    expanded.append(priv)
            out[role] = tuple(expanded)
        return out

    # -- names ------------------------------------------------------------------------------

    def with_role_prefix(self, prefix: str) -> Model:
        """This model in another environment: a copy whose roles carry `prefix` instead."""
        if not isinstance(prefix, str):
            raise ModelError(f"role prefix must be a string, got {prefix!r}")
        other = copy.copy(self)
        other.role_prefix = prefix
        return other

    def role_name(self, role: Role | str) -> str:
        """The database name of a model role (with the role prefix)."""
        return self.role_prefix + self.resolve_role(role).name

    def resolve_role(self, role: Role | str) -> Role:
        if isinstance(role, Role):
            if self.roles.get(role.name) is not role:
                raise ModelError(f"role {role.name!r} does not belong to this model")
            return role
        if isinstance(role, str) and role in self.roles:
            return self.roles[role]
        raise ModelError(f"unknown role {role!r}")

    @property
    def key_owner(self) -> str:
        """The NOLOGIN role that owns the context keys and their verifier (database name)."""
        return f"{self.role_prefix}{self.helpers_schema}_keys"

    def setting_name(self, context: str) -> str:
        return f"{self.settings_prefix}.{context}"

    def in_product(self, table: Table) -> bool:
        """Whether `table` belongs to one of the model's data products."""
        return any(table in product.tables for product in self.products.values())

    def reserved_policy_names(self, table: Table) -> set[str]:
        names = {"tenant_isolation"} if table.tenant_column else set()
        if self.in_product(table):
            names.add("product_access")
        return names

    @property
    def group_roles(self) -> list[Role]:
        return [r for r in self.roles.values() if not r.login]

    def switchable(self, authenticator: str) -> list[Role]:
        """The roles `authenticator` may SET ROLE to: those it names, else every group role
        that administers no other role (from an administering role, SQL inside a request
        could GRANT roles to anyone)."""
        allowed = self.authenticators[authenticator]
        if allowed is not None:
            return [self.resolve_role(r) for r in allowed]
        admins = {self.resolve_role(a).name for a, _ in self.admins}
        return [r for r in self.group_roles if r.name not in admins]

    def limits(self, role: Role | str) -> tuple[tuple[str, str], ...]:
        """The limits a request in `role` runs with: its own, else the nearest parent's."""
        found: dict[str, str] = {}
        for ancestor in self.ancestors(role):
            for name, value in ancestor.limits:
                found.setdefault(name, value)
        return tuple(sorted(found.items()))

    def ancestors(self, role: Role | str) -> list[Role]:
        """Roles whose rights `role` inherits, nearest first, including itself."""
        seen: list[Role] = []
        stack = [self.resolve_role(role)]
        while stack:
            current = stack.pop(0)
            if current in seen:
                continue
            seen.append(current)
            stack.extend(self.resolve_role(p) for p in current.inherits)
        return seen

    def validate(self) -> None:
        """Check every cross reference; raise ModelError on the first problem."""
        validate(self)
