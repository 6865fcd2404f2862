"""Disputes: the payer opens one, the payee answers with evidence, staff decide."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gopay.aggregates.dispute import Dispute, DisputeStatus, Outcome
from gopay.api.deps import (
    Customer,
    IdCursor,
    IdempotencyKey,
    SystemDep,
    current_caller,
    fingerprint,
    id_cursor,
    staff_with,
)
from gopay.api.dispute_schemas import (
    DisputeCreate,
    DisputeDecision,
    DisputePublic,
    EvidenceCreate,
    EvidencePublic,
)
from gopay.api.merchant_auth import MerchantCaller, MerchantOrKey, merchant_or_key
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.disputes import AddEvidence, OpenDispute, ResolveDispute
from gopay.security.api_keys import looks_like_api_key
from gopay.security.tokens import AccessClaims

router = APIRouter(tags=["disputes"])

# The staff roles that decide disputes (and read every one).
DECIDERS = frozenset({"admin", "support"})
Decider = Annotated[AccessClaims, Depends(staff_with(*sorted(DECIDERS)))]
Status = Literal["open", "won", "lost"] | None
Limit = Annotated[int, Query(ge=1, le=200)]

_bearer = HTTPBearer(auto_error=False,
                     description="An access token, or a merchant's sk_live_ API key")


async def payee_caller(request: Request, system: SystemDep,
                       credentials: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(_bearer)]) -> MerchantCaller:
    """Whoever was paid: a customer signed in (a person paid by transfer, too), or a
    merchant's server with its API key."""
    if credentials is not None and looks_like_api_key(credentials.credentials):
        return await merchant_or_key(request, system, credentials)
    claims = await current_caller(request, system, credentials)
    if claims.wallet_id is None:
        raise Problem(403, "only customers with a wallet can do this")
    return MerchantCaller(claims.user_id, claims.wallet_id)


Payee = Annotated[MerchantCaller, Depends(payee_caller)]


@router.post("/v1/disputes", status_code=201, response_model=DisputePublic)
def open_dispute(body: DisputeCreate, caller: Customer, system: SystemDep,
                 idempotency_key: IdempotencyKey = None) -> DisputePublic:
    """Dispute a QR payment, bill payment or transfer you made: `amount` of it, or all that
    is left after refunds. The amount is held in the payee's wallet until staff decide
    (what it cannot hold is advanced by GoPay on a win). Only the payer may dispute (anyone
    else is told the payment does not exist), within `GOPAY_DISPUTE_WINDOW_DAYS` of it (422
    `dispute_window_closed`), and never for more than refunds and disputes left (409
    `invalid_state`)."""
    assert caller.wallet_id is not None, "customers have a wallet"
    order = system.commands.run(OpenDispute(
        caller_id=caller.user_id, customer_wallet_id=caller.wallet_id,
        payment_id=body.transaction_id, reason=body.reason, amount=body.amount,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(body))).value
    return dispute_public(system.app.get(Dispute.id_for(order.id), Dispute))


@router.get("/v1/disputes", response_model=Page[DisputePublic])
def my_disputes(caller: Customer, system: SystemDep, status: Status = None, limit: Limit = 50,
                cursor: IdCursor = None) -> Page[DisputePublic]:
    """Your disputes, newest first, chargebacks of your top-ups among them."""
    return _page(system, limit, cursor, customer=caller.wallet_id, status=status)


@router.get("/v1/merchant/disputes", response_model=Page[DisputePublic])
def merchant_disputes(caller: MerchantOrKey, system: SystemDep, status: Status = None,
                      limit: Limit = 50, cursor: IdCursor = None) -> Page[DisputePublic]:
    """Disputes of payments you received, newest first."""
    return _page(system, limit, cursor, merchant=caller.wallet_id, status=status)


@router.get("/v1/disputes/{dispute_id}", response_model=DisputePublic)
def get_dispute(dispute_id: str, caller: Payee, system: SystemDep) -> DisputePublic:
    """One dispute, for its customer or its payee; anyone else is told it does not exist."""
    system.catch_up_reads()
    row = system.read_side.disputes.dispute(_dispute_id(dispute_id))
    if row is None or caller.wallet_id not in (row["customer_wallet_id"],
                                               row["merchant_wallet_id"]):
        raise Problem(404, "dispute not found")
    return dispute_row_public(row)


@router.post("/v1/disputes/{dispute_id}/evidence", status_code=201, response_model=DisputePublic)
def add_evidence(dispute_id: str, body: EvidenceCreate, caller: Payee,
                 system: SystemDep) -> DisputePublic:
    """Answer a dispute of a payment you received, while it is open (409 `invalid_state`
    once decided)."""
    dispute = system.commands.run(AddEvidence(
        dispute_id=_dispute_id(dispute_id), payee_wallet_id=caller.wallet_id,
        by=caller.user_id, text=body.text)).value
    return dispute_public(dispute)


@router.get("/v1/admin/disputes", response_model=Page[DisputePublic])
def all_disputes(staff: Decider, system: SystemDep, status: Status = None, limit: Limit = 50,
                 cursor: IdCursor = None) -> Page[DisputePublic]:
    """Every dispute, newest first (`status=open`: those waiting for a decision)."""
    return _page(system, limit, cursor, status=status)


@router.post("/v1/admin/disputes/{dispute_id}/resolve", response_model=DisputePublic)
def resolve(dispute_id: str, body: DisputeDecision, staff: Decider,
            system: SystemDep) -> DisputePublic:
    """Decide a dispute, once (a second decision is 409 `invalid_state`): for the customer,
    who gets the whole amount back (from the hold, and GoPay's receivable for the rest), or
    for the merchant, whose held money is released."""
    dispute = system.commands.run(ResolveDispute(
        dispute_id=_dispute_id(dispute_id), staff_id=staff.user_id,
        outcome=Outcome(body.outcome))).value
    return dispute_public(dispute)


def dispute_public(dispute: Dispute) -> DisputePublic:
    decided = dispute.status != DisputeStatus.OPEN
    return DisputePublic(
        id=dispute.id, kind=dispute.kind.value, status=dispute.status.value,
        amount=dispute.amount, currency=dispute.currency, held=dispute.covered,
        transaction_id=dispute.payment_id, reason=dispute.reason,
        customer_wallet_id=dispute.customer_wallet_id,
        merchant_wallet_id=dispute.merchant_wallet_id,
        outcome=("customer" if dispute.status == DisputeStatus.WON else "merchant")
        if decided else None,
        evidence=[EvidencePublic(text=item.text, at=item.at) for item in dispute.evidence],
        created_at=dispute.created_on, decided_at=dispute.modified_on if decided else None)


def dispute_row_public(row: dict[str, Any]) -> DisputePublic:
    return DisputePublic(
        id=row["id"], kind=row["kind"], status=row["status"], amount=row["amount"],
        currency=row["currency"], held=row["covered"], transaction_id=row["transaction_id"],
        reason=row["reason"], customer_wallet_id=row["customer_wallet_id"],
        merchant_wallet_id=row["merchant_wallet_id"], outcome=row["outcome"],
        evidence=[EvidencePublic(text=item["text"], at=item["at"]) for item in row["evidence"]],
        created_at=row["created_at"], decided_at=row["decided_at"])


def _page(system: Any, limit: int, cursor: str | None, **where: Any) -> Page[DisputePublic]:
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.disputes.disputes(limit=limit + 1,
                                              after=UUID(after) if after else None, **where)
    return page_of(Page[DisputePublic], rows, limit, dispute_row_public, lambda row: row["id"])


def _dispute_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, "dispute not found") from None
