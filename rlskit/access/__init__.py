"""Access as code for data products: who holds a product's roles is data in the database.

`store` is the SQL (grants table, audit log, the functions that check and change them),
`grants` manages it (grant, revoke, list, promote between environments) and `holders`
resolves callers at run time (a token's user id, groups and attributes → the roles held)
and connects analysts, explaining a refusal.
"""

from . import grants, holders
from .grants import *  # noqa: F403  (the package exports both modules, as asyncio does)
from .holders import *  # noqa: F403

__all__ = [*grants.__all__, *holders.__all__]
