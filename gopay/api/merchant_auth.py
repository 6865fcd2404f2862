"""Who is calling a merchant endpoint: a merchant's own session (JWT), or its server's API key.

An API key (`Authorization: Bearer sk_...`) is accepted only where a route asks for
`MerchantOrKey`; everywhere else it is no access token at all (401). A key is checked on
every request against the store, never against a copy kept in this process, so a revoked
key stops working at once in every API process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from cachetools import LRUCache
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gopay.aggregates.api_key import ApiKey
from gopay.aggregates.user import User
from gopay.api.deps import SystemDep, current_caller
from gopay.api.problems import Problem
from gopay.commands.merchants import is_merchant
from gopay.security.api_keys import key_id_of, looks_like_api_key
from gopay.system import System

_bearer = HTTPBearer(auto_error=False,
                     description="An access token from /v1/auth/login, or a merchant's sk_live_ API key")

# Merchants seen so far: a company's category never changes, so one look is enough.
_MERCHANTS: LRUCache[UUID, bool] = LRUCache(maxsize=100_000)


@dataclass(frozen=True)
class MerchantCaller:
    """A merchant, and the API key it called with (None: signed in)."""

    user_id: UUID
    wallet_id: UUID
    api_key_id: UUID | None = None


async def merchant_signed_in(request: Request, system: SystemDep,
                             credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                    Depends(_bearer)]) -> MerchantCaller:
    """A merchant signed in with an access token (API keys are refused: 401)."""
    claims = await current_caller(request, system, credentials)
    if claims.kind != "company" or claims.wallet_id is None:
        raise Problem(403, "only merchants can do this")
    if claims.user_id not in _MERCHANTS:
        user = await run_in_threadpool(system.app.find, claims.user_id, User)
        if not is_merchant(user):
            raise Problem(403, "only merchants can do this")
        _MERCHANTS[claims.user_id] = True
    return MerchantCaller(claims.user_id, claims.wallet_id)


async def merchant_or_key(request: Request, system: SystemDep,
                          credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                 Depends(_bearer)]) -> MerchantCaller:
    """A merchant signed in, or a merchant's server with a live API key."""
    if credentials is None or not looks_like_api_key(credentials.credentials):
        return await merchant_signed_in(request, system, credentials)
    key = await run_in_threadpool(_live_key, system, credentials.credentials)
    if key is None:
        raise Problem(401, "this API key is not valid, or it was revoked",
                      headers={"WWW-Authenticate": "Bearer"})
    return MerchantCaller(key.owner_id, key.wallet_id, key.id)


def _live_key(system: System, secret: str) -> ApiKey | None:
    """The key `secret` belongs to, read from the store now, if it is still alive."""
    key_id = key_id_of(secret)
    key = system.app.find(key_id, ApiKey) if key_id else None
    return key if key is not None and key.admits(secret) else None


Merchant = Annotated[MerchantCaller, Depends(merchant_signed_in)]
MerchantOrKey = Annotated[MerchantCaller, Depends(merchant_or_key)]
