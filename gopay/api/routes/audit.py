"""For auditors: the event log decoded, any aggregate or balance as it was, the log's check."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from gopay.api.deps import SystemDep, staff_with
from gopay.api.problems import Problem
from gopay.api.schemas import Currency, Rfc3339Datetime, UtcDatetime
from gopay.reconcile import replay
from gopay.reconcile.audit import verify
from gopay.security.tokens import AccessClaims

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Auditor = Annotated[AccessClaims, Depends(staff_with("auditor"))]


class AuditEventPublic(BaseModel):
    position: int
    aggregate_id: UUID
    version: int
    type: str
    timestamp: UtcDatetime
    data: dict[str, Any]
    hash: str


class AuditEventPage(BaseModel):
    data: list[AuditEventPublic]
    next_after: int | None


class AggregatePublic(BaseModel):
    id: UUID
    type: str
    version: int
    state: dict[str, Any]


class BalancePublic(BaseModel):
    account: str
    balance: int
    currency: str
    at: UtcDatetime | None


class VerdictPublic(BaseModel):
    events_checked: int
    chain_ok: bool
    first_bad_position: int | None
    ledger_balanced: bool
    projections_match: bool
    problems: list[str]


@router.get("/events", response_model=AuditEventPage)
def events(auditor: Auditor, system: SystemDep, aggregate_id: UUID | None = None,
           type: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z_.]+$")] = None,
           after: Annotated[int, Query(ge=0, le=2**62)] = 0,
           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AuditEventPage:
    """The stored events after `after`, oldest first, decoded; each with its chain digest.

    `type` is an event class (`Debited`, or `Wallet.Debited`); pass `next_after` as `after`.
    """
    logged = replay.events(system.app, after=after, limit=limit + 1, aggregate_id=aggregate_id,
                           event_type=type)
    page = logged[:limit]
    return AuditEventPage(data=[AuditEventPublic(**vars(e)) for e in page],
                          next_after=page[-1].position if len(logged) > limit else None)


@router.get("/aggregates/{aggregate_id}", response_model=AggregatePublic)
def aggregate(aggregate_id: str, auditor: Auditor, system: SystemDep,
              at: Annotated[Rfc3339Datetime | None, Query()] = None,
              version: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> AggregatePublic:
    """Any aggregate replayed to a version, or as it was at a moment (now, without either)."""
    try:
        found = replay.aggregate_at(system.app, UUID(aggregate_id), at=at, version=version)
    except ValueError:
        raise Problem(404, "no such aggregate") from None
    return AggregatePublic(id=found.id, type=type_name(found), version=found.version,
                           state=replay.state(found))


@router.get("/balances/{account}", response_model=BalancePublic)
def balance(account: str, auditor: Auditor, system: SystemDep,
            at: Annotated[Rfc3339Datetime | None, Query()] = None,
            currency: Currency = "USD") -> BalancePublic:
    """A wallet's balance, or a GoPay account's (`psp_clearing`, `fees`, ...) in `currency`,
    at a moment (now, without one)."""
    return BalancePublic(**vars(replay.balance_at(system.app, account, at=at, currency=currency)))


@router.get("/verify", response_model=VerdictPublic)
async def verify_log(auditor: Auditor, system: SystemDep) -> VerdictPublic:
    """Recompute the log's chain and check its signed checkpoints, that the ledger sums to
    zero per currency, and that the read models say what the events say."""
    await run_in_threadpool(system.catch_up_reads)
    verdict = await run_in_threadpool(verify, system.app, system.signer, system.read_side)
    return VerdictPublic(events_checked=verdict.events_checked, chain_ok=verdict.chain_ok,
                         first_bad_position=verdict.first_bad_position,
                         ledger_balanced=verdict.ledger_balanced,
                         projections_match=verdict.projections_match,
                         problems=list(verdict.problems))


def type_name(aggregate: Any) -> str:
    return str(type(aggregate).__name__)
