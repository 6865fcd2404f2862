"""The fast lane: a well-formed transfer by a signed-in customer, without FastAPI's machinery.

`POST /v1/transfers` is the request a payments system serves most. Through FastAPI it spent
more interpreter time on routing, dependency solving and response validation than on the
transfer itself. This lane sits under the metrics and security-header middleware and takes
only requests it can answer exactly as the route would: a JSON body that `TransferCreate`
accepts, a live bearer token of a customer, well-formed headers, an amount below the step-up
threshold. It runs the same command the route runs and answers the same body; a refusal
of that command gets the answer of the same `domain_problem` the route's handler uses.
Anything else, whether a missing token, a bad body or a code to check, goes to the route
unchanged, with its body replayed, so every check of the request keeps one implementation.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gopay.aggregates.errors import DomainError
from gopay.api.problems import STORE_UNAVAILABLE, domain_problem, store_unavailable_response
from gopay.api.routes.transfers import (
    create_transfer,
    request_country,
    router,
    transfer_command,
    transfer_public,
)
from gopay.api.schemas import TransferCreate
from gopay.security.tokens import AccessClaims, read_access_token

ROUTE = next(route for route in router.routes
             if isinstance(route, APIRoute) and route.endpoint is create_transfer)
PATH = ROUTE.path
TAKEN = Counter("gopay_fast_lane_transfers_total",
                "Transfer requests by who answered them: the fast lane, or the route",
                ["by"])
JSON_HEADERS = [(b"content-type", b"application/json")]


class TransferFastLane:
    """Answers plain transfers itself and passes everything else on; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its request: nobody to answer
            return
        try:
            request = await self._plain_transfer(scope, body)
        except STORE_UNAVAILABLE as error:  # the session check could not reach the store
            await store_unavailable_response(error)(scope, receive, send)
            return
        if request is None:
            TAKEN.labels("route").inc()
            await self.app(scope, _replay(body, receive), send)
            return
        TAKEN.labels("fast_lane").inc()
        claims, transfer, idempotency_key = request
        scope["route"] = ROUTE  # what the metrics label requests by
        system = scope["app"].state.system
        client = scope.get("client")
        forwarded = next((value.decode("latin-1") for name, value in scope["headers"]
                          if name == b"x-forwarded-for"), None)
        country = request_country(system.settings.trusted_proxies,
                                  client[0] if client else None, forwarded)
        try:
            outcome = await system.commands.run_async(
                transfer_command(claims, transfer, idempotency_key, country))
        except DomainError as error:  # exactly what the route's exception handler answers
            await domain_problem(error)(scope, receive, send)
            return
        except STORE_UNAVAILABLE as error:  # as the route's handler answers it
            await store_unavailable_response(error)(scope, receive, send)
            return
        public = transfer_public(outcome.value)
        content = public.model_dump_json().encode()
        status = 202 if public.status == "held_for_review" else 201
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()), *JSON_HEADERS]})
        await send({"type": "http.response.body", "body": content})

    async def _plain_transfer(self, scope: Scope, body: bytes
                              ) -> tuple[AccessClaims, TransferCreate, str | None] | None:
        """The caller, the transfer and its key, when the route would take them as they are."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in headers:  # a repeated header: let the route decide what it means
                return None
            headers[name] = value
        authorization = headers.get(b"authorization", b"")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        idempotency_key = headers.get(b"idempotency-key")
        if (not authorization.startswith(b"Bearer ") or content_type != b"application/json"
                or b"gopay-otp" in headers
                or (idempotency_key is not None and not 1 <= len(idempotency_key) <= 255)):
            return None
        system = scope["app"].state.system
        try:
            key = idempotency_key.decode("ascii") if idempotency_key is not None else None
            claims = read_access_token(authorization[7:].decode("ascii"),
                                       system.settings.signing_key)
            transfer = TransferCreate.model_validate_json(body)
        except (UnicodeDecodeError, ValidationError):
            return None
        if (claims is None or claims.wallet_id is None
                or transfer.amount >= system.settings.step_up_amount
                or not await scope["app"].state.session_gate.is_alive(claims.session_id)):
            return None
        return claims, transfer, key


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the route: the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
