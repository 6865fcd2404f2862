"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gopay.api.deps import SystemDep
from gopay.api.metrics import PROJECTION_LAG
from gopay.api.problems import problem_response

router = APIRouter(tags=["health"])

# Readiness fails when the read side is further behind than this.
MAX_LAG_SECONDS = 5.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
def ready(system: SystemDep) -> JSONResponse:
    """200 when the store takes writes and the projections are less than 5 s behind."""
    try:
        writable = system.store_takes_writes()
        lag = system.read_side.lag_seconds() if writable else 0.0
    except Exception as error:  # noqa: BLE001 - any failure to reach the store means not ready
        return problem_response(503, f"the event store is unreachable: {type(error).__name__}")
    if not writable:
        return problem_response(503, "the event store has no writable primary")
    PROJECTION_LAG.set(lag)
    if lag >= MAX_LAG_SECONDS:
        return problem_response(503, f"projections are {lag:.1f} s behind", lag_seconds=lag)
    return JSONResponse({"status": "ready", "projection_lag_seconds": round(lag, 3),
                         "reads_from": "standby" if system.read_side.reads_from_standby()
                         else "primary"})


@router.get("/metrics", include_in_schema=False)
def metrics(system: SystemDep) -> Response:
    with contextlib.suppress(Exception):  # metrics must still render while the store is down
        PROJECTION_LAG.set(system.read_side.lag_seconds())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
