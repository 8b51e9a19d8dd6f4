"""Run the access matrix: every actor × relation × command, under each tenant's context and
with none, compared with what the model promises; then the side channels.

Everything happens in the caller's transaction, each probe in a savepoint that is rolled
back, so the caller rolls the whole run back at the end. Expected rows come from the
model's own predicates evaluated, as the same actor, over an unfiltered copy of the table
(so policies that query other protected tables see what that actor would see). Writes run
with foreign-key checks (and other replication-origin triggers) off, so that a DELETE of
referenced rows measures access rather than referential integrity; the side-channel probes
keep them on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import count

import psycopg
from psycopg import errors, sql

from .._wire import set_local
from ..context import context_settings
from ..errors import ConfigError
from ..keystore import has_key_table, retire, rotate
from ..model import ROW_COMMANDS, Model
from ..reach import reachable
from ..rows import as_text, one
from ..seal import ContextKey, sealed_settings
from ..target import target_objects
from .outcome import DENIED, INSERTED, REFUSED, Insertion, Outcome, Promise, Result, promise
from .promise import Actor, Promises, actors
from .seed import Seeded, insert_row, insert_statement, row_values, seed, seed_root
from .shapes import Shape, read_shapes

__all__ = ["Cell", "Matrix", "Observation", "SideChannel", "run_matrix"]

TENANTS = ("A", "B")
CONTEXTS = (*TENANTS, "none")
OTHER = {"A": "B", "B": "A", "none": "B"}


@dataclass(frozen=True)
class Observation:
    context: str  # a tenant label, or "none"
    expected: Result
    actual: Result

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class Cell:
    actor: str
    relation: str
    command: str
    observations: tuple[Observation, ...]
    seeded: tuple[str, ...] = ()  # labels of the relation's seeded rows (A1, B2, …)

    @property
    def proven(self) -> bool:
        return all(o.ok for o in self.observations)

    @property
    def promise(self) -> Promise:
        """What the model promises, in a word or two."""
        return promise({o.context: o.expected for o in self.observations}, self.seeded,
                       TENANTS)

    @property
    def observed(self) -> Promise:
        """What the database did, in the same words."""
        return promise({o.context: o.actual for o in self.observations}, self.seeded,
                       TENANTS)


@dataclass(frozen=True)
class SideChannel:
    relation: str
    actor: str
    probe: str
    outcome: Outcome
    revealed: tuple[str, ...]  # values of the other tenant's row found in the error

    @property
    def ok(self) -> bool:
        return not self.revealed


@dataclass
class Matrix:
    actors: list[str]
    relations: list[str]
    cells: list[Cell] = field(default_factory=list)
    side_channels: list[SideChannel] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.proven for c in self.cells) and all(s.ok for s in self.side_channels)

    @property
    def violations(self) -> list[Cell]:
        return [c for c in self.cells if not c.proven]


def _outcome(exc: psycopg.Error) -> Outcome:
    if isinstance(exc, errors.InsufficientPrivilege):
        return REFUSED if "row-level security" in str(exc) else DENIED
    return Outcome.error(exc.sqlstate or "")


def _scope(only: set[str], shapes: dict[str, Shape], promises: Promises
           ) -> tuple[set[str], set[str]]:
    """The relations to probe — `only`, and every relation whose policies or view read one
    of them, at any remove — and the relations to seed: those, and what they read or
    reference."""
    readers: dict[str, set[str]] = {}
    for relation in shapes:
        for read in promises.reads(relation):
            readers.setdefault(read, set()).add(relation)
    probed = reachable(only & set(shapes), lambda r: readers.get(r, ()))
    seeded = reachable(probed, lambda r: promises.reads(r) | {
        target for target, _ in shapes[r].references.values()} if r in shapes else ())
    return probed, seeded & set(shapes)


class _Run:
    def __init__(self, conn: psycopg.Connection, model: Model, owner: str,
                 key: ContextKey | None, expect: bool = True,
                 only: set[str] | None = None) -> None:
        self.conn = conn
        self.model = model
        self.key = key
        self.expect = expect
        version = conn.info.server_version // 10000
        self.promises = Promises(model, target_objects(model, version))
        names = [(t.schema, t.name) for t in model.tables.values()]
        names += [(v.schema, v.name) for v in model.views.values()]
        shapes = read_shapes(conn, names)
        self.shapes = {f"{s}.{n}": shapes[f"{s}.{n}"] for s, n in names
                       if f"{s}.{n}" in shapes}  # in model order
        missing = [f"{s}.{n}" for s, n in names if f"{s}.{n}" not in self.shapes]
        if missing and expect:
            raise ConfigError(f"rlskit verify: {', '.join(missing)} missing from the database")
        self.probed = set(self.shapes)
        if only is not None:
            self.probed, seeded = _scope(only, self.shapes, self.promises)
            root = seed_root(model, self.shapes)
            self.shapes = {q: s for q, s in self.shapes.items() if q in seeded or q == root}
        self.tables = {q: s for q, s in self.shapes.items() if s.kind == "table"}
        self.seeded = Seeded()  # filled by `prepare` as rows go in, for `undo`
        self.fresh: list[tuple[str, dict[str, str | None]]] = []  # on Citus, see `candidate`
        self.actors = actors(model, owner)
        if not expect:  # a state of the database before some roles existed
            present = {name for (name,) in conn.execute(
                "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)",
                [[a.name for a in self.actors]])}
            self.actors = [a for a in self.actors if a.name in present]
        self.numbers = count(5000)
        self.tenant_columns = {t.qualified: t.tenant_column for t in model.tables.values()}
        self.copies: dict[str, tuple[sql.Identifier, sql.Identifier]] = {}

    def prepare(self) -> None:
        """Seed the tenants' rows, then copy the tables as they are."""
        seed(self.conn, self.model, self.tables, TENANTS, self.seeded)
        self.copies = {q: self._copy(i, q) for i, q in enumerate(self.tables)}

    # -- plumbing ---------------------------------------------------------------------

    def _copy(self, i: int, relation: str) -> tuple[sql.Identifier, sql.Identifier]:
        """Temporary, unfiltered copies of a table: its rows, and an empty twin with its
        defaults for candidate rows."""
        shape = self.tables[relation]
        rows, candidates = sql.Identifier(f"rlskit_rows_{i}"), sql.Identifier(f"rlskit_new_{i}")
        source = sql.Identifier(shape.schema, shape.name)
        for statement in ("CREATE TEMP TABLE {rows} AS SELECT * FROM ONLY {source}",
                          "CREATE TEMP TABLE {new} "
                          "(LIKE {source} INCLUDING DEFAULTS INCLUDING IDENTITY)",
                          "GRANT SELECT ON {rows}, {new} TO PUBLIC"):
            self.conn.execute(sql.SQL(statement).format(rows=rows, new=candidates,
                                                        source=source))
        return rows, candidates

    @contextmanager
    def acting(self, actor: Actor | None, context: str, *, keys: bool = True
               ) -> Iterator[None]:
        """A savepoint, rolled back after, as `actor` with tenant `context` (or none).
        ``keys=False`` switches foreign-key checks off (``session_replication_role``) so
        that a write measures access, not referential integrity."""
        with self.conn.transaction(force_rollback=True):
            if self.model.citus:  # as the runtime sends a context on Citus; keys stay
                # checked: session_replication_role is a superuser's setting, which Citus
                # would replay on the workers as the probing role
                role = actor.name if actor is not None else None
                for command in set_local(role, self._settings(actor, context)):
                    self.conn.execute(command)
                yield
                return
            if not keys:
                self.conn.execute("SET LOCAL session_replication_role = replica")
            if actor is not None:
                self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(
                    sql.Identifier(actor.name)))
            for name, value in self._settings(actor, context):
                self.conn.execute("SELECT set_config(%s, %s, true)", [name, value])
            yield

    def _settings(self, actor: Actor | None, context: str) -> tuple[tuple[str, str], ...]:
        """The settings of tenant `context` (none for ``none``), sealed for `actor` when
        the model seals its context."""
        values = self.seeded.contexts.get(context)
        if not values:
            return ()
        if actor is None or self.key is None:  # no context to seal, or no key table
            return context_settings(self.model, values)
        return sealed_settings(self.model, actor.name, values, self.key)

    def attempt(self, actor: Actor, context: str, work: Callable[[], Outcome], *,
                keys: bool = True) -> Outcome:
        try:
            with self.acting(actor, context, keys=keys):
                return work()
        except psycopg.Error as exc:
            return _outcome(exc)

    def labels(self, relation: str, shape: Shape, keys: list[tuple],
               columns: tuple[str, ...] | None = None) -> list[str]:
        """The seeded rows that `keys` (values of `columns`, default the key) name."""
        return [self.seeded.label(relation, tuple(k), shape, columns) for k in keys]

    def key_sql(self, shape: Shape, columns: tuple[str, ...] | None = None) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c))
                                  for c in columns or shape.key)

    def undo(self) -> None:
        """Drop the copies and delete the seeded rows and the candidates' fresh parents,
        the referencing ones first (on Citus, where they were committed)."""
        for rows, candidates in self.copies.values():
            self.conn.execute(sql.SQL("DROP TABLE pg_temp.{}, pg_temp.{}").format(
                rows, candidates))
        seeded = [(r, row) for r, rows in self.seeded.rows.items() for row in rows.values()]
        for relation, row in reversed(seeded + self.fresh):
            shape = self.tables[relation]
            self.conn.execute(sql.SQL("DELETE FROM ONLY {} WHERE {}").format(
                sql.Identifier(shape.schema, shape.name), sql.SQL(" AND ").join(
                    sql.SQL("{}::text = {}").format(sql.Identifier(c), sql.Literal(row[c]))
                    for c in shape.key)))

    # -- expected -----------------------------------------------------------------------

    def expected_rows(self, actor: Actor, context: str, relation: str,
                      *predicates: str | None, columns: tuple[str, ...] | None = None
                      ) -> list[str]:
        """Rows of the unfiltered copy for which every predicate holds, as `actor` sees
        them (None: nothing is admitted), named by `columns` (default: the key)."""
        clauses = [sql.SQL("({})").format(sql.SQL(p)) for p in predicates if p is not None]
        if len(clauses) < len(predicates):
            return []
        shape = self.tables[relation]
        where = sql.SQL(" AND ").join(clauses)
        query = sql.SQL("SELECT {} FROM pg_temp.{} AS {} WHERE {}").format(
            self.key_sql(shape, columns), self.copies[relation][0], sql.Identifier(shape.name),
            where)  # the predicates are the model's validated, deparsed SQL
        with self.acting(actor, context):
            return self.labels(relation, shape, self.conn.execute(query).fetchall(), columns)

    # -- the commands ---------------------------------------------------------------------

    def select(self, actor: Actor, relation: str, context: str) -> Observation:
        shape = self.shapes[relation]
        allowed = self.promises.columns(actor, relation, "SELECT")
        read = shape.key if allowed is None or set(shape.key) <= set(allowed) else allowed
        if shape.kind == "view":
            read = shape.key[:1]
        query = sql.SQL("SELECT {} FROM {}").format(self.key_sql(shape, read),
                                                    sql.Identifier(shape.schema, shape.name))
        actual = self.attempt(actor, context, lambda: Outcome.of_rows(self.labels(
            relation, shape, self.conn.execute(query).fetchall(), read)))
        if not self.expect:
            return Observation(context, actual, actual)
        if not self.promises.allowed(actor, relation, "SELECT", read):
            return Observation(context, DENIED, actual)
        if shape.kind == "view":
            model_query = sql.SQL("SELECT {} FROM ({}) AS v").format(
                self.key_sql(shape, read), sql.SQL(self.promises.views[relation].query))
            expected = self.attempt(actor, context, lambda: Outcome.of_rows(self.labels(
                relation, shape, self.conn.execute(model_query).fetchall(), read)))
        else:  # named by the columns the actor may read (its key, when it may)
            expected = Outcome.of_rows(self.expected_rows(
                actor, context, relation,
                self.promises.rows(actor, relation, "SELECT"), columns=read))
        return Observation(context, expected, actual)

    def _snapshot(self, relation: str) -> dict[tuple, str]:
        shape = self.tables[relation]
        query = sql.SQL("SELECT {}, xmin::text FROM ONLY {}").format(
            self.key_sql(shape), sql.Identifier(shape.schema, shape.name))
        return {tuple(k): x for *k, x in self.conn.execute(query)}

    def _write(self, actor: Actor, relation: str, context: str,
               statement: sql.SQL | sql.Composed) -> Outcome:
        """Run `statement`; the rows it touched (new row versions or rows gone). On Citus
        they come back by RETURNING: the probe's transaction, having written through the
        actor's connections to the workers, cannot read through another role's."""
        shape = self.tables[relation]
        if self.model.citus:
            returning = sql.SQL("{} RETURNING {}").format(statement, sql.SQL(", ").join(
                map(sql.Identifier, shape.key)))
            return self.attempt(actor, context, lambda: Outcome.of_rows(self.labels(
                relation, shape, as_text(self.conn.execute(returning)))), keys=False)
        before = self._snapshot(relation)

        def work() -> Outcome:
            self.conn.execute(statement)
            self.conn.execute("RESET ROLE")
            after = self._snapshot(relation)
            touched = [k for k, x in before.items() if after.get(k) != x]
            return Outcome.of_rows(self.labels(relation, shape, touched))

        return self.attempt(actor, context, work, keys=False)

    def _returned(self, shape: Shape, *columns: str) -> tuple[str, ...]:
        """The columns a write reads: `columns`, and on Citus the key it returns."""
        return (*columns, *shape.key) if self.model.citus else columns

    def update(self, actor: Actor, relation: str, context: str) -> Observation:
        shape = self.tables[relation]
        allowed = self.promises.columns(actor, relation, "UPDATE")
        plain = [c.name for c in shape.columns
                 if c.name not in shape.key and c.name != self.tenant_columns[relation]]
        column = (allowed or plain or shape.key)[0]
        statement = sql.SQL("UPDATE {} SET {} = {}").format(
            sql.Identifier(shape.schema, shape.name), sql.Identifier(column),
            sql.Identifier(column))
        actual = self._write(actor, relation, context, statement)
        if not self.expect:
            return Observation(context, actual, actual)
        if not (self.promises.allowed(actor, relation, "UPDATE", (column,))
                and self.promises.allowed(actor, relation, "SELECT",
                                          self._returned(shape, column))):
            return Observation(context, DENIED, actual)
        rows = self.promises.rows(actor, relation, "UPDATE")
        reads = self.promises.rows(actor, relation, "SELECT")  # SET c = c reads c
        touched = self.expected_rows(actor, context, relation, rows, reads)
        check = self.promises.rows(actor, relation, "UPDATE", check=True)
        if touched and len(self.expected_rows(actor, context, relation, rows, reads, check)
                           ) < len(touched):
            return Observation(context, REFUSED, actual)
        return Observation(context, Outcome.of_rows(touched), actual)

    def delete(self, actor: Actor, relation: str, context: str) -> Observation:
        shape = self.tables[relation]
        statement = sql.SQL("DELETE FROM {}").format(sql.Identifier(shape.schema, shape.name))
        actual = self._write(actor, relation, context, statement)
        if not self.expect:
            return Observation(context, actual, actual)
        if not self.promises.allowed(actor, relation, "DELETE") or (
                self.model.citus and not self.promises.allowed(actor, relation, "SELECT",
                                                               shape.key)):
            return Observation(context, DENIED, actual)
        predicates = [self.promises.rows(actor, relation, "DELETE")]
        if self.model.citus:  # RETURNING reads the rows: the SELECT policies apply too
            predicates.append(self.promises.rows(actor, relation, "SELECT"))
        return Observation(context, Outcome.of_rows(self.expected_rows(
            actor, context, relation, *predicates)), actual)

    def candidate(self, relation: str, tenant: str) -> dict[str, str]:
        """A new row for `tenant`; rows it references by key are made fresh, so that it
        collides with nothing (in the current savepoint; on Citus committed, where a probe's
        own connections to the workers would not see them, and removed at the end)."""
        shape = self.tables[relation]
        tag = f"{tenant}{next(self.numbers)}"
        fresh = {}
        for column, (target, _) in shape.references.items():
            if (column in shape.key and column != self.tenant_columns[relation]
                    and target in self.tables and target != relation):
                fresh[target] = insert_row(self.conn, self.tables[target],
                                           self.candidate(target, tenant))
                if self.model.citus:
                    self.fresh.append((target, fresh[target]))
        return row_values(self.conn, shape, tenant, tag, self.tenant_columns, self.seeded,
                          self.numbers, parents=fresh)

    def trying(self) -> AbstractContextManager[object]:
        """Where a candidate row's fresh parents go: a transaction rolled back after, or
        on Citus none (see `candidate`)."""
        return nullcontext() if self.model.citus else self.conn.transaction(
            force_rollback=True)

    def insert(self, actor: Actor, relation: str, context: str) -> Observation:
        """Insert a row for the context's own tenant, then one for the other tenant."""
        shape = self.tables[relation]
        target = sql.Identifier(shape.schema, shape.name)
        parts = []
        for tenant in ("A" if context == "none" else context, OTHER[context]):
            with self.trying():
                values = self.candidate(relation, tenant)

                def work(values: dict[str, str] = values) -> Outcome:
                    self.conn.execute(insert_statement(target, shape, values),
                                      list(values.values()))
                    return INSERTED

                actual = self.attempt(actor, context, work, keys=False)
                expected = (self._expected_insert(actor, relation, context, values)
                            if self.expect else actual)
            parts.append((expected, actual))
        (own_expected, own), (other_expected, other) = parts
        return Observation(context, Insertion(own_expected, other_expected),
                           Insertion(own, other))

    def _expected_insert(self, actor: Actor, relation: str, context: str,
                         values: dict[str, str]) -> Outcome:
        shape = self.tables[relation]
        if not self.promises.allowed(actor, relation, "INSERT", tuple(values)):
            return DENIED
        check = self.promises.rows(actor, relation, "INSERT", check=True)
        if check is None:
            return REFUSED
        new = sql.SQL("pg_temp.{}").format(self.copies[relation][1])
        self.conn.execute(sql.SQL("DELETE FROM {}").format(new))
        self.conn.execute(insert_statement(new, shape, values), list(values.values()))
        query = sql.SQL("SELECT bool_and(({})) FROM {} AS {}").format(
            sql.SQL(check), new, sql.Identifier(shape.name))
        with self.acting(actor, context):
            admitted = one(self.conn.execute(query))[0]
        return INSERTED if admitted else REFUSED

    # -- side channels ----------------------------------------------------------------------

    def side_channels(self) -> Iterator[SideChannel]:
        """As each actor that may insert into a tenant table, under tenant A, write a row
        that collides with tenant B's key, or references B's rows; the error must not
        show B's values."""
        for table in self.model.tables.values():
            if not table.tenant_column or table.qualified not in self.probed:
                continue
            shape = self.tables[table.qualified]
            theirs = self.seeded.rows[table.qualified]["B1"]
            probes = []
            if table.tenant_column not in shape.key:
                probes.append((f"unique key ({', '.join(shape.key)})",
                               {c: theirs[c] for c in shape.key}, theirs))
            for column, (target, target_column) in shape.references.items():
                if column == table.tenant_column or target not in self.tables:
                    continue
                referenced = self.seeded.rows[target].get("B1") or {}
                if target_column in referenced:
                    probes.append((f"foreign key {column} -> {target}",
                                   {column: referenced[target_column] or ""}, referenced))
            for actor in self.actors:
                if self.promises.columns(actor, table.qualified, "INSERT") == ():
                    continue
                for name, override, row in probes:
                    yield self._side_channel(actor, table.qualified, shape, name, override,
                                             row)

    def _side_channel(self, actor: Actor, relation: str, shape: Shape, name: str,
                      override: dict[str, str | None], row: dict[str, str | None]
                      ) -> SideChannel:
        with self.trying():
            values = self.candidate(relation, "A") | override
            statement = insert_statement(sql.Identifier(shape.schema, shape.name), shape,
                                         values)
            text = ""
            outcome: Outcome
            try:
                with self.acting(actor, "A"):
                    self.conn.execute(statement, list(values.values()))
                outcome = INSERTED
            except psycopg.Error as exc:
                outcome = _outcome(exc)
                diag = exc.diag
                text = " ".join(filter(None, (diag.message_primary, diag.message_detail,
                                              diag.message_hint)))
        supplied = set(override.values())
        revealed = tuple(sorted(v for v in row.values()
                                if v and v not in supplied and len(v) > 3 and v in text))
        return SideChannel(relation, actor.label, name, outcome, revealed)


