"""Mobile operators: staff add them; customers list them to buy airtime."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.api.deps import Admin, Caller, IdCursor, IdempotencyKey, SystemDep, fingerprint, id_cursor
from gopay.api.pagination import page_of
from gopay.api.recharge_schemas import OperatorCreate, OperatorPublic
from gopay.api.schemas import Page
from gopay.commands.mobile_operators import AddOperator

router = APIRouter(tags=["mobile recharge"])


def operator_public(row: dict[str, Any]) -> OperatorPublic:
    return OperatorPublic(id=row["id"], name=row["name"], country=row["country"],
                          currency=row["currency"], wallet_id=row["wallet_id"],
                          created_at=row["created_at"])


@router.post("/v1/admin/operators", status_code=201, response_model=OperatorPublic)
def add_operator(body: OperatorCreate, staff: Admin, system: SystemDep,
                 idempotency_key: IdempotencyKey = None) -> OperatorPublic:
    """Add a mobile operator customers can buy airtime from, with its payable account."""
    outcome = system.commands.run(AddOperator(
        staff_id=staff.user_id, name=body.name, country=body.country, currency=body.currency,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body)))
    system.show(outcome.position)
    row = system.read_side.providers.operator(outcome.value.id)
    if row is None:  # the read side is far behind: answer from the operator itself
        operator = outcome.value
        row = {"id": operator.id, "name": operator.name, "country": operator.country,
               "currency": operator.currency, "wallet_id": operator.wallet_id,
               "created_at": operator.created_on}
    return operator_public(row)


@router.get("/v1/operators", response_model=Page[OperatorPublic])
def operators(caller: Caller, system: SystemDep,
              country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$",
                                                   description="ISO 3166-1 alpha-2")] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: IdCursor = None) -> Page[OperatorPublic]:
    """The mobile operators one can buy airtime from (of `country`, if given), newest first."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.providers.operators(country, limit=limit + 1,
                                                after=UUID(after) if after else None)
    return page_of(Page[OperatorPublic], rows, limit, operator_public, lambda row: row["id"])

