"""rlskit: declare Postgres row-level security in Python; generate, migrate, test it."""

from .access import connect
from .context import RequestContext, as_context
from .errors import (
    ConfigError,
    ContextError,
    ModelError,
    RlskitError,
    TokenError,
    UnsafeConnectionError,
)
from .generate import generate_sql
from .model import Claim, Model, Policy, Role, Table, View
from .version import __version__

__all__ = [
    "Claim",
    "ConfigError",
    "ContextError",
    "Model",
    "ModelError",
    "Policy",
    "RequestContext",
    "RlskitError",
    "Role",
    "Table",
    "TokenError",
    "UnsafeConnectionError",
    "View",
    "__version__",
    "as_context",
    "connect",
    "generate_sql",
]
