"""Dependencies of the route handlers: the running system, the caller, roles, idempotency."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from gopay.api.problems import Problem
from gopay.security.tokens import AccessClaims, read_access_token
from gopay.system import System

# Dependencies are `async def` so that FastAPI runs them on the event loop: a sync dependency
# costs a hop through the thread pool per request, and those hops dominated the profile.


async def get_system(request: Request) -> System:
    system: System = request.app.state.system
    return system


SystemDep = Annotated[System, Depends(get_system)]

_bearer = HTTPBearer(auto_error=False, description="An access token from /v1/auth/login")


async def current_caller(
        request: Request,
        system: SystemDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The signed-in user of a valid access token whose session is still alive."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise Problem(401, "a bearer access token is required", headers=challenge)
    claims = read_access_token(credentials.credentials, system.settings.signing_key)
    if claims is None:
        raise Problem(401, "the access token is invalid or expired", headers=challenge)
    if not await request.app.state.session_gate.is_alive(claims.session_id):
        raise Problem(401, "this session has ended", headers=challenge)
    return claims


Caller = Annotated[AccessClaims, Depends(current_caller)]


def staff_with(*roles: str) -> Callable[[AccessClaims], Awaitable[AccessClaims]]:
    """A dependency that lets only staff members with one of `roles` through."""

    async def check(caller: Caller) -> AccessClaims:
        if caller.kind != "staff" or caller.role not in roles:
            raise Problem(403, "your role does not allow this")
        return caller

    return check


async def customer(caller: Caller) -> AccessClaims:
    if caller.wallet_id is None:
        raise Problem(403, "only customers with a wallet can do this")
    return caller


Customer = Annotated[AccessClaims, Depends(customer)]
Admin = Annotated[AccessClaims, Depends(staff_with("admin"))]
UserManager = Annotated[AccessClaims, Depends(staff_with("admin", "sub_admin"))]
UserReader = Annotated[AccessClaims, Depends(staff_with("admin", "sub_admin", "support", "auditor"))]

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255,
           description="Repeat a request safely: same key and body, same answer, one effect"),
]

SecondFactor = Annotated[
    str | None,
    Header(alias="GoPay-OTP", min_length=6, max_length=16,
           description="A fresh 2FA code, asked for large payments and security changes"),
]


def fingerprint(body: BaseModel) -> str:
    """What makes two requests with one idempotency key the same request."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


IdCursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
          description="The `next_cursor` of the page before"),
]


def id_cursor(cursor: str | None) -> str | None:
    """A list cursor that is the id of the last row seen; anything else is a 422."""
    if cursor is None:
        return None
    try:
        return str(UUID(cursor))
    except ValueError:
        raise Problem(422, "cursor is not valid", "validation_error") from None


def customer_of(*kinds: str) -> Callable[[AccessClaims], Awaitable[AccessClaims]]:
    """A dependency that lets only customers of these kinds (person, company, agent) through."""

    async def check(caller: Customer) -> AccessClaims:
        if caller.kind not in kinds:
            raise Problem(403, f"only {' or '.join(kinds)} accounts can do this")
        return caller

    return check


Person = Annotated[AccessClaims, Depends(customer_of("person"))]
Agent = Annotated[AccessClaims, Depends(customer_of("agent"))]
