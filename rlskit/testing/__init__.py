"""Testing support: real PostgreSQL clusters and per-test databases (see `plugin`)."""

from .databases import Cluster, ScratchDatabase, open_cluster

__all__ = ["Cluster", "ScratchDatabase", "open_cluster"]
