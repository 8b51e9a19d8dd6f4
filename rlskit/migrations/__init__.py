"""Alembic integration: importing this registers rlskit's operations (``op.create_policy``
and the rest), their renderers and the ``"rlskit"`` autogenerate plugin."""

from . import compare, ops, render  # noqa: F401 - registration side effects
from .environment import run_migrations

__all__ = ["run_migrations"]
