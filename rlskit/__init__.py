"""rlskit: declare Postgres row-level security in Python; generate, migrate, test it."""

__version__ = "0.1.0"

from .errors import ConfigError, ContextError, ModelError, RlskitError  # noqa: E402
from .generate import generate_sql  # noqa: E402
from .model import Claim, Model, Policy, Role, Table, View  # noqa: E402

__all__ = [
    "Claim",
    "ConfigError",
    "ContextError",
    "Model",
    "ModelError",
    "Policy",
    "RlskitError",
    "Role",
    "Table",
    "View",
    "__version__",
    "generate_sql",
]
