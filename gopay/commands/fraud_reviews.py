"""Staff decide held payments, and admins change the fraud rules: each decision an event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from gopay.aggregates.fraud import FraudRules, Review, RuleSet
from gopay.aggregates.payment_order import PaymentOrder
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.money_flow import cancel, complete
from gopay.group_commit import UnitOfWork

# Why a rejected payment failed, as its order records it.
REJECTED_IN_REVIEW = "rejected_in_review"


@dataclass(frozen=True, kw_only=True)
class ApproveReview(Command[Review]):
    """Carry a held payment out: the hold is captured and the payee credited, once."""

    review_id: UUID
    staff_id: UUID
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class RejectReview(Command[Review]):
    """Cancel a held payment: the sender's money is released."""

    review_id: UUID
    staff_id: UUID
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ChangeFraudRules(Command[FraudRules]):
    """Put a new rules document in force (the whole document, as read and changed)."""

    staff_id: UUID
    document: Mapping[str, Any]


@in_batch(ApproveReview)
def approve_review(command: ApproveReview, unit: UnitOfWork, context: Context) -> Review:
    review = unit.get(command.review_id, Review)
    review.approve(by=command.staff_id, note=command.note)  # a second decision: 409
    complete(unit.get(review.order_id, PaymentOrder), unit)
    return review


@in_batch(RejectReview)
def reject_review(command: RejectReview, unit: UnitOfWork, context: Context) -> Review:
    review = unit.get(command.review_id, Review)
    review.reject(by=command.staff_id, note=command.note)
    cancel(unit.get(review.order_id, PaymentOrder), unit, reason=REJECTED_IN_REVIEW,
           detail=command.note)
    return review


@in_batch(ChangeFraudRules)
def change_fraud_rules(command: ChangeFraudRules, unit: UnitOfWork,
                       context: Context) -> FraudRules:
    rules = RuleSet.from_document(command.document)  # refused whole if any value is wrong
    stored = unit.find(FraudRules.ID, FraudRules)
    if stored is None:
        stored = FraudRules(id=FraudRules.ID)
        unit.add(stored)
    stored.change(rules, by=command.staff_id)
    return stored
