"""The ``rlskit`` command line: a thin layer over the library.

`common` holds the app and what every command shares; each other module registers the
commands of one topic when it is imported here (as Alembic's ``autogenerate.compare``
gathers its comparators).
"""

from . import access, database, keys, migrations, model, review, server  # noqa: F401 (registers)
from .common import app

__all__ = ["app"]
