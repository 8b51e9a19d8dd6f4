"""Helpers the tests share: PgBouncer, the data product environments, catalog snapshots and
tokens."""
