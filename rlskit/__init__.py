"""rlskit: declare Postgres row-level security in Python; generate, migrate, test it."""

__version__ = "0.1.0"

from .access import connect  # noqa: E402
from .context import RequestContext, as_context  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    ContextError,
    ModelError,
    RlskitError,
    TokenError,
    UnsafeConnectionError,
)
from .generate import generate_sql  # noqa: E402
from .model import Claim, Model, Policy, Role, Table, View  # noqa: E402

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
