"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from gopay.api.fast_lane import PaymentFastLane, WebhookLane
from gopay.api.metrics import MetricsMiddleware
from gopay.api.nul_guard import NulGuard
from gopay.api.one_writer import OneWriter
from gopay.api.problems import MEDIA_TYPE, install_problem_handlers
from gopay.api.routes import (
    adjustment_proposals,
    admin,
    agents,
    analytics,
    audit,
    auth,
    bill_payments,
    billers,
    cash_outs,
    devices,
    disputes,
    external_payments,
    fees,
    fraud,
    health,
    me,
    merchant_api_keys,
    merchant_payments,
    merchant_payouts,
    merchant_qr,
    merchant_reports,
    merchant_webhooks,
    notifications,
    operators,
    payment_methods,
    payment_requests,
    psp_webhooks,
    qr_payments,
    recharges,
    reconciliation,
    statements,
    support_tickets,
    transfers,
    wallet,
)
from gopay.api.schemas import Problem
from gopay.api.security_headers import SecurityHeadersMiddleware
from gopay.api.session_gate import SessionGate
from gopay.dashboard import routes as dashboard
from gopay.recorder import EventRecorder
from gopay.scheduler import start_jobs
from gopay.settings import Settings
from gopay.system import System, settle_memory

# Every operation may answer these, always as application/problem+json.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description,
             "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, description in (
        (400, "Malformed request"), (401, "Not signed in, or the token is not valid"),
        (403, "Your role does not allow this"), (404, "No such resource (or not yours)"),
        (409, "Conflict: idempotency key, state, or a taken e-mail or phone"),
        (413, "Request too large"), (415, "Unsupported media type"),
        (422, "Invalid input or a refused payment"), (423, "Account frozen"),
        (429, "Too many attempts"), (503, "Not ready"))
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API over the database that `settings.database_url` names."""
    settings = settings or Settings()
    if not settings.database_url:
        raise RuntimeError("GOPAY_DATABASE_URL is not set; start GoPay with `gopay up` or `gopay serve`")
    database_url = settings.database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Request threads mostly wait (for their batch, for the read side); more of them
        # means bigger batches, not more CPU.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        system = System.connect(settings, database_url)
        recorder = system.app.recorder
        assert isinstance(recorder, EventRecorder), "the API runs on PostgreSQL"
        jobs = None
        if settings.serve_runs_projections:
            system.read_side.start()
            jobs = start_jobs(system)
        app.state.system = system
        app.state.session_gate = SessionGate(database_url, recorder.select_originators_with_topic)
        await app.state.session_gate.open()
        # This machine's API processes hand their payments to one of them (see one_writer).
        app.state.one_writer = OneWriter(system.commands.run_async, settings.var_dir,
                                        database_url, enabled=settings.one_writer)
        await app.state.one_writer.start()
        settle_memory()
        try:
            yield
        finally:
            await app.state.one_writer.stop()
            await app.state.session_gate.close()
            await system.psp.aclose()
            if jobs is not None:
                jobs.shutdown(wait=True)
            system.close()

    app = FastAPI(
        responses=PROBLEM_RESPONSES,
        title="GoPay",
        version="1.0.0",
        summary="Mobile wallet and payments on an event-sourced double-entry ledger.",
        lifespan=lifespan,
    )
    app.add_middleware(PaymentFastLane)  # innermost: its answers get the headers and metrics
    app.add_middleware(WebhookLane)
    app.add_middleware(NulGuard)  # before every route and the fast lane
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    install_problem_handlers(app)
    _document_problems(app)
    for module in (auth, me, devices, wallet, transfers, payment_methods, external_payments,
                   psp_webhooks, admin, audit, reconciliation, adjustment_proposals, health,
                   billers, bill_payments, operators, recharges, merchant_qr, qr_payments,
                   merchant_payments, merchant_api_keys, merchant_webhooks, fees, agents,
                   cash_outs, payment_requests, notifications, merchant_payouts, fraud,
                   support_tickets, disputes, statements, merchant_reports):
        app.include_router(module.router)
    app.include_router(analytics.router)
    app.include_router(dashboard.router)  # /admin, and / that leads there
    return app


def _document_problems(app: FastAPI) -> None:
    """Put the Problem schema into the OpenAPI document the responses above refer to.

    And say of an optional header or query parameter what it is, not that it may be `null`:
    one left out is simply not sent.
    """
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema())
            for path in schema["paths"].values():
                for operation in path.values():
                    # FastAPI's own 422 body is not what GoPay sends; it sends a problem.
                    operation.get("responses", {}).get("422", {})["content"] = {
                        MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    for parameter in operation.get("parameters", []):
                        _without_null(parameter)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def _without_null(parameter: dict[str, Any]) -> None:
    """FastAPI documents `str | None = None` as anyOf string or null; a header can't carry a null."""
    choices = parameter.get("schema", {}).get("anyOf")
    if choices and {"type": "null"} in choices:
        rest = [choice for choice in choices if choice != {"type": "null"}]
        schema = parameter["schema"]
        del schema["anyOf"]
        schema.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
