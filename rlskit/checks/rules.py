"""The lint catalogue: one function per rule, each with a stable id, a severity, why the
problem matters and how to fix it. A rule reads `Facts` and yields a `Hit` per object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pglast import ast, enums
from pglast.stream import maybe_double_quote_name

from .. import objects as o
from ..model import ROW_COMMANDS, row_commands
from ..reach import reachable
from ..releases import upgrade_needed
from ..sqltext import SqlTextError, parse_expression, relations_read, setting_read, walk
from .facts import PUBLIC, Facts, Grant, Relation
from .findings import Severity

__all__ = ["RULES", "Hit", "Rule"]


@dataclass(frozen=True)
class Hit:
    object: str
    message: str
    fix: str


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    why: str
    check: Callable[[Facts], Iterator[Hit]]


RULES: dict[str, Rule] = {}


def rule(rule_id: str, severity: str, title: str, why: str
         ) -> Callable[[Callable[[Facts], Iterator[Hit]]], Callable[[Facts], Iterator[Hit]]]:
    """Register a check under `rule_id` (a second check with the same id is refused, as
    pglast refuses a second printer for a node)."""

    def register(check: Callable[[Facts], Iterator[Hit]]) -> Callable[[Facts], Iterator[Hit]]:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} is registered twice ({RULES[rule_id].title!r} "
                             f"and {title!r})")
        RULES[rule_id] = Rule(rule_id, Severity(severity), title, why, check)
        return check
    return register


def _tables(facts: Facts) -> Iterator[Relation]:
    return (r for r in facts.relations.values() if r.kind == "table")


def _quoted(qualified: str) -> str:
    return ".".join(maybe_double_quote_name(p) for p in qualified.split("."))


def _policy_name(pol: o.DbPolicy) -> str:
    return f"{pol.schema}.{pol.table}.{pol.name}"


def _expression(text: str | None) -> ast.Node | None:
    if text is None:
        return None
    try:
        return parse_expression(text)
    except SqlTextError:
        return None


def _applies(pol: o.DbPolicy, role: str, facts: Facts) -> bool:
    """Does `pol` apply to `role` (directly, through PUBLIC or an inherited role)?"""
    return not pol.roles or bool(set(pol.roles) & facts.uses(role))


@rule("RLS001", "error", "table with a tenant column has row-level security disabled",
      "Every role with a grant on it reads and writes every tenant's rows; one forgotten "
      "WHERE tenant_id = … in the application leaks another customer's data.")
def tenant_table_without_rls(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        if not rel.rls and facts.is_tenant_table(rel) and rel.parent is None:
            yield Hit(rel.qualified, "tenant rows are not isolated by the database",
                      f"declare it with model.tenant_table(...), or ALTER TABLE "
                      f"{_quoted(rel.qualified)} ENABLE ROW LEVEL SECURITY with a tenant "
                      "policy")


@rule("RLS002", "warning", "table in an exposed schema has row-level security disabled",
      "Application roles can reach it; without RLS, what they see depends on every query "
      "remembering its filter.")
def exposed_table_without_rls(facts: Facts) -> Iterator[Hit]:
    granted = {g.relation for g in facts.grants
               if g.grantee == PUBLIC or g.grantee in facts.scope.app_roles}
    for rel in _tables(facts):
        if (not rel.rls and not facts.is_tenant_table(rel) and rel.parent is None
                and rel.schema in facts.exposed_schemas and rel.qualified in granted):
            yield Hit(rel.qualified, "application roles hold privileges on it and no row "
                      "policy applies",
                      f"ALTER TABLE {_quoted(rel.qualified)} ENABLE ROW LEVEL SECURITY (and "
                      "add policies), or waive this rule with the reason it is shared data")


@rule("RLS003", "error", "policies exist but row-level security is disabled",
      "Policies do nothing until RLS is enabled: the table looks protected in review and "
      "is not.")
def policies_without_rls(facts: Facts) -> Iterator[Hit]:
    with_policies = {f"{p.schema}.{p.table}" for p in facts.policies}
    for rel in _tables(facts):
        if rel.qualified in with_policies and not rel.rls:
            yield Hit(rel.qualified, "its policies are not enforced",
                      f"ALTER TABLE {_quoted(rel.qualified)} ENABLE ROW LEVEL SECURITY")


@rule("RLS004", "error", "row-level security enabled but not forced",
      "The table owner bypasses RLS unless it is forced; migrations, jobs or a view owned "
      "by that role see every tenant's rows.")
def rls_not_forced(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        if rel.rls and not rel.force:
            yield Hit(rel.qualified, "the owner is not bound by the policies",
                      f"ALTER TABLE {_quoted(rel.qualified)} FORCE ROW LEVEL SECURITY")


@rule("RLS005", "error", "view over an RLS table runs with its owner's rights",
      "Without security_invoker a view reads its tables as the view's owner, so the "
      "caller's role and policies are not applied; an owner that bypasses RLS (superuser, "
      "BYPASSRLS, an unforced table owner) returns every tenant's rows.")
def view_without_invoker(facts: Facts) -> Iterator[Hit]:
    for rel in facts.relations.values():
        if rel.kind != "view" or rel.security_invoker:
            continue
        protected = [r for r in rel.reads if r in facts.relations
                     and facts.relations[r].kind == "table" and facts.relations[r].rls]
        if not protected:
            continue
        owner = facts.roles.get(rel.owner or "")
        bypass = owner is not None and (owner.superuser or owner.bypassrls)
        how = f"; its owner {rel.owner} bypasses RLS" if bypass else ""
        yield Hit(rel.qualified, f"reads {', '.join(protected)} without "
                  f"security_invoker{how}",
                  f"ALTER VIEW {_quoted(rel.qualified)} SET (security_invoker = true) "
                  "(PostgreSQL 15+)")


def _unwrapped_calls(node: ast.Node, helpers: str) -> list[str]:
    """current_setting() and helper calls not inside a subquery, i.e. run per row."""
    found: list[str] = []

    def visit(sub: ast.Node, in_subquery: bool) -> None:
        if isinstance(sub, ast.FuncCall) and not in_subquery:
            name = tuple(p.sval for p in sub.funcname or ())
            if name[-1] == "current_setting" or (len(name) == 2 and name[0] == helpers):
                found.append(".".join(name) + "()")
        for attr in getattr(type(sub), "__slots__", ()):
            value = getattr(sub, attr)
            children = value if isinstance(value, tuple) else (value,)
            for child in children:
                if isinstance(child, ast.Node):
                    visit(child, in_subquery or isinstance(sub, ast.SubLink))

    visit(node, False)
    return found


@rule("RLS006", "warning", "context read per row (not wrapped for an InitPlan)",
      "A bare current_setting() or helper call in a policy is evaluated for every row "
      "scanned and hides the tenant value from the planner: no index use, 10-1000x "
      "slower scans.")
def per_row_context(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        calls = []
        for text in (pol.using, pol.with_check):
            node = _expression(text)
            if node is not None:
                calls += _unwrapped_calls(node, facts.scope.helpers_schema)
        if calls:
            call = calls[0]
            yield Hit(_policy_name(pol), f"calls {call} per row",
                      f"write (SELECT {call}) instead, as rlskit's generated policies do")


def _equality_columns(node: ast.Node, columns: frozenset[str]) -> list[str]:
    """Columns of the table compared with ``=`` in the top-level AND chain."""
    if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.AND_EXPR:
        return [c for arg in node.args or () for c in _equality_columns(arg, columns)]
    if not (isinstance(node, ast.A_Expr) and node.name and node.name[-1].sval == "="):
        return []
    out = []
    for side in (node.lexpr, node.rexpr):
        fields = side.fields or () if isinstance(side, ast.ColumnRef) else ()
        if fields and isinstance(fields[-1], ast.String):
            name = fields[-1].sval
            if name in columns:
                out.append(name)
    return out


@rule("RLS007", "warning", "policy column without an index",
      "Every query on the table filters on the policy's columns; without an index whose "
      "first column is that column, each one scans the whole table.")
def unindexed_policy_column(facts: Facts) -> Iterator[Hit]:
    seen = set()
    for pol in facts.policies:
        rel = facts.relations.get(f"{pol.schema}.{pol.table}")
        if rel is None or rel.indexed is None or not rel.columns:
            continue
        node = _expression(pol.using or pol.with_check)
        for column in _equality_columns(node, rel.columns) if node is not None else ():
            if column not in rel.indexed and (rel.qualified, column) not in seen:
                seen.add((rel.qualified, column))
                yield Hit(rel.qualified, f"policy {pol.name} filters on {column}, which no "
                          "index leads with",
                          f"CREATE INDEX ON {_quoted(rel.qualified)} ({column})")


@rule("RLS008", "warning", "several permissive policies for the same role and command",
      "Permissive policies are OR-ed: each one widens access, so the effective rule is "
      "spread over several places and every one is evaluated per row.")
def overlapping_permissive(facts: Facts) -> Iterator[Hit]:
    groups: dict[tuple[str, str, str], list[str]] = {}
    for pol in facts.policies:
        if pol.permissive:
            for role in pol.roles or (PUBLIC,):
                for cmd in row_commands(pol.command):
                    groups.setdefault((f"{pol.schema}.{pol.table}", role, cmd),
                                      []).append(pol.name)
    for (table, role, cmd), names in groups.items():
        if len(names) > 1:
            yield Hit(table, f"{role} {cmd}: {', '.join(names)}",
                      "merge them into one policy (OR the conditions) so the rule for "
                      f"{role} {cmd} reads in one place")


def _is_true(text: str | None) -> bool:
    return text is not None and text.strip("() ").lower() == "true"


@rule("RLS009", "error", "permissive USING (true) on a tenant table without tenant isolation",
      "A permissive policy that is always true lets its roles see every tenant's rows "
      "unless a RESTRICTIVE policy on the tenant column narrows it.")
def open_permissive_on_tenant_table(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        rel = facts.relations.get(f"{pol.schema}.{pol.table}")
        if rel is None or not pol.permissive or not facts.is_tenant_table(rel):
            continue
        if not (_is_true(pol.using) or (pol.using is None and _is_true(pol.with_check))):
            continue
        tenant_cols = (rel.columns or frozenset()) & facts.scope.tenant_columns
        isolated = any(
            not other.permissive and other.schema == pol.schema and other.table == pol.table
            and set(row_commands(pol.command)) <= set(row_commands(other.command))
            and (not other.roles or set(pol.roles) <= set(other.roles))
            and (not tenant_cols or any(c in (other.using or "") for c in tenant_cols))
            for other in facts.policies)
        if not isolated:
            yield Hit(_policy_name(pol), f"{pol.command} for "
                      f"{', '.join(pol.roles) or PUBLIC} is always true and nothing "
                      "restricts it to the caller's tenant",
                      "add a RESTRICTIVE policy on the tenant column (model.tenant_table "
                      "does), or give this policy a real condition")


@rule("RLS010", "error", "privileges granted to PUBLIC on a protected table",
      "PUBLIC is every role in the cluster, including ones created later for other "
      "purposes; access to tenant data should be granted to named roles only.")
def public_grants(facts: Facts) -> Iterator[Hit]:
    return _revocable(facts, lambda g: g.grantee == PUBLIC)


@rule("RLS011", "error", "application role can bypass row-level security",
      "A superuser or BYPASSRLS role ignores every policy, and the owner of a table "
      "escapes it unless RLS is forced — and can disable it.")
def app_role_bypasses(facts: Facts) -> Iterator[Hit]:
    owners: dict[str, list[str]] = {}
    for rel in _tables(facts):
        if rel.owner is not None and facts.is_protected(rel):
            owners.setdefault(rel.owner, []).append(rel.qualified)
    for name in sorted(facts.scope.app_roles):
        role = facts.roles.get(name)
        if role is None:
            continue
        if role.superuser or role.bypassrls:
            what = "SUPERUSER" if role.superuser else "BYPASSRLS"
            yield Hit(name, f"is {what}",
                      f"ALTER ROLE {_quoted(name)} NO{what}")
            continue
        owned = [t for owner, tables in owners.items() if owner in facts.can_become(name)
                 for t in tables]
        if owned:
            yield Hit(name, f"owns (or can become the owner of) {', '.join(sorted(owned))}",
                      "let a separate migration role own the tables and revoke its "
                      "membership from the application role")


@rule("RLS012", "error", "SECURITY DEFINER function without a fixed search_path",
      "A caller can create objects in a schema early on its search_path and make the "
      "function, which runs with its owner's rights, call them instead.")
def definer_search_path(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        if fn.security_definer and not fn.fixed_search_path:
            yield Hit(fn.qualified, "runs as its owner with the caller's search_path",
                      f"ALTER FUNCTION {fn.qualified} SET search_path = pg_catalog, "
                      f"{fn.schema}")


@rule("RLS013", "warning", "granted command with no policy (silent deny)",
      "With RLS enabled and no permissive policy for a granted command, the command "
      "affects zero rows without an error: the grant promises access the policies never "
      "give.")
def silent_deny(facts: Facts) -> Iterator[Hit]:
    seen = set()
    for g in facts.grants:
        rel = facts.relations.get(g.relation)
        if rel is None or rel.kind != "table" or not rel.rls or g.privilege not in ROW_COMMANDS:
            continue
        if g.grantee != PUBLIC and g.grantee not in facts.scope.app_roles:
            continue
        key = (g.relation, g.grantee, g.privilege)
        if key in seen:
            continue
        seen.add(key)
        covered = any(
            pol.permissive and f"{pol.schema}.{pol.table}" == g.relation
            and g.privilege in row_commands(pol.command)
            and (not pol.roles or g.grantee != PUBLIC and _applies(pol, g.grantee, facts))
            for pol in facts.policies)
        if not covered:
            yield Hit(g.relation, f"{g.grantee} holds {g.privilege} but no permissive policy "
                      f"admits it",
                      f"add a {g.privilege} policy for {g.grantee}, or revoke the grant")


def _revocable(facts: Facts, keep: Callable[[Grant], bool]) -> Iterator[Hit]:
    """One hit per protected relation and grantee holding grants that `keep` selects."""
    found: dict[tuple[str, str], set[str]] = {}
    for g in facts.grants:
        rel = facts.relations.get(g.relation)
        if rel is not None and facts.is_protected(rel) and keep(g):
            found.setdefault((g.relation, g.grantee), set()).add(g.privilege)
    for (relation, grantee), privs in sorted(found.items()):
        listed = ", ".join(sorted(privs))
        yield Hit(relation, f"{grantee} holds {listed}",
                  f"REVOKE {listed} ON {_quoted(relation)} FROM {grantee}")


def _sidestep_grants(facts: Facts, privileges: tuple[str, ...]) -> Iterator[Hit]:
    return _revocable(facts, lambda g: g.privilege in privileges and (
        g.grantee == PUBLIC or g.grantee in facts.scope.app_roles))


@rule("RLS014", "error", "TRUNCATE granted to an application role",
      "TRUNCATE ignores row-level security: one tenant's role can empty the table for "
      "every tenant.")
def truncate_grants(facts: Facts) -> Iterator[Hit]:
    return _sidestep_grants(facts, ("TRUNCATE",))


@rule("RLS015", "warning", "REFERENCES or TRIGGER granted to an application role",
      "REFERENCES lets a role probe other tenants' keys through foreign-key checks; "
      "TRIGGER lets it run code on every tenant's writes.")
def sidestep_grants(facts: Facts) -> Iterator[Hit]:
    return _sidestep_grants(facts, ("REFERENCES", "TRIGGER"))


@rule("RLS016", "error", "partition without row-level security under an RLS parent",
      "Policies of a partitioned table apply only to queries through the parent; a "
      "partition queried directly shows every tenant's rows.")
def partition_without_rls(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        parent = facts.relations.get(rel.parent or "")
        if parent is not None and parent.rls and not rel.rls:
            yield Hit(rel.qualified, f"partition of {parent.qualified}, which has RLS",
                      f"ALTER TABLE {_quoted(rel.qualified)} ENABLE ROW LEVEL SECURITY, "
                      "FORCE ROW LEVEL SECURITY, with the parent's policies")


@rule("RLS017", "error", "session-level default for a context setting",
      "ALTER ROLE/DATABASE … SET gives every session a tenant before any request sets "
      "one: a pooled connection without a request context is no longer fail-closed.")
def session_defaults(facts: Facts) -> Iterator[Hit]:
    for d in facts.defaults:
        target = (f"ALTER ROLE {_quoted(d.role)}" if d.role else
                  f"ALTER DATABASE {_quoted(d.database or '')}")
        if d.role and d.database:
            target += f" IN DATABASE {_quoted(d.database)}"
        yield Hit(d.target, f"sets {d.setting} = {d.value!r} for every session",
                  f"{target} RESET {d.setting}")


@rule("RLS018", "warning", "INSERT granted but the serial's sequence is not",
      "A serial column's default calls nextval(), which needs USAGE on the sequence: every "
      "INSERT by this role fails with 'permission denied for sequence', so the grant "
      "promises a write the role can never make.")
def sequence_not_granted(facts: Facts) -> Iterator[Hit]:
    direct = {(g.relation, g.grantee) for g in facts.grants if g.privilege == "INSERT"}
    for relation, role, sequence in facts.blocked_inserts:
        if (relation, role) not in direct:
            continue  # it inherits the grant: fixing the role that holds it fixes both
        yield Hit(relation, f"{role} may INSERT but cannot use {sequence}",
                  f"GRANT USAGE ON SEQUENCE {sequence} TO {role}, or make the column "
                  "GENERATED ... AS IDENTITY (INSERT alone is then enough)")


@rule("RLS019", "warning", "request context not sealed",
      "A helper reads its context setting without verifying the seal, so SQL sent inside a "
      "request (one injected set_config) changes the tenant, the user or the role, and the "
      "policies follow it.")
def unsealed_context(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        read = setting_read(fn.definition) if fn.definition else None
        if fn.schema == facts.scope.helpers_schema and read is not None \
                and read[1] == facts.scope.settings_prefix and not read[2]:
            yield Hit(fn.qualified, "returns a context setting anyone in the session can set",
                      "seal the context: drop sealed=False from model.context(...), migrate, "
                      "and give the application a key (rlskit key rotate)")


@rule("RLS020", "error", "application role has CREATEROLE",
      "A role that may create and alter roles can grant itself the table owner or a "
      "bypassing role, and from there turn row-level security off.")
def app_role_createrole(facts: Facts) -> Iterator[Hit]:
    for name in sorted(facts.scope.app_roles):
        roles = [r for r in sorted(facts.can_become(name)) if r in facts.roles
                 and facts.roles[r].createrole]
        for role in roles:
            subject = "has" if role == name else f"can become {role!r}, which has"
            yield Hit(name, f"{subject} CREATEROLE", f"ALTER ROLE {_quoted(role)} NOCREATEROLE")


@rule("RLS021", "error", "SECURITY DEFINER function executable by PUBLIC",
      "Anyone who can log in runs it with its owner's rights; a definer function should be "
      "callable only by the roles it is meant for.")
def definer_for_public(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        if fn.security_definer and fn.public_execute:
            yield Hit(fn.qualified, "runs as its owner for any caller",
                      f"REVOKE EXECUTE ON FUNCTION {fn.qualified} FROM PUBLIC")


@rule("RLS022", "error", "SECURITY DEFINER search_path open to callers",
      "A schema everyone may create objects in, or pg_temp anywhere but last, lets a caller "
      "plant a function or operator the definer then runs with its owner's rights.")
def definer_search_path_open(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        if not fn.security_definer or fn.search_path is None:
            continue
        schemas = [s.strip().strip('"') for s in fn.search_path.split(",") if s.strip()]
        open_ = [s for s in schemas if s in facts.public_writable or s == "$user"]
        temp_early = "pg_temp" not in schemas or schemas[-1] != "pg_temp"
        if open_ or temp_early:
            why = (f"searches {', '.join(open_)}, where callers may create objects"
                   if open_ else "does not search pg_temp last")
            yield Hit(fn.qualified, why, f"ALTER FUNCTION {fn.qualified} SET search_path = "
                                         "pg_catalog, pg_temp (and qualify every name)")


@rule("RLS023", "error", "server release without the row-level security fixes",
      "Releases before the fixes for CVE-2023-2455, CVE-2024-10976 and CVE-2024-10978 let "
      "queries escape policies after a role change.")
def old_server(facts: Facts) -> Iterator[Hit]:
    why = None if facts.server_version is None else upgrade_needed(facts.server_version)
    if why is not None:
        yield Hit("server", why, "upgrade PostgreSQL to the release named")


def _readable_by_app(facts: Facts, relation: str) -> list[str]:
    """The application roles (or PUBLIC) that may SELECT from `relation`."""
    return sorted({g.grantee for g in facts.grants if g.relation == relation
                   and g.privilege == "SELECT"
                   and (g.grantee == PUBLIC or g.grantee in facts.scope.app_roles
                        or any(g.grantee in facts.uses(r) for r in facts.scope.app_roles))})


@rule("RLS024", "error", "materialized view over RLS data readable by application roles",
      "A materialized view stores what its owner saw at the last refresh; no policy applies "
      "when it is read, so every tenant's rows are served to whoever may select from it.")
def materialized_rls_data(facts: Facts) -> Iterator[Hit]:
    for rel in sorted(facts.relations.values(), key=lambda r: r.qualified):
        if rel.kind != "materialized view":
            continue
        protected = [r for r in rel.reads
                     if r in facts.relations and facts.is_protected(facts.relations[r])]
        readers = _readable_by_app(facts, rel.qualified)
        if protected and readers:
            yield Hit(rel.qualified, f"stores rows of {', '.join(protected)} and "
                      f"{', '.join(readers)} may read it",
                      f"REVOKE SELECT ON {_quoted(rel.qualified)} FROM {', '.join(readers)} "
                      "(serve it through a security_invoker view over the tables instead)")


@rule("RLS025", "warning", "foreign table readable by application roles",
      "Row-level security cannot be enabled on a foreign table: whatever the remote side "
      "returns reaches every role that may select from it, whatever its tenant.")
def foreign_table_for_app(facts: Facts) -> Iterator[Hit]:
    for rel in sorted(facts.relations.values(), key=lambda r: r.qualified):
        readers = _readable_by_app(facts, rel.qualified) if rel.kind == "foreign table" \
            else []
        if readers:
            yield Hit(rel.qualified, f"{', '.join(readers)} may read it and no policy applies",
                      f"REVOKE SELECT ON {_quoted(rel.qualified)} FROM {', '.join(readers)}, "
                      "or waive this rule with the reason the data is not per tenant")


@rule("RLS026", "error", "protected table owned by a role that bypasses row-level security",
      "FORCE ROW LEVEL SECURITY binds a table's owner, but not a superuser or BYPASSRLS "
      "owner: whoever runs as the owner (a migration, a maintenance job, a view it owns) "
      "sees every tenant.")
def owned_by_bypassing_role(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        owner = facts.roles.get(rel.owner or "")
        if owner is not None and facts.is_protected(rel) and (owner.superuser
                                                              or owner.bypassrls):
            what = "a superuser" if owner.superuser else "BYPASSRLS"
            yield Hit(rel.qualified, f"owned by {owner.name!r}, {what}",
                      "declare model.owner(\"owner\") and migrate (the tables go to a NOLOGIN "
                      f"role), or ALTER TABLE {_quoted(rel.qualified)} OWNER TO <such a role>")



@rule("RLS027", "error", "Citus table whose shards hold other policies than the table",
      "Citus applies the shards' policies, not the table's: a restrictive policy copied to "
      "the shards as permissive (Citus 14 drops AS RESTRICTIVE) admits every row that "
      "another rule admits.")
def citus_shard_policies(facts: Facts) -> Iterator[Hit]:
    differ: dict[str, list[str]] = {}
    for table, shard, on_shard, on_table in facts.shard_policies:
        if on_shard != on_table:
            differ.setdefault(table, []).append(shard)
    for table, shards in differ.items():
        more = ", …" if len(shards) > 3 else ""
        yield Hit(table, f"{len(shards)} shard(s) ({', '.join(shards[:3])}{more}) hold "
                  "policies that differ from the table's",
                  "declare the table with model.distribute() or model.reference_table(): "
                  "rlskit writes the restrictive policies into the permissive ones, which "
                  "Citus copies intact; then migrate to recreate them")


def _policy_text(pol: o.DbPolicy) -> str:
    return " ".join(filter(None, (pol.using, pol.with_check)))


@rule("RLS028", "error", "policy reads user-editable metadata from the token",
      "A claim users can edit themselves (Supabase's user_metadata) decides what they may "
      "see: anyone can put another tenant's id there.")
def user_metadata_claims(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        if "user_metadata" in _policy_text(pol):
            yield Hit(_policy_name(pol), "its expression reads user_metadata",
                      "read a claim only the server sets (app_metadata, or the model's "
                      "sealed context: model.context(...))")


@rule("RLS029", "warning", "permissive policy for PUBLIC on a protected table",
      "A permissive policy without TO applies to every role, those created later included: "
      "a new role with a grant on the table gets its rows without anyone deciding so.")
def permissive_for_public(facts: Facts) -> Iterator[Hit]:
    protected = {r.qualified for r in _tables(facts) if facts.is_protected(r)}
    for pol in facts.policies:
        if pol.permissive and not pol.roles and f"{pol.schema}.{pol.table}" in protected:
            yield Hit(_policy_name(pol), "it admits rows to every role",
                      f"ALTER POLICY {maybe_double_quote_name(pol.name)} ON "
                      f"{_quoted(pol.schema + '.' + pol.table)} TO <the roles it is for>")


def _reads(pol: o.DbPolicy) -> set[str]:
    """The tables a policy's expressions read in subqueries."""
    out: set[str] = set()
    for text in (pol.using, pol.with_check):
        if text is not None:
            out |= set(relations_read(f"SELECT {text}", pol.schema))
    return out


