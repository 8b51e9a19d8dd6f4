"""What an ``env.py`` needs: ``run_migrations()`` wires Alembic to rlskit in one call.

The database URL comes from the command (``rlskit migrate``), else ``sqlalchemy.url`` in
the Alembic configuration, else rlskit's own configuration (``RLSKIT_DATABASE_URL``,
``DATABASE_URL``, ``[tool.rlskit] database_url``). Online, all revisions run in one
transaction, so a failing migration leaves the database as it was (on Citus, the workers'
copies of the context key table follow once it commits). Offline (``--sql``),
SQL is printed for the PostgreSQL version given by ``-x pg_version=N`` (default 18).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from alembic import context
from sqlalchemy import MetaData, create_engine, pool

from ..config import load_config, load_model
from ..generate import DEFAULT_PG_VERSION, check_pg_version
from ..keystore import sync_workers
from ..model import Model
from ..urls import libpq_url, sqlalchemy_url
from .compare import PLUGIN

__all__ = ["run_migrations"]


def _project_dir(config: Any) -> Path | None:
    """Where to look for ``[tool.rlskit]``: the command's project, else beside the
    Alembic configuration file, else the working directory."""
    if "rlskit_root" in config.attributes:
        return Path(config.attributes["rlskit_root"])
    for name in (config.config_file_name, getattr(config, "toml_file_name", None)):
        if name:
            return Path(name).resolve().parent
    return None


def _citus_mode(model: Model) -> None:
    """On Citus, DDL on reference tables may follow a sharded table's in one transaction
    only when Citus sends shard commands over one connection per node."""
    if model.citus:
        context.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")


def run_migrations(target_metadata: MetaData | None = None, model: Model | None = None
                   ) -> None:
    """Run Alembic (online or offline) with rlskit's ops and autogenerate plugin.

    `target_metadata` is your SQLAlchemy metadata when Alembic also manages the tables;
    `model` defaults to ``[tool.rlskit] model``; the model an rlskit command runs with
    comes first.
    """
    config = context.config
    settings = load_config(_project_dir(config))
    # the command's model wins (an environment's role prefix, a review's scratch prefix)
    model = (config.attributes.get("rlskit_model") or model
             or load_model(settings.model, settings.root))
    x_args = context.get_x_argument(as_dictionary=True)
    pg_version = int(config.attributes.get("rlskit_pg_version")
                     or x_args.get("pg_version") or DEFAULT_PG_VERSION)
    check_pg_version(pg_version)
    # Without metadata, Alembic's own comparators would see every table as one to drop:
    # then autogenerate compares the rlskit model only.
    plugins = [PLUGIN] if target_metadata is None else ["alembic.autogenerate.*", PLUGIN]
    # Alembic reflects the schemas the metadata's tables live in, and only those (so the
    # helpers schema, with the data products' grants store, is never proposed for drop).
    schemas = {t.schema for t in (target_metadata or MetaData()).tables.values()}
    options: dict[str, Any] = {
        "include_schemas": bool(schemas - {None}),
        "include_name": lambda name, kind, parents: kind != "schema" or name in schemas
        or (name is None and not schemas),
        "target_metadata": MetaData() if target_metadata is None else target_metadata,
        "rlskit_model": model,
        "rlskit_pg_version": pg_version,
        "rlskit_role_prefix": model.role_prefix,
        "autogenerate_plugins": plugins,
        "transaction_per_migration": False,
    }
    url = (config.attributes.get("rlskit_database_url")
           or config.get_section(config.config_ini_section, {}).get("sqlalchemy.url")
           or settings.database_url)
    if not url and not context.is_offline_mode():  # as `rlskit migrate`: the dev server
        server = settings.dev_server()
        server.start()
        url = server.url()
    if context.is_offline_mode():
        # paramstyle "named": a pyformat driver would print every % of a function body
        # (PL/pgSQL's RAISE placeholders) as %%
        context.configure(url=sqlalchemy_url(url or "postgresql+psycopg://"),
                          literal_binds=True, dialect_opts={"paramstyle": "named"}, **options)
        with context.begin_transaction():
            _citus_mode(model)
            context.run_migrations()
        return
    engine = create_engine(sqlalchemy_url(str(url)), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            _citus_mode(model)
            context.run_migrations()
    if model.citus and model.sealed:  # the workers' key tables, once the keys' is committed
        with psycopg.connect(libpq_url(str(url)), autocommit=True) as conn:
            sync_workers(conn, model.helpers_schema)
