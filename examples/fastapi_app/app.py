"""A FastAPI app over the SaaS example: every request runs in its caller's context.

The bearer token is verified, mapped to a `RequestContext` by the model, and the request's
database work runs in one transaction opened with that context on a pooled connection.
Switching tenant is presenting another token; the code never filters by tenant itself.

Run it: ``JWT_SECRET=… DATABASE_URL=postgresql://app_authenticator@…/db \
uvicorn --factory examples.fastapi_app.app:from_env``

(No ``from __future__ import annotations`` here: FastAPI reads the dependency aliases
defined inside `create_app` from the annotations at runtime.)
"""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from rlskit import ContextError, Model, RequestContext, TokenError
from rlskit.context import from_token
from rlskit.examples.saas import model as saas_model
from rlskit.jwt import Verifier
from rlskit.psycopg import pool_options, transaction
from rlskit.runtime import check_connection


class NewFlow(BaseModel):
    name: str


def create_app(database_url: str, verifier: Verifier, model: Model = saas_model) -> FastAPI:
    """The app, connecting to `database_url` as the model's authenticator."""
    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=False,
                          **pool_options(model))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True)
        with pool.connection() as conn:
            check_connection(conn, model)  # refuse to serve as a role that bypasses RLS
        yield
        pool.close()

    app = FastAPI(title="rlskit example", lifespan=lifespan)
    bearer = HTTPBearer(auto_error=False)

    def context(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                x_role: Annotated[str | None, Header()] = None) -> RequestContext:
        token = credentials.credentials if credentials else None
        try:
            return from_token(model, verifier, token, role=x_role)
        except TokenError as exc:
            raise HTTPException(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        except ContextError as exc:
            raise HTTPException(401 if token is None else 403, str(exc)) from None

    Context = Annotated[RequestContext, Depends(context)]

    def database(ctx: Context) -> Iterator[psycopg.Connection]:
        with pool.connection() as conn, transaction(conn, ctx):
            yield conn

    Db = Annotated[psycopg.Connection, Depends(database)]

    @app.exception_handler(psycopg.errors.InsufficientPrivilege)
    def forbidden(_: Request, exc: psycopg.errors.InsufficientPrivilege) -> JSONResponse:
        return JSONResponse({"detail": exc.diag.message_primary}, status_code=403)

    @app.get("/flows")
    def flows(db: Db) -> list[dict]:
        rows = db.execute("SELECT id, name, status FROM flow ORDER BY created_at, name")
        return [{"id": str(i), "name": n, "status": s} for i, n, s in rows]

    @app.post("/flows", status_code=201)
    def create_flow(flow: NewFlow, db: Db, ctx: Context) -> dict:
        row = db.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, %s) RETURNING id",
                         [ctx.tenant_id, flow.name]).fetchone()
        return {"id": str(row[0]), "name": flow.name}

    @app.get("/directory")
    def directory(db: Db) -> list[dict]:
        rows = db.execute("SELECT DISTINCT id, email, first_name, last_name "
                          "FROM member_directory ORDER BY email")
        return [{"id": str(i), "email": e, "first_name": f, "last_name": last}
                for i, e, f, last in rows]

    @app.delete("/memberships/{user_id}", status_code=204)
    def remove_member(user_id: uuid.UUID, db: Db) -> None:
        if db.execute("DELETE FROM membership WHERE user_id = %s", [user_id]).rowcount == 0:
            raise HTTPException(404, "no such membership in your tenant")

    return app


def from_env() -> FastAPI:
    """The app configured by ``DATABASE_URL``, ``JWT_SECRET``, ``JWT_AUDIENCE`` and
    ``JWT_ISSUER`` (for uvicorn --factory); the context key comes from
    ``RLSKIT_CONTEXT_KEY``."""
    verifier = Verifier(secret=os.environ["JWT_SECRET"], audience=os.environ["JWT_AUDIENCE"],
                        issuer=os.environ["JWT_ISSUER"])
    return create_app(os.environ["DATABASE_URL"], verifier)
