"""The fast lane: a well-formed payment by a signed-in customer, without FastAPI's machinery.

`POST /v1/transfers`, `POST /v1/qr-payments` and `POST /v1/topups` are the requests a
payments system serves most. Through FastAPI they spent more interpreter time on routing,
dependency solving and response validation than on the payment itself. This lane sits under
the metrics and security-header middleware and takes only requests it can answer exactly as
the route would: a JSON body that the route's model accepts, a live bearer token of a
customer, well-formed headers, an amount below the step-up threshold. It runs the same
command the route runs (and, for a top-up, the same call to the PSP) and answers the same
body, 202 where the route does (a payment held for review, a top-up the PSP has not settled);
a refusal gets the answer of the same `domain_problem` the route's handler uses. Anything
else, whether a missing token, a bad body or a code to check, goes to the route unchanged,
with its body replayed, so every check of the request keeps one implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gopay.aggregates.errors import DomainError
from gopay.api.merchant_schemas import QrPaymentCreate
from gopay.api.one_writer import WriterLost
from gopay.api.problems import STORE_UNAVAILABLE, Problem, domain_problem, store_unavailable_response
from gopay.api.routes import external_payments, psp_webhooks, qr_payments, transfers
from gopay.api.schemas import ExternalPaymentCreate, TransferCreate
from gopay.commands import Command
from gopay.processes.psp import KNOWN_WEBHOOKS
from gopay.psp.webhooks import HEADER, SignatureError, verify
from gopay.security.qr_codes import read_qr_payload
from gopay.security.tokens import AccessClaims, read_access_token
from gopay.system import System

TAKEN = Counter("gopay_fast_lane_requests_total",
                "Payment requests the fast lane can take, by operation and who answered them: "
                "the fast lane, or the route", ["operation", "by"])
JSON_HEADERS = [(b"content-type", b"application/json")]
RECEIVED = b'{"received":true}'

# What the lane makes of a request: the command to run, or None for the route to answer.
Plan = Callable[[System, AccessClaims, Any, str | None, Scope], Command[Any] | None]


@dataclass(frozen=True)
class Lane:
    """One request the fast lane takes: the route it stands in for, and how to serve it."""

    route: APIRoute
    body: type[BaseModel]
    plan: Plan
    answer: Callable[[Any], BaseModel]
    # What the route does with the command's outcome before it answers.
    then: Callable[[System, Any], Awaitable[Any]] | None = None
    # The statuses answered 202 Accepted rather than 201.
    accepted: frozenset[str] = frozenset({"held_for_review"})

    @property
    def operation(self) -> str:
        return f"POST {self.route.path}"


def _route(router: APIRouter, endpoint: Callable[..., Any]) -> APIRoute:
    return next(route for route in router.routes
                if isinstance(route, APIRoute) and route.endpoint is endpoint)


def _transfer(system: System, claims: AccessClaims, body: TransferCreate,
              key: str | None, scope: Scope) -> Command[Any] | None:
    if body.amount >= system.settings.step_up_amount:
        return None
    client = scope.get("client")
    forwarded = next((value.decode("latin-1") for name, value in scope["headers"]
                      if name == b"x-forwarded-for"), None)
    country = transfers.request_country(system.settings.trusted_proxies,
                                        client[0] if client else None, forwarded)
    return transfers.transfer_command(claims, body, key, country)


def _qr_payment(system: System, claims: AccessClaims, body: QrPaymentCreate,
                key: str | None, scope: Scope) -> Command[Any] | None:
    if claims.kind != "person":
        return None
    try:
        terms = read_qr_payload(body.qr_payload, system.settings.qr_key)
    except DomainError:  # the route refuses it, in its words
        return None
    if (terms.amount or body.amount or 0) >= system.settings.step_up_amount:
        return None
    return qr_payments.qr_payment_command(claims, body, terms, key)


def _top_up(system: System, claims: AccessClaims, body: ExternalPaymentCreate,
            key: str | None, scope: Scope) -> Command[Any] | None:
    try:
        return external_payments.top_up_command(claims, body, key)
    except DomainError:  # the route refuses it, in its words
        return None


LANES = {lane.route.path: lane for lane in (
    Lane(_route(transfers.router, transfers.create_transfer), TransferCreate, _transfer,
         transfers.transfer_public),
    Lane(_route(qr_payments.router, qr_payments.pay_qr_code), QrPaymentCreate, _qr_payment,
         qr_payments.qr_payment_answer),
    Lane(_route(external_payments.router, external_payments.create_top_up),
         ExternalPaymentCreate, _top_up, external_payments.order_public,
         then=external_payments.call_psp, accepted=frozenset({"pending"})),
)}


class PaymentFastLane:
    """Answers plain payments itself and passes everything else on; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = LANES.get(scope["path"]) if scope["type"] == "http" else None
        if lane is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away before sending its request: nobody to answer
            return
        try:
            command = await self._plain_request(lane, scope, body)
        except STORE_UNAVAILABLE as error:  # the session check could not reach the store
            await store_unavailable_response(error)(scope, receive, send)
            return
        if command is None:
            TAKEN.labels(lane.operation, "route").inc()
            await self.app(scope, replay(body, receive), send)
            return
        TAKEN.labels(lane.operation, "fast_lane").inc()
        scope["route"] = lane.route  # what the metrics label requests by
        try:
            value = (await scope["app"].state.one_writer.run(command)).value
            if lane.then is not None:
                value = await lane.then(scope["app"].state.system, value)
        except DomainError as error:  # exactly what the route's exception handler answers
            await domain_problem(error)(scope, receive, send)
            return
        except (*STORE_UNAVAILABLE, WriterLost) as error:  # as the route's handler answers it
            await store_unavailable_response(error)(scope, receive, send)
            return
        public = lane.answer(value)
        await send_json(send, 202 if getattr(public, "status", None) in lane.accepted else 201,
                        public.model_dump_json().encode())

    async def _plain_request(self, lane: Lane, scope: Scope, body: bytes) -> Command[Any] | None:
        """The request's command, when the route would take the request as it is."""
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
            request = lane.body.model_validate_json(body)
        except (UnicodeDecodeError, ValidationError):
            return None
        if claims is None or claims.wallet_id is None:
            return None
        command = lane.plan(system, claims, request, key, scope)
        if command is None or not await scope["app"].state.session_gate.is_alive(claims.session_id):
            return None
        return command


