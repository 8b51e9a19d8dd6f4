"""Example: a multi-tenant workflow platform.

Tenants have members with read-only / member / tenant-admin roles, a service "runner"
role executes flows, and a restricted directory lets fellow members see a few columns of
each other. Members may leave a tenant (delete their own membership); tenant admins may
remove anyone from their tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, MetaData, PrimaryKeyConstraint, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rlskit import Claim, Model

UUID_DEFAULT = text("gen_random_uuid()")


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenant"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=UUID_DEFAULT)
    name: Mapped[str]


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=UUID_DEFAULT)
    email: Mapped[str] = mapped_column(String, unique=True)
    first_name: Mapped[str]
    last_name: Mapped[str]
    password_hash: Mapped[str] = mapped_column(server_default="")


class Membership(Base):
    __tablename__ = "membership"
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True,
                                               index=True)
    role: Mapped[str] = mapped_column(server_default="member")


class Flow(Base):
    __tablename__ = "flow"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=UUID_DEFAULT)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"))
    name: Mapped[str]
    status: Mapped[str] = mapped_column(server_default="draft")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    __table_args__ = (Index("flow_tenant_created", "tenant_id", "created_at"),)


metadata = Base.metadata


def _citus_metadata() -> MetaData:
    """The same tables for Citus, where every unique key of a distributed table holds its
    distribution column: a flow's key is (tenant_id, id)."""
    out = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(out)
    flow = out.tables["flow"]
    flow.c.tenant_id.primary_key = True
    flow.append_constraint(PrimaryKeyConstraint("tenant_id", "id"))
    return out


citus_metadata = _citus_metadata()


def build_model(role_prefix: str = "", *, citus: bool = False) -> Model:
    """The example's access model; `role_prefix` separates environments in one cluster.

    ``citus=True``: the same model sharded on a Citus cluster — memberships and flows
    distributed by tenant (their tables from `citus_metadata`), tenants and users copied to
    every node. Citus refuses policies
    that read other tables, so there a user sees only their own profile in ``users`` and
    the directory of fellow members (which would show only that) is left out."""
    model = Model(schema="public", settings_prefix="app", role_prefix=role_prefix)
    model.context(
        tenant_id=Claim("tenant_id", type="uuid"),
        user_id=Claim("sub", type="uuid"),
        department=Claim("department", type="text", required=False),
    )

    tenant, user, membership_table, flow = (
        (citus_metadata.tables[name] for name in ("tenant", "users", "membership", "flow"))
        if citus else (Tenant, User, Membership, Flow))

    read_only = model.role("read_only")
    member = model.role("member", inherits=read_only)
    admin = model.role("tenant_admin", inherits=member)
    runner = model.role("runner")
    model.authenticator("app_authenticator")
    model.owner("owner")  # NOLOGIN, no BYPASSRLS: owns the tables, so FORCE binds it
    # Who gets which role: the token's "role" claim, its "groups", or an attribute
    model.assign(read_only, role_claim="viewer")
    model.assign(member, role_claim="member")
    model.assign(admin, role_claim="admin")
    model.assign(admin, group="tenant-admins")
    model.assign(runner, role_claim="runner")
    model.assign(read_only, attributes={"department": "Sales"})

    model.tenant_table(tenant, tenant_column="id",
                       grants={read_only: "SELECT", admin: "UPDATE (name)"})

    users = model.table(user, rls=True,
                        grants={read_only: "SELECT (id, email, first_name, last_name)"})
    if citus:
        users.policy("own_profile", command="SELECT", to=read_only,
                     using="id = rlskit.user_id()")
    else:
        users.policy("fellow_members", command="SELECT", to=read_only,
                     using="EXISTS (SELECT 1 FROM membership m WHERE m.user_id = users.id)")

    membership = model.tenant_table(membership_table, grants={
        read_only: "SELECT", member: "SELECT, DELETE", admin: "ALL"})
    membership.policy("leave_tenant", command="DELETE", to=member,
                      using="user_id = rlskit.user_id()")
    membership.policy("admin_remove", command="DELETE", to=admin, using="true")

    model.tenant_table(flow, grants={
        read_only: "SELECT",
        member: "SELECT, INSERT, UPDATE",
        admin: "ALL",
        runner: "SELECT, UPDATE (status)",
    })

    if citus:
        model.reference_table(tenant)
        model.reference_table(user)
        model.distribute(membership_table, by="tenant_id")
        model.distribute(flow, by="tenant_id", colocate_with=membership_table)
        return model
    model.view(
        "member_directory",
        query="SELECT u.id, u.email, u.first_name, u.last_name FROM users u "
              "JOIN membership m ON m.user_id = u.id",
        grants={member: "SELECT"},
    )
    return model


model = build_model()
