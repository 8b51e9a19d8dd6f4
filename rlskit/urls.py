"""Database URLs in every form a SQLAlchemy or libpq user writes, as one of the two forms
rlskit's drivers take: libpq's (psycopg) and SQLAlchemy's (Alembic's engine).

Accepted: ``postgresql://…``, ``postgres://…``, ``postgresql+<driver>://…`` (psycopg,
psycopg2, asyncpg, pg8000, …) and libpq keyword strings (``host=… dbname=…``). Anything
else is a ``ConfigError`` naming the scheme, never the password.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, make_url

from .errors import ConfigError

__all__ = ["libpq_url", "sqlalchemy_url"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES = ("postgresql", "postgres")


def libpq_url(url: str) -> str:
    """`url` as libpq takes it (``postgresql://…`` or a keyword string), checked."""
    match = _SCHEME.match(url)
    if match:
        dialect, _, driver = match.group(1).partition("+")
        if dialect.lower() not in _POSTGRES:
            raise ConfigError(f"not a PostgreSQL database URL (scheme {match.group(1)!r}); "
                              "expected postgresql://user@host:port/dbname")
        url = "postgresql://" + url[match.end():]
        if driver == "asyncpg":  # asyncpg spells libpq's sslmode as ssl
            url = re.sub(r"([?&])ssl=(true|1)\b", r"\1sslmode=require", url)
            url = re.sub(r"([?&])ssl=", r"\1sslmode=", url)
    elif "=" not in url:
        raise ConfigError(f"not a database URL: {_shown(url)}; expected "
                          "postgresql://user@host:port/dbname or 'host=… dbname=…'")
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ConfigError(f"invalid database URL {_shown(url)}: {reason}") from None
    return url


def sqlalchemy_url(url: str) -> str:
    """`url` (any accepted form) as SQLAlchemy's psycopg 3 URL."""
    url = libpq_url(url)
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    return URL.create(
        "postgresql+psycopg", username=params.pop("user", None),
        password=params.pop("password", None), database=params.pop("dbname", None),
        query=params,
    ).render_as_string(hide_password=False)


def _shown(url: str) -> str:
    """`url` for an error message, its password masked."""
    try:
        if "://" in url:
            shown = make_url(url).render_as_string(hide_password=True)
        elif "=" in url:
            shown = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)
        else:  # not even URL-shaped: up to where a password could start
            head = re.split(r"[:@\s]", url, maxsplit=1)[0]
            shown = head if head == url else head + "…"
    except Exception:
        shown = url.split(":", 1)[0] + "…"
    return repr(shown if len(shown) <= 80 else shown[:79] + "…")