class WebhookLane:
    """`POST /v1/psp/webhooks` with a good signature and an event GoPay acts on, taken without
    FastAPI's machinery: the PSP sends one for every operation. Anything else (no or a bad
    signature, a body that is not an event, a type GoPay ignores) goes to the route unchanged,
    with its body replayed, so every refusal keeps one implementation."""

    route = _route(psp_webhooks.router, psp_webhooks.psp_webhook)
    operation = f"POST {route.path}"
    header = HEADER.lower().encode("latin-1")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != self.route.path
                or scope["method"] != "POST"):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        system = scope["app"].state.system
        event = self._known_event(system, scope, body)
        if event is None:
            TAKEN.labels(self.operation, "route").inc()
            await self.app(scope, replay(body, receive), send)
            return
        TAKEN.labels(self.operation, "fast_lane").inc()
        scope["route"] = self.route  # what the metrics label requests by
        try:
            await psp_webhooks.take(system, event)
        except DomainError as error:
            await domain_problem(error)(scope, receive, send)
            return
        except STORE_UNAVAILABLE as error:
            await store_unavailable_response(error)(scope, receive, send)
            return
        await send_json(send, 200, RECEIVED)

    def _known_event(self, system: System, scope: Scope, body: bytes) -> dict[str, Any] | None:
        """The event, when it is signed as the route requires and of a type GoPay acts on."""
        signatures = [value for name, value in scope["headers"] if name == self.header]
        if len(signatures) != 1:
            return None
        try:
            verify(system.settings.psp_signing_secret, signatures[0].decode("latin-1"), body)
            event = psp_webhooks.event_of(body)
        except (SignatureError, Problem):
            return None
        return event if event["type"] in KNOWN_WEBHOOKS else None


async def send_json(send: Send, status: int, content: bytes) -> None:
    """A JSON answer, as the routes give it."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), *JSON_HEADERS]})
    await send({"type": "http.response.body", "body": content})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the route: the body already read, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