def run_matrix(conn: psycopg.Connection, model: Model, owner: str, *, expect: bool = True,
               only: set[str] | None = None) -> Matrix:
    """Seed, probe and compare, inside the caller's transaction (roll it back after). A
    sealed model's contexts are sealed with a key of the run's own, added to the key table
    for the transaction.

    On Citus, where one transaction cannot act as several roles on the workers, every probe
    is a transaction of its own, rolled back, over seed rows and a key that are committed
    and removed at the end.

    ``expect=False`` observes only (each observation expects what it saw), for a database
    in some other state than the model's: the model's relations and roles that do not exist
    there are left out, and contexts are sealed only when the database has a key table.
    `only` (qualified names) limits the cells to those relations and the relations whose
    policies or views read them (a review of a change to a few of them)."""
    if model.citus:
        conn.rollback()
        conn.autocommit = True
    run: _Run | None = None
    key = None
    try:
        if model.sealed and (expect or has_key_table(conn, model.helpers_schema)):
            key = rotate(conn, model.helpers_schema,
                         ContextKey.generate(f"verify-{uuid.uuid4().hex}"))
        run = _Run(conn, model, owner, key, expect, only)
        run.prepare()
        return _probe(run)
    finally:
        if model.citus:
            if run is not None:
                run.undo()
            if key is not None:
                retire(conn, model.helpers_schema, key.kid)
            conn.autocommit = False


def _probe(run: _Run) -> Matrix:
    relations = [r for r in run.shapes if r in run.probed]
    matrix = Matrix([a.label for a in run.actors], relations)
    probes = {"SELECT": run.select, "INSERT": run.insert, "UPDATE": run.update,
              "DELETE": run.delete}
    for relation in relations:
        commands = ROW_COMMANDS if run.shapes[relation].kind == "table" else ("SELECT",)
        for command in commands:
            for actor in run.actors:
                observations = tuple(probes[command](actor, relation, context)
                                     for context in CONTEXTS)
                matrix.cells.append(Cell(actor.label, relation, command, observations,
                                         tuple(run.seeded.rows.get(relation, {}))))
    if run.expect:
        matrix.side_channels = list(run.side_channels())
    return matrix
