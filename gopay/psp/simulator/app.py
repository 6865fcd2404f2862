"""The simulator's HTTP service: the PSP's API (and the operators' gateway's) under /v1, its
control and files under /sim."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, Query
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gopay.api.problems import Problem, install_problem_handlers, problem_response
from gopay.psp.simulator.config import SimulatorConfig
from gopay.psp.simulator.delivery import WebhookSender
from gopay.psp.simulator.faults import AnswerFault, Dice, Faults
from gopay.psp.simulator.provider import (
    PSP_KINDS,
    Outcome,
    Refusal,
    SimulatedPsp,
    operation_json,
)
from gopay.psp.simulator.schemas import (
    ChargeCreate,
    Nonce,
    PayoutCreate,
    RechargeCreate,
    RefundCreate,
)
from gopay.psp.simulator.store import Store

# Where the server's connection waits in the request scope, for a dropped answer to cut it.
CONNECTION = "gopay.psp_sim.connection"
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def create_app(config: SimulatorConfig) -> ASGIApp:  # noqa: PLR0915 - one route per statement group
    """The simulator over its SQLite books, sending webhooks while it runs."""
    store = Store(config.database)
    dice = Dice(config.faults, config.seed)
    psp = SimulatedPsp(store, dice, config.fees, config.dispute_delay)
    sender = WebhookSender(store, config.webhook_url, config.webhook_secret, dice, config.retry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(sender.run()), asyncio.create_task(open_disputes())]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        store.close()

    async def open_disputes() -> None:
        while True:
            if psp.open_due_disputes():
                sender.wake()
            await asyncio.sleep(0.2)

    def authenticated(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = f"Bearer {config.api_key}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise Problem(401, "present the PSP API key as `Authorization: Bearer <key>`")

    async def answer(operate: Callable[[], Outcome]) -> Response:
        """Carry out an operation under the faults: the answer may be turned away, late, a
        5xx, or never come."""
        plan = dice.answer()
        if plan.fault is AnswerFault.RATE_LIMITED:
            return problem_response(429, "too many requests: try again later", "rate_limited",
                                    headers={"Retry-After": str(dice.faults.rate_limit_retry_after)})
        if plan.fault is AnswerFault.TIMEOUT:
            await asyncio.sleep(dice.faults.timeout_seconds)
            if not plan.work_done:
                return problem_response(504, "timed out; nothing was done", "timeout")
        if plan.fault is AnswerFault.ERROR_5XX:
            if plan.work_done:
                carry_out(operate)
            return problem_response(plan.error_status, "the PSP failed; the outcome is unknown",
                                    "psp_unavailable")
        response = carry_out(operate)
        return DroppedAnswer() if plan.fault is AnswerFault.DROP_RESPONSE else response

    def carry_out(operate: Callable[[], Outcome]) -> Response:
        try:
            outcome = operate()
        except Refusal as refusal:
            return problem_response(refusal.status, refusal.detail, refusal.code)
        sender.wake()
        if outcome.replayed:
            return JSONResponse(operation_json(outcome.operation), headers={"Idempotent-Replayed": "true"})
        return JSONResponse(operation_json(outcome.operation), status_code=201)

    def find(nonce: str, kinds: frozenset[str]) -> Outcome:
        """The operation under a nonce, if it is of these kinds: the PSP's own endpoints show
        its charges, payouts and refunds, the operators' gateway its recharges."""
        operation = psp.status(nonce)
        if operation is None or operation.kind not in kinds:
            raise Refusal(404, "unknown_nonce", "there is no operation of this kind under this nonce")
        return Outcome(operation, replayed=True)

    app = FastAPI(title="GoPay PSP simulator", lifespan=lifespan)
    install_problem_handlers(app)
    v1 = [Depends(authenticated)]

    @app.post("/v1/charges", status_code=201, dependencies=v1)
    async def create_charge(body: ChargeCreate) -> Response:
        return await answer(lambda: psp.charge(body.nonce, body.amount, body.currency, body.source.port()))

    @app.post("/v1/payouts", status_code=201, dependencies=v1)
    async def create_payout(body: PayoutCreate) -> Response:
        return await answer(lambda: psp.payout(body.nonce, body.amount, body.currency,
                                               body.destination.port()))

    @app.post("/v1/refunds", status_code=201, dependencies=v1)
    async def create_refund(body: RefundCreate) -> Response:
        return await answer(lambda: psp.refund(body.nonce, body.charge, body.amount))

    @app.get("/v1/operations/{nonce}", dependencies=v1)
    async def get_operation(nonce: Nonce) -> Response:
        return await answer(lambda: find(nonce, PSP_KINDS))

    @app.post("/v1/recharges", status_code=201, dependencies=v1)
    async def create_recharge(body: RechargeCreate) -> Response:
        return await answer(lambda: psp.recharge(body.nonce, body.phone_number, body.operator,
                                                 body.amount, body.currency))

    @app.get("/v1/recharges/{nonce}", dependencies=v1)
    async def get_recharge(nonce: Nonce) -> Response:
        return await answer(lambda: find(nonce, frozenset({"recharge"})))

    @app.get("/sim/faults")
    async def get_faults() -> dict[str, Any]:
        return dice.faults.model_dump()

    @app.post("/sim/faults")
    async def set_faults(faults: Faults) -> dict[str, Any]:
        dice.set(faults)
        return faults.model_dump()

    @app.get("/sim/settlements/{day}.csv")
    async def settlement_file(day: str) -> Response:
        if not DAY.fullmatch(day):
            raise Problem(404, "settlement files are named YYYY-MM-DD.csv")
        return Response(psp.settlement_file(day), media_type="text/csv; charset=utf-8")

    @app.get("/sim/events")
    async def events(nonce: Nonce | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Webhook events, newest first, with every delivery's attempts."""
        return {"data": store.events(nonce, limit)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return ExposeConnection(app)


class DroppedAnswer(Response):
    """No answer at all: the connection is cut after the work was committed."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get(CONNECTION)
        if connection is not None:
            connection.abort()
            await asyncio.sleep(0.01)  # the server sees the connection lost and adds no 500 of its own
            return
        # No connection to cut: begin an answer and never finish it, so the server closes it.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"1024")]})


class ExposeConnection:
    """Puts uvicorn's transport of the request into its scope; ASGI has no standard way to cut one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # uvicorn's `send` is a method of its request cycle, which holds the transport.
            connection = getattr(getattr(send, "__self__", None), "transport", None)
            if connection is not None:
                scope[CONNECTION] = connection
        await self.app(scope, receive, send)


def serve(config: SimulatorConfig, host: str, port: int) -> None:
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=2)
