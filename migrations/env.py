"""Alembic environment of the example model (rlskit.examples.saas): Alembic manages the
tables, rlskit the roles, grants, row-level security, policies, views and helpers."""

from rlskit.examples.saas import metadata
from rlskit.migrations import run_migrations

run_migrations(target_metadata=metadata)
