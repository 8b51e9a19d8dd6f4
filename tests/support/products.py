"""The sales analytics data product in one environment of a scratch database: the model
under the environment's prefix, seed rows, logins for people, and bob as product owner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from rlskit import access
from rlskit.examples.sales import build_model
from rlskit.keystore import rotate
from rlskit.scratch import install_model
from rlskit.seal import current_key
from rlskit.testing import ScratchDatabase

SEED = """
INSERT INTO sales.customers VALUES (1, 'Acme GmbH', 'EU'), (2, 'Initech', 'US');
INSERT INTO sales.orders VALUES (1, 1, 'EU', 100), (2, 1, 'EU', 250), (3, 2, 'US', 75);
"""


class Environment:
    """One environment of the product: its database and its model (role prefix)."""

    def __init__(self, db: ScratchDatabase, name: str) -> None:
        self.db = db
        self.model = build_model(f"{db.role_prefix}{name}_")
        with db.connect() as conn:
            install_model(conn, self.model, db.role_prefix + "owner")
            rotate(conn, self.model.helpers_schema, current_key())  # the test run's key
            conn.execute(SEED)
            for person in ("alice", "bob", "carol", "dave"):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(self.ident(person)))
            # the platform team makes bob the product owner; bob decides the rest
            conn.execute(sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(self.role("owner")), self.ident("bob")))
            conn.commit()

    def role(self, kind: str) -> str:
        return self.model.role_name(f"sales_analytics_{kind}")

    def person(self, name: str) -> str:
        return f"{self.db.role_prefix}{name}"

    def ident(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.person(name))

    @contextmanager
    def as_person(self, name: str, role: str | None = None) -> Iterator[psycopg.Connection]:
        with self.db.connect(user=self.person(name), autocommit=True) as conn:
            if role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role(role))))
            yield conn

    def gateway(self) -> psycopg.Connection:
        """A connection as the product's authenticator login (what applications use)."""
        return self.db.connect(user=self.model.role_name("analytics_gateway"))

    def give(self, kind: str, grantor: str | None = "bob", reason: str = "test",
             **who: str) -> bool:
        """Record a grant in the store as `grantor` (None: the superuser)."""
        with self.db.connect(user=grantor and self.person(grantor)) as conn:
            return access.grant(conn, self.model, "sales_analytics", kind,
                                access.grantee(self.model, **who), reason)

    def grant(self, grantor: str, kind: str, to: str) -> None:
        with self.as_person(grantor, "owner" if grantor == "bob" else None) as conn:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(self.role(kind)),
                                                          self.ident(to)))


def regions(conn: psycopg.Connection) -> list[str]:
    return [r for (r,) in conn.execute("SELECT region FROM sales.orders ORDER BY id")]
