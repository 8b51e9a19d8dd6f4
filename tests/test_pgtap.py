"""A second opinion: pgTAP (Debian's postgresql-15-pgtap, on PostgreSQL 15) checks the
example database against what rlskit reports — the policies of `rlskit sql` and the
privileges of the `rlskit verify` matrix — with policies_are, policy_roles_are,
policy_cmd_is and table_privs_are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Example, make_example

from rlskit import objects as o
from rlskit.model import ROW_COMMANDS
from rlskit.target import target_objects
from rlskit.testing import Cluster
from rlskit.testing.databases import local_cluster
from rlskit.verify import verify_database

PG15 = Path("/usr/lib/postgresql/15/bin")
PGTAP = Path("/usr/share/postgresql/15/extension/pgtap.control")


def _has_pgtap(cluster: Cluster) -> bool:
    with psycopg.connect(cluster.admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgtap'"
                            ).fetchone() is not None


@pytest.fixture(scope="module")
def pgtap_cluster(rlskit_cluster: Cluster) -> Iterator[Cluster]:
    """The test server if it has pgTAP (the PostgreSQL 15 run), else a PostgreSQL 15 of
    its own."""
    if _has_pgtap(rlskit_cluster):
        yield rlskit_cluster
        return
    if not (PG15 / "postgres").exists() or not PGTAP.exists():
        pytest.skip("pgTAP needs Debian's postgresql-15 and postgresql-15-pgtap packages "
                    "(apt-get install postgresql-15-pgtap)")
    with local_cluster(str(PG15)) as cluster:
        yield cluster


@pytest.fixture
def pgtap_example(pgtap_cluster: Cluster) -> Iterator[Example]:
    with pgtap_cluster.database() as db:
        example = make_example(db)
        with db.connect() as conn:
            conn.execute("CREATE EXTENSION pgtap")
            conn.commit()
        yield example


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::name[]"  # catalog names


def rlskit_says(example: Example) -> list[str]:
    """pgTAP assertions built from rlskit's own reports of the example database."""
    model = example.model
    with example.db.connect() as conn:
        version = conn.info.server_version // 10000
        matrix = verify_database(conn, model)
    objects = target_objects(model, version)
    tests = []
    for table in model.tables.values():
        policies = [p for p in objects if isinstance(p, o.DbPolicy) and p.table == table.name]
        tests.append(f"SELECT policies_are('{table.schema}', '{table.name}', "
                     f"{_array([p.name for p in policies])})")
        for p in policies:
            # pgTAP lists a PUBLIC policy's roles as none (PUBLIC is not in pg_roles)
            tests.append(f"SELECT policy_roles_are('{table.schema}', '{table.name}', "
                         f"'{p.name}', {_array(list(p.roles))})")
            tests.append(f"SELECT policy_cmd_is('{table.schema}', '{table.name}', "
                         f"'{p.name}', '{p.command.lower()}', 'command of {p.name}')")
        for role in model.group_roles:
            granted = {c.command for c in matrix.cells if c.actor == role.name
                       and c.relation == table.qualified and c.promise != "denied"}
            lineage = {model.role_name(r) for r in model.ancestors(role)}
            column_only = {priv.name for g in objects if isinstance(g, o.TableGrant)
                           and g.table == table.name and g.role in lineage
                           for priv in g.privileges if priv.columns} - {
                priv.name for g in objects if isinstance(g, o.TableGrant)
                and g.table == table.name and g.role in lineage
                for priv in g.privileges if not priv.columns}
            privileges = [c for c in ROW_COMMANDS if c in granted - column_only]
            tests.append(f"SELECT table_privs_are('{table.schema}', '{table.name}', "
                         f"'{model.role_name(role)}', {_array(privileges)})")
    return tests


def run_tap(example: Example, tests: list[str]) -> list[str]:
    with example.db.connect() as conn:
        lines = [conn.execute(f"SELECT plan({len(tests)})").fetchone()[0]]
        for test in tests:  # built from catalog names and rlskit's own output
            lines += [row[0] for row in conn.execute(test)]
        lines += [row[0] for row in conn.execute("SELECT * FROM finish()")]
        conn.rollback()
    return lines


def test_pgtap_confirms_rlskits_report(pgtap_example):
    tests = rlskit_says(pgtap_example)
    assert len(tests) > 40
    lines = run_tap(pgtap_example, tests)
    failed = [line for line in lines if line.startswith("not ok")]
    assert not failed, "\n".join(lines)
    assert sum(line.startswith("ok ") for line in lines) == len(tests)


def test_pgtap_disagrees_when_the_database_drifts(pgtap_example):
    """The second opinion can fail: an extra grant and a dropped policy are caught."""
    tests = rlskit_says(pgtap_example)
    with pgtap_example.db.connect() as conn:
        conn.execute(f"GRANT DELETE ON flow TO {pgtap_example.role('runner')}")
        conn.execute("DROP POLICY leave_tenant ON membership")
        conn.commit()
    failed = [line.splitlines()[0].split(" - ", 1)[1]
              for line in run_tap(pgtap_example, tests) if line.startswith("not ok")]
    runner = pgtap_example.role("runner")
    assert failed == [
        "Table public.membership should have the correct policies",
        "Policy leave_tenant for table public.membership should have the correct roles",
        "command of leave_tenant",
        f"Role {runner} should be granted SELECT on table public.flow",
    ]