@rule("RLS030", "error", "policies that read each other's tables (infinite recursion)",
      "A policy on A that reads B, where B's policies read A (or A's read A), makes every "
      "query on them fail with 42P17 'infinite recursion detected in policy'.")
def recursive_policies(facts: Facts) -> Iterator[Hit]:
    reads: dict[str, set[str]] = {}
    for pol in facts.policies:
        reads.setdefault(f"{pol.schema}.{pol.table}", set()).update(_reads(pol))
    reach = {table: reachable(reads[table], lambda t: reads.get(t, ())) for table in reads}
    cycles = {frozenset(t for t in reach[table] if table in reach.get(t, ()))
              for table in reach if table in reach[table]}
    for cycle in sorted(cycles, key=sorted):
        table, *others = sorted(cycle)
        through = f" through {', '.join(others)}" if others else ""
        yield Hit(table, f"its policies read the table itself{through}",
                      "read the other table through a SECURITY DEFINER function (owned by a "
                      "role its RLS does not bind), or gather the values once into the "
                      "request context")


@rule("RLS031", "warning", "LEAKPROOF function created by the application",
      "The planner runs a LEAKPROOF function before the policy's filter, on rows the caller "
      "may not see: one that raises or logs its arguments leaks them.")
def leakproof_functions(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        if fn.leakproof:
            yield Hit(fn.qualified, "it is marked LEAKPROOF",
                      f"ALTER FUNCTION {_quoted(fn.schema + '.' + fn.name)}"
                      f"({fn.arguments}) NOT LEAKPROOF, unless it provably reveals nothing")


@rule("RLS032", "warning", "SECURITY DEFINER function executable by application roles",
      "It runs with its owner's rights, row-level security included or bypassed as the "
      "owner's is: what it returns to a request is not filtered by the request's policies.")
def definer_for_app_roles(facts: Facts) -> Iterator[Hit]:
    for fn in facts.functions:
        if (fn.security_definer and fn.executable_by and not fn.public_execute
                and fn.schema != facts.scope.helpers_schema):  # rlskit's own are meant so
            yield Hit(fn.qualified, f"{', '.join(fn.executable_by)} may run it",
                      f"REVOKE EXECUTE ON FUNCTION {fn.qualified} FROM "
                      f"{', '.join(fn.executable_by)}, or make it SECURITY INVOKER")


@rule("RLS033", "error", "foreign key of a tenant table without an index",
      "Deleting or updating a referenced row scans the whole tenant table, every tenant's "
      "rows, for each row changed; policies that join through the key do the same.")
def unindexed_foreign_key(facts: Facts) -> Iterator[Hit]:
    for table, column, target in facts.foreign_keys:
        rel = facts.relations.get(table)
        if rel is not None and facts.is_tenant_table(rel) and column not in (rel.indexed or ()):
            yield Hit(table, f"{column} references {target} and no index leads with it",
                      f"CREATE INDEX ON {_quoted(table)} ({maybe_double_quote_name(column)})")


@rule("RLS034", "error", "UPDATE policy with a condition but WITH CHECK (true)",
      "USING chooses the rows a role may change, WITH CHECK what they may become: with "
      "WITH CHECK (true) a row the role may edit can be rewritten into one it may not — "
      "moved to another user or tenant.")
def update_check_always_true(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        if (pol.permissive and "UPDATE" in row_commands(pol.command)
                and pol.using is not None and not _is_true(pol.using)
                and _is_true(pol.with_check)):
            yield Hit(_policy_name(pol), f"rows it admits by ({pol.using}) may be updated "
                      "into any values",
                      f"ALTER POLICY {maybe_double_quote_name(pol.name)} ON "
                      f"{_quoted(pol.schema + '.' + pol.table)} WITH CHECK ({pol.using})")


@rule("RLS035", "warning", "policy for a role nobody can become",
      "A policy for a role without LOGIN and without members applies to no session: it is "
      "left over from a renamed or dropped role, and the role it was meant for has no "
      "policy.")
def policy_for_unreachable_role(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        for role in pol.roles:
            found = facts.roles.get(role)
            if (found is not None and found.members == 0
                    and not (found.login or found.superuser)):
                yield Hit(_policy_name(pol), f"{role} has no LOGIN and no members",
                          f"ALTER POLICY {maybe_double_quote_name(pol.name)} ON "
                          f"{_quoted(pol.schema + '.' + pol.table)} TO <the role it is "
                          f"for>, or DROP POLICY it")


def _holds(facts: Facts, relation: str, role: str, privilege: str) -> bool:
    """Does `role` hold `privilege` on `relation` (itself, by inheritance or as PUBLIC),
    on the table or on some of its columns?"""
    uses = facts.uses(role)
    return any(g.relation == relation and g.privilege == privilege
               and (g.grantee == PUBLIC or g.grantee in uses) for g in facts.grants)


def _without_select(facts: Facts, commands: tuple[str, ...]
                    ) -> Iterator[tuple[str, str, list[str]]]:
    """(relation, role, its privileges among `commands`) per protected table and
    application role that may run some of `commands` there without holding SELECT."""
    held: dict[tuple[str, str], list[str]] = {}
    for g in facts.grants:
        rel = facts.relations.get(g.relation)
        if (g.privilege in commands and g.grantee in facts.scope.app_roles
                and rel is not None and facts.is_protected(rel)):
            privileges = held.setdefault((g.relation, g.grantee), [])
            if g.privilege not in privileges:
                privileges.append(g.privilege)
    for (relation, role), privileges in held.items():
        if not _holds(facts, relation, role, "SELECT"):
            yield relation, role, sorted(privileges, key=commands.index)


@rule("RLS036", "warning", "INSERT granted without SELECT (INSERT … RETURNING fails)",
      "INSERT … RETURNING needs SELECT on the returned columns and a SELECT policy that "
      "admits the new row: SQLAlchemy's ORM fetches server-generated keys that way and "
      "PostgREST's return=representation too, so their inserts fail for this role.")
def insert_without_select(facts: Facts) -> Iterator[Hit]:
    for relation, role, _ in _without_select(facts, ("INSERT",)):
        yield Hit(relation, f"{role} may INSERT but not SELECT",
                  f"GRANT SELECT ON {_quoted(relation)} TO {role} (with a SELECT policy for "
                  "its own rows), or insert without RETURNING")


@rule("RLS037", "warning", "UPDATE or DELETE granted without SELECT",
      "An UPDATE or DELETE with a WHERE clause reads the columns it filters on, which needs "
      "SELECT: without it every such statement fails with permission denied.")
def change_without_select(facts: Facts) -> Iterator[Hit]:
    for relation, role, privileges in _without_select(facts, ("UPDATE", "DELETE")):
        held = " and ".join(privileges)
        yield Hit(relation, f"{role} may {held} but not SELECT",
                  f"GRANT SELECT ON {_quoted(relation)} TO {role} (with a SELECT policy), "
                  f"or revoke {held}")


def _reads_session_user(text: str | None) -> bool:
    node = _expression(text)
    return node is not None and any(
        isinstance(n, ast.SQLValueFunction)
        and n.op == enums.SQLValueFunctionOp.SVFOP_SESSION_USER for n in walk(node))


@rule("RLS038", "error", "policy reads session_user",
      "Behind a pool the session user is the authenticator for every request (SET ROLE "
      "changes current_user, not session_user): such a policy sees every caller as one.")
def session_user_in_policy(facts: Facts) -> Iterator[Hit]:
    for pol in facts.policies:
        if _reads_session_user(pol.using) or _reads_session_user(pol.with_check):
            yield Hit(_policy_name(pol), "it compares with session_user",
                      "read the caller from the request context (rlskit.user_id()) or "
                      "current_user")


@rule("RLS039", "warning", "tenant column allows NULL",
      "A row without a tenant belongs to nobody: tenant isolation hides it from every "
      "tenant, and a policy that admits NULL tenants shows it to all of them.")
def nullable_tenant_column(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        if facts.is_tenant_table(rel) and rel.nullable is not None:
            for column in sorted((rel.columns or frozenset()) & facts.scope.tenant_columns
                                 & rel.nullable):
                yield Hit(rel.qualified, f"{column} may be NULL",
                          f"ALTER TABLE {_quoted(rel.qualified)} ALTER COLUMN "
                          f"{maybe_double_quote_name(column)} SET NOT NULL")


@rule("RLS040", "warning", "unique key of a tenant table without the tenant column",
      "A unique key across tenants answers a question no policy guards: inserting a value "
      "another tenant holds fails with a unique violation that names it, so a caller can "
      "tell which slugs, emails or numbers other tenants use.")
def unique_across_tenants(facts: Facts) -> Iterator[Hit]:
    for rel in _tables(facts):
        tenant = (rel.columns or frozenset()) & facts.scope.tenant_columns
        if not tenant or not facts.is_tenant_table(rel):
            continue
        for key in rel.unique_keys or ():
            if not tenant & set(key):
                column = sorted(tenant)[0]
                yield Hit(rel.qualified, f"unique ({', '.join(key)}) spans every tenant",
                          f"make it unique ({maybe_double_quote_name(column)}, "
                          f"{', '.join(map(maybe_double_quote_name, key))})")


@rule("RLS041", "error", "helper function the Citus workers do not have",
      "The shards' policies run on the workers and call the helpers there: a helper Citus "
      "did not propagate is missing (every query on the table fails) or stale (the "
      "workers decide by an old version).")
def undistributed_helper(facts: Facts) -> Iterator[Hit]:
    for function in facts.undistributed_helpers:
        yield Hit(function, "Citus does not keep it on the workers",
                  f"SELECT create_distributed_function('{function}'), or recreate it with "
                  "citus.enable_ddl_propagation on (rlskit migrate does)")


@rule("RLS042", "warning", "application role that cannot log in on a Citus cluster",
      "Citus opens its connections to the workers as the current role: after SET ROLE to a "
      "NOLOGIN role every query on a distributed table fails.")
def citus_role_without_login(facts: Facts) -> Iterator[Hit]:
    if not facts.citus:
        return
    for role in sorted(facts.scope.app_roles):
        found = facts.roles.get(role)
        if found is not None and not (found.login or found.superuser):
            yield Hit(role, "it has no LOGIN",
                      f"ALTER ROLE {maybe_double_quote_name(role)} LOGIN (no password; let "
                      "pg_hba.conf admit it on the workers from the coordinator only)")
