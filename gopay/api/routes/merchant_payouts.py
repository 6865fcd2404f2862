"""A merchant's payout schedule (set, read, stopped by the merchant signed in) and its payouts."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.aggregates.payout_schedule import PayoutSchedule
from gopay.api.deps import IdCursor, SystemDep, id_cursor
from gopay.api.merchant_auth import Merchant
from gopay.api.pagination import page_of
from gopay.api.payout_schedule_schemas import (
    MerchantPayoutPublic,
    PayoutSchedulePublic,
    PayoutScheduleSet,
)
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.merchant_payouts import SetPayoutSchedule, StopPayoutSchedule

router = APIRouter(prefix="/v1/merchant", tags=["merchants"])


def schedule_public(schedule: PayoutSchedule) -> PayoutSchedulePublic:
    assert schedule.payment_method_id is not None, "a schedule that was set"
    return PayoutSchedulePublic(
        id=schedule.id, status="active" if schedule.active else "stopped",
        frequency=schedule.frequency, weekday=schedule.weekday, minimum=schedule.minimum,
        currency=schedule.currency, payment_method_id=schedule.payment_method_id,
        bank_account=schedule.bank_account_shown, starts_on=schedule.starts_on,
        last_period=schedule.last_period)


def payout_public(row: dict[str, Any]) -> MerchantPayoutPublic:
    return MerchantPayoutPublic(id=row["order_id"], period=row["period"], status=row["status"],
                                amount=row["amount"], currency=row["currency"],
                                psp_reference=row["psp_reference"],
                                failure_reason=row["failure_reason"],
                                created_at=row["created_at"], updated_at=row["updated_at"])


@router.put("/payout-schedule", response_model=PayoutSchedulePublic)
def set_schedule(body: PayoutScheduleSet, caller: Merchant, system: SystemDep) -> PayoutSchedulePublic:
    """Have GoPay pay out what your wallet has available, daily or weekly on `weekday`
    (UTC), whenever it is at least `minimum`, to one of your saved bank accounts. Setting
    it again changes the terms from today; a period already paid out is not paid again."""
    schedule = system.commands.run(SetPayoutSchedule(
        merchant_id=caller.user_id, frequency=body.frequency, weekday=body.weekday,
        minimum=body.minimum, currency=body.currency,
        payment_method_id=body.payment_method_id)).value
    return schedule_public(schedule)


@router.get("/payout-schedule", response_model=PayoutSchedulePublic)
def get_schedule(caller: Merchant, system: SystemDep) -> PayoutSchedulePublic:
    """Your payout schedule (stopped or active); 404 if you never set one."""
    schedule = system.app.find(PayoutSchedule.id_for(caller.user_id), PayoutSchedule)
    if schedule is None or schedule.payment_method_id is None:
        raise Problem(404, "no payout schedule is set")
    return schedule_public(schedule)


@router.delete("/payout-schedule", response_model=PayoutSchedulePublic)
def stop_schedule(caller: Merchant, system: SystemDep) -> PayoutSchedulePublic:
    """Stop automated payouts (a payout already started goes on); 404 if none is active."""
    schedule = system.commands.run(StopPayoutSchedule(merchant_id=caller.user_id)).value
    return schedule_public(schedule)


@router.get("/payouts", response_model=Page[MerchantPayoutPublic])
def list_payouts(caller: Merchant, system: SystemDep,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 cursor: IdCursor = None) -> Page[MerchantPayoutPublic]:
    """The payouts your schedule made, newest first, with their status."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.payout_schedules.payouts(caller.user_id, limit=limit + 1,
                                                     after=UUID(after) if after else None)
    return page_of(Page[MerchantPayoutPublic], rows, limit, payout_public,
                   lambda row: row["order_id"])


@router.get("/payouts/{payout_id}", response_model=MerchantPayoutPublic)
def get_payout(payout_id: str, caller: Merchant, system: SystemDep) -> MerchantPayoutPublic:
    """One payout your schedule made; anyone else's does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.payout_schedules.payout(caller.user_id, UUID(payout_id))
    except ValueError:
        row = None
    if row is None:
        raise Problem(404, "payout not found")
    return payout_public(row)
