"""Testing support: real PostgreSQL clusters and per-test databases (see `plugin`)."""

from .databases import Cluster, ScratchDatabase, open_cluster
from .policy import (
    PolicyDatabase,
    access_matrix_tests,
    assert_denied,
    assert_invisible,
    assert_visible,
)

__all__ = ["Cluster", "PolicyDatabase", "ScratchDatabase", "access_matrix_tests",
           "assert_denied", "assert_invisible", "assert_visible", "open_cluster"]
