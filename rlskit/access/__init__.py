"""Access as code for data products: who holds a product's roles is data in the database.

`store` is the SQL (grants table, audit log, the functions that check and change them),
`grants` manages it (grant, revoke, list, promote between environments) and `holders`
resolves callers at run time (a token's user id, groups and attributes → the roles held)
and connects analysts, explaining a refusal.
"""

from .grants import (
    AccessError,
    Grant,
    Grantee,
    Promotion,
    grant,
    grantee,
    history,
    list_grants,
    plan_promotion,
    product_role,
    promote,
    revoke,
)
from .holders import check, connect, context_for, explain, roles_held

__all__ = [
    "AccessError",
    "Grant",
    "Grantee",
    "Promotion",
    "check",
    "connect",
    "context_for",
    "explain",
    "grant",
    "grantee",
    "history",
    "list_grants",
    "plan_promotion",
    "product_role",
    "promote",
    "revoke",
    "roles_held",
]
