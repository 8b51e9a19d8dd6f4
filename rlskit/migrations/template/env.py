"""Alembic environment wired to rlskit (written by `rlskit init`).

rlskit reads the model from [tool.rlskit] in pyproject.toml and the database from
`rlskit migrate -d` / RLSKIT_DATABASE_URL / DATABASE_URL, else the development server.
The project's root is importable here (Alembic's prepend_sys_path), with rlskit's
commands and with plain `alembic` alike.
"""

from rlskit.migrations import run_migrations

# If Alembic also manages your tables, pass their metadata, e.g.:
#     from myapp.models import Base
#     run_migrations(target_metadata=Base.metadata)
run_migrations(target_metadata=None)
