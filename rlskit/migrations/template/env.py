"""Alembic environment wired to rlskit (written by `rlskit init`).

rlskit reads the model from [tool.rlskit] in pyproject.toml and the database from
`rlskit migrate` / RLSKIT_DATABASE_URL / DATABASE_URL.
"""

from rlskit.migrations import run_migrations

# If Alembic also manages your tables, pass their metadata, e.g.:
#     from myapp.models import Base
#     run_migrations(target_metadata=Base.metadata)
run_migrations(target_metadata=None)
