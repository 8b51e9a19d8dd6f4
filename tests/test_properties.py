"""Property tests: random models (roles, hierarchies, tenant tables, grants, rules) over
random data, verified on a real database. Whatever the model says, nothing done under
tenant A's context touches tenant B's rows, and nothing done without a context touches
anything; and the database does exactly what the model promises."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import UUID

from rlskit import Claim, Model
from rlskit.verify import Cell, Insertion, Matrix, Observation, Outcome, verify_scratch
from rlskit.verify.outcome import INSERTED

COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
EXPRESSIONS = ("true", "n > 5", "n <= 5", "label <> 'hidden'", "owner = rlskit.user_id()",
               "n > 5 OR owner = rlskit.user_id()")


@st.composite
def models(draw: st.DrawFn) -> Model:
    model = Model(role_prefix="")
    model.context(tenant_id=Claim("tenant_id", type="uuid"),
                  user_id=Claim("sub", type="uuid", required=False))
    roles = []
    for i in range(draw(st.integers(1, 4))):
        parents = draw(st.lists(st.sampled_from(roles), unique=True, max_size=2)) if roles else []
        roles.append(model.role(f"r{i}", inherits=parents))
    model.authenticator("login")
    metadata = MetaData()
    tenant = Table("tenant", metadata,
                   Column("id", UUID, primary_key=True, server_default=text("gen_random_uuid()")))
    model.tenant_table(tenant, tenant_column="id",
                       grants={r: "SELECT" for r in draw(st.lists(st.sampled_from(roles),
                                                                  unique=True))})
    for t in range(draw(st.integers(1, 2))):
        table = Table(
            f"t{t}", metadata,
            Column("id", UUID, primary_key=True, server_default=text("gen_random_uuid()")),
            Column("tenant_id", UUID, ForeignKey("tenant.id"), nullable=False, index=True),
            Column("owner", UUID),
            Column("n", Integer, nullable=False,
                   server_default=str(draw(st.integers(0, 10)))),
            Column("label", String, nullable=False,
                   server_default=draw(st.sampled_from(["shown", "hidden"]))))
        grants = {}
        for role in draw(st.lists(st.sampled_from(roles), unique=True, min_size=1)):
            grants[role] = ", ".join(draw(st.lists(st.sampled_from(COMMANDS), unique=True,
                                                   min_size=1)))
        declared = model.tenant_table(table, grants=grants)
        for p in range(draw(st.integers(0, 2))):
            command = draw(st.sampled_from((*COMMANDS, "ALL")))
            expression = draw(st.sampled_from(EXPRESSIONS))
            kwargs = {"with_check": expression} if command == "INSERT" else {"using": expression}
            declared.policy(f"p{p}", command=command, to=draw(st.sampled_from(roles)),
                            permissive=draw(st.booleans()), **kwargs)
    return model


def assert_isolated(matrix: Matrix) -> None:
    for cell in matrix.cells:
        for o in cell.observations:
            where = f"{cell.actor} {cell.command} {cell.relation} in context {o.context}"
            if isinstance(o.actual, Insertion):
                assert o.actual.other != INSERTED, where
                assert o.context != "none" or o.actual.own != INSERTED, where
                continue
            touched = o.actual.rows
            if o.context == "none":
                assert not touched, where
            else:
                assert all(label.startswith(o.context) for label in touched), where


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(model=models())
def test_random_models_isolate_tenants_and_keep_their_promises(rlskit_cluster, model):
    matrix = verify_scratch(rlskit_cluster.url("postgres"), model)
    assert_isolated(matrix)
    assert matrix.ok, [(c.actor, c.relation, c.command, c.observations)
                       for c in matrix.violations]


def test_the_isolation_check_can_fail():
    """A matrix where tenant A's context touched a B row fails the invariant."""
    leak = Matrix(["r0"], ["public.t0"], [Cell("r0", "public.t0", "SELECT", (
        Observation("A", Outcome.of_rows(["A1"]), Outcome.of_rows(["A1", "B1"])),))])
    with pytest.raises(AssertionError, match="r0 SELECT public.t0 in context A"):
        assert_isolated(leak)
