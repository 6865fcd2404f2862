"""A staff member's dashboard session: their API tokens in cookies, CSRF tokens, and API calls made for them.

The dashboard holds no session of its own: signing in is `POST /v1/auth/login`, and the
cookies carry the access and refresh tokens it gave (Secure, HttpOnly, SameSite=Strict,
for /admin only). Every change a staff member makes is a call to the API with their token,
made in-process through the application itself, so it meets the same role checks,
commands and problem answers as any other client's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from cachetools import TTLCache
from fastapi import Request, Response

from gopay.security.tokens import AccessClaims, read_access_token
from gopay.system import System

ACCESS_COOKIE = "gopay_staff"
REFRESH_COOKIE = "gopay_staff_refresh"
LOGIN_CSRF_COOKIE = "gopay_login_csrf"
COOKIE_PATH = "/admin"
# In-process calls need some origin; nothing in the API reads it.
INTERNAL_BASE_URL = "http://gopay.internal"

# Pages of one session that load at once (two tabs, a page and its chart) all find the access
# token expired. The first renews it; the others take that renewal instead of presenting the
# spent refresh token again, which the API would take for a thief's and end the session. Kept
# seconds only, in this process: the refresh token stays single-use for anyone else.
_renewals: TTLCache[str, dict[str, str]] = TTLCache(maxsize=10_000, ttl=10)
_renewing = asyncio.Lock()


@dataclass(frozen=True)
class StaffSession:
    """A signed-in staff member: their claims and the token the API knows them by."""

    claims: AccessClaims
    access_token: str
    csrf_token: str
    # New tokens to give the browser, when the access token had to be refreshed.
    renewed: dict[str, str] | None = None

    @property
    def role(self) -> str:
        return self.claims.role or ""


def csrf_token_for(system: System, session_id: Any) -> str:
    """The CSRF token of a session: bound to it, so a token from another session is useless."""
    key = system.settings.signing_key.encode()
    return hmac.new(key, f"dashboard-csrf/{session_id}".encode(), hashlib.sha256).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form's token is the expected one (none expected, say no cookie: never)."""
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(),
                                                                         given.encode())


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, secure=True, httponly=True,
                        samesite="strict")


def keep_tokens(response: Response, tokens: dict[str, str]) -> None:
    """Give the browser the session's tokens, as cookies no script can read."""
    set_cookie(response, ACCESS_COOKIE, tokens["access_token"])
    set_cookie(response, REFRESH_COOKIE, tokens["refresh_token"])


def forget_tokens(response: Response) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, secure=True, httponly=True,
                               samesite="strict")


async def call_api(request: Request, method: str, path: str, *, token: str | None = None,
                   json: Any = None, params: dict[str, Any] | None = None) -> httpx.Response:
    """Call GoPay's own API in-process, as the browser's address, with the staff member's token."""
    client = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 0)
    transport = httpx.ASGITransport(app=request.app, raise_app_exceptions=False, client=client)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if forwarded := request.headers.get("x-forwarded-for"):
        # Behind a trusted proxy the API finds the client's address here, as for any request.
        headers["X-Forwarded-For"] = forwarded
    async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE_URL) as api:
        return await api.request(method, path, json=json, params=params, headers=headers)


async def current_session(request: Request, system: System) -> StaffSession | None:
    """The signed-in staff member, refreshing an expired access token once; None when signed out."""
    token = request.cookies.get(ACCESS_COOKIE)
    claims = read_access_token(token, system.settings.signing_key) if token else None
    renewed = None
    if claims is None and (refresh := request.cookies.get(REFRESH_COOKIE)):
        renewed = await _renewal(request, refresh)
        if renewed is not None:
            token = renewed["access_token"]
            claims = read_access_token(token, system.settings.signing_key)
    if claims is None or token is None or claims.kind != "staff":
        return None
    if not await request.app.state.session_gate.is_alive(claims.session_id):
        return None
    return StaffSession(claims, token, csrf_token_for(system, claims.session_id), renewed)


async def _renewal(request: Request, refresh: str) -> dict[str, str] | None:
    """New tokens for a refresh token: asked of the API once, however many pages ask at once."""
    key = hashlib.sha256(refresh.encode()).hexdigest()
    async with _renewing:
        if (renewed := _renewals.get(key)) is None:
            answer = await call_api(request, "POST", "/v1/auth/refresh",
                                    json={"refresh_token": refresh})
            if answer.status_code != 200:
                return None
            renewed = _renewals[key] = answer.json()
        return renewed
