"""Fraud screening for staff: the review queue of held payments, and the rules in force."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.fraud import FraudRules, Review, RuleSet
from gopay.api.deps import Admin, IdCursor, SystemDep, id_cursor, staff_with
from gopay.api.fraud_schemas import FraudRulesDocument, ReviewDecision, ReviewPublic
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.fraud_reviews import ApproveReview, ChangeFraudRules, RejectReview
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Reviewer = Annotated[AccessClaims, Depends(staff_with("admin", "sub_admin", "support"))]


@router.get("/reviews", response_model=Page[ReviewPublic])
def reviews(staff: Reviewer, system: SystemDep,
            status: Literal["open", "approved", "rejected"] | None = None,
            limit: Annotated[int, Query(ge=1, le=200)] = 50,
            cursor: IdCursor = None) -> Page[ReviewPublic]:
    """Held payments, newest first (`status=open`: those waiting for a decision), with the
    rules' reasons and the sender's recent activity."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.reviews.reviews(status=status, limit=limit + 1,
                                            after=UUID(after) if after else None)
    return page_of(Page[ReviewPublic], rows, limit, ReviewPublic.model_validate,
                   lambda row: row["id"])


@router.post("/reviews/{review_id}/approve", response_model=ReviewPublic)
async def approve(review_id: str, staff: Reviewer, system: SystemDep,
                  body: ReviewDecision | None = None) -> ReviewPublic:
    """Carry the held payment out (once: a second decision is 409 `invalid_state`)."""
    review = (await system.commands.run_async(ApproveReview(
        review_id=_review_id(review_id), staff_id=staff.user_id,
        note=body.note if body else ""))).value
    return review_public(review)


@router.post("/reviews/{review_id}/reject", response_model=ReviewPublic)
async def reject(review_id: str, staff: Reviewer, system: SystemDep,
                 body: ReviewDecision | None = None) -> ReviewPublic:
    """Cancel the held payment: the sender's money is released."""
    review = (await system.commands.run_async(RejectReview(
        review_id=_review_id(review_id), staff_id=staff.user_id,
        note=body.note if body else ""))).value
    return review_public(review)


@router.get("/fraud-rules", response_model=FraudRulesDocument)
async def fraud_rules(staff: Admin, system: SystemDep) -> FraudRulesDocument:
    """The thresholds and scores in force."""
    return FraudRulesDocument.model_validate(await run_in_threadpool(_rules_in_force, system))


@router.put("/fraud-rules", response_model=FraudRulesDocument)
async def change_fraud_rules(body: FraudRulesDocument, staff: Admin,
                             system: SystemDep) -> FraudRulesDocument:
    """Put the document GET gave, changed, in force; the change is an event with who made it."""
    stored = (await system.commands.run_async(ChangeFraudRules(
        staff_id=staff.user_id, document=body.as_document()))).value
    return FraudRulesDocument.model_validate(stored.rules.as_document())


def review_public(review: Review) -> ReviewPublic:
    decided = review.decided_by is not None
    return ReviewPublic(id=review.id, order_id=review.order_id, status=review.status.value,
                        sender_wallet_id=review.sender_wallet_id, amount=review.amount,
                        currency=review.currency, score=review.score,
                        reasons=list(review.reasons),
                        sender_activity=dict(review.sender_activity),
                        decided_by=review.decided_by, note=review.note,
                        created_at=review.created_on,
                        decided_at=review.modified_on if decided else None)


def _rules_in_force(system: System) -> dict[str, Any]:
    try:
        stored: object = system.commands.context.app.repository.get(FraudRules.ID)
    except AggregateNotFoundError:  # never changed: the defaults
        return RuleSet().as_document()
    assert isinstance(stored, FraudRules)
    return stored.rules.as_document()


def _review_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, "review not found") from None
