"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from gopay.api.metrics import MetricsMiddleware
from gopay.api.problems import install_problem_handlers
from gopay.api.routes import admin, auth, health, me, transfers, wallet
from gopay.api.security_headers import SecurityHeadersMiddleware
from gopay.settings import Settings
from gopay.system import System


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
        if settings.serve_runs_projections:
            system.read_side.start()
        app.state.system = system
        try:
            yield
        finally:
            system.close()

    app = FastAPI(
        title="GoPay",
        version="1.0.0",
        summary="Mobile wallet and payments on an event-sourced double-entry ledger.",
        lifespan=lifespan,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    install_problem_handlers(app)
    for module in (auth, me, wallet, transfers, admin, health):
        app.include_router(module.router)
    return app
