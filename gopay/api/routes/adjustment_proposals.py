"""Maker-checker adjustments: a ledger entry proposed by one staff member, approved by another."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from gopay.aggregates.adjustment_proposal import AdjustmentProposal, ProposalStatus
from gopay.aggregates.errors import InvalidState
from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.money import Money
from gopay.api.adjustment_proposal_schemas import (
    AdjustmentProposalCreate,
    AdjustmentProposalPublic,
    AdjustmentRejection,
)
from gopay.api.deps import IdCursor, IdempotencyKey, SystemDep, fingerprint, id_cursor, staff_with
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.schemas import Page
from gopay.commands.adjustment import Direction
from gopay.commands.adjustment_proposals import (
    ApproveAdjustment,
    ProposeAdjustment,
    RejectAdjustment,
)
from gopay.security.tokens import AccessClaims
from gopay.system import System

router = APIRouter(prefix="/v1/admin/adjustment-proposals", tags=["admin"])

MakerOrChecker = Annotated[AccessClaims, Depends(staff_with("admin", "finance"))]


def proposal_public(proposal: AdjustmentProposal) -> AdjustmentProposalPublic:
    decided = proposal.status != ProposalStatus.PROPOSED
    return AdjustmentProposalPublic(
        id=proposal.id, status=proposal.status.value, account=proposal.account,
        counter_account=proposal.counter_account, direction=Direction(proposal.direction).value,
        amount=proposal.amount, currency=proposal.currency, reason=proposal.reason,
        proposed_by=proposal.proposed_by, decided_by=proposal.decided_by,
        order_id=proposal.order_id, rejection_reason=proposal.rejection_reason,
        created_at=proposal.created_on, decided_at=proposal.modified_on if decided else None)


@router.post("", status_code=201, response_model=AdjustmentProposalPublic)
def propose(body: AdjustmentProposalCreate, staff: MakerOrChecker, system: SystemDep,
            idempotency_key: IdempotencyKey = None) -> AdjustmentProposalPublic:
    """Propose a ledger entry: `amount` into (credit) or out of (debit) `account`, against
    `counter_account` (default `adjustments`); another staff member must approve it."""
    proposal = system.commands.run(ProposeAdjustment(
        staff_id=staff.user_id, account=body.account, direction=Direction(body.direction),
        money=Money.positive(body.amount, body.currency), reason=body.reason,
        counter_account=body.counter_account or SystemAccount.ADJUSTMENTS.value,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    return proposal_public(proposal)


@router.get("", response_model=Page[AdjustmentProposalPublic])
def proposals(staff: MakerOrChecker, system: SystemDep,
              status: Literal["proposed", "applied", "rejected"] | None = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: IdCursor = None) -> Page[AdjustmentProposalPublic]:
    """Proposals, newest first (`status=proposed`: those waiting for a checker)."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.adjustment_proposals.proposals(
        status=status, limit=limit + 1, after=UUID(after) if after else None)
    return page_of(Page[AdjustmentProposalPublic], rows, limit, AdjustmentProposalPublic.model_validate,
                   lambda row: row["id"])


@router.get("/{proposal_id}", response_model=AdjustmentProposalPublic)
def get_proposal(proposal_id: str, staff: MakerOrChecker,
                 system: SystemDep) -> AdjustmentProposalPublic:
    return proposal_public(_proposal(system, proposal_id))


@router.post("/{proposal_id}/approve", response_model=AdjustmentProposalPublic)
def approve(proposal_id: str, staff: MakerOrChecker, system: SystemDep) -> AdjustmentProposalPublic:
    """Approve and apply the entry, once; the proposer may not (403)."""
    proposal = _proposal(system, proposal_id)
    try:
        system.commands.run(ApproveAdjustment(caller_id=staff.user_id, proposal_id=proposal.id))
    except InvalidState:
        again = _proposal(system, proposal_id)
        if again.status == ProposalStatus.APPLIED and again.decided_by == staff.user_id:
            return proposal_public(again)  # the same approval twice: the same answer
        raise
    return proposal_public(_proposal(system, proposal_id))


@router.post("/{proposal_id}/reject", response_model=AdjustmentProposalPublic)
def reject(proposal_id: str, staff: MakerOrChecker, system: SystemDep,
           body: AdjustmentRejection | None = None) -> AdjustmentProposalPublic:
    """Turn the proposal down (or, by its proposer, withdraw it); nothing is booked."""
    proposal = _proposal(system, proposal_id)
    rejected = system.commands.run(RejectAdjustment(
        staff_id=staff.user_id, proposal_id=proposal.id,
        reason=body.reason if body else "")).value
    return proposal_public(rejected)


def _proposal(system: System, proposal_id: str) -> AdjustmentProposal:
    try:
        found = system.app.find(UUID(proposal_id), AdjustmentProposal)
    except ValueError:
        found = None
    if found is None:
        raise Problem(404, "adjustment proposal not found")
    return found
