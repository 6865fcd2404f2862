"""Staff work on customer accounts: search, freeze, unfreeze and manual adjustments."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.aggregates.money import Money
from gopay.api.deps import (
    Admin,
    IdCursor,
    IdempotencyKey,
    SystemDep,
    UserManager,
    UserReader,
    fingerprint,
    id_cursor,
)
from gopay.api.problems import Problem
from gopay.api.routes.auth import user_public
from gopay.api.routes.wallet import wallet_public
from gopay.api.schemas import (
    AdjustmentCreate,
    AdjustmentPublic,
    KycDecision,
    Page,
    RoleChange,
    SecurityEventPublic,
    StaffAccountPublic,
    UserPublic,
)
from gopay.system import System

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def staff_account(system: System, user_id: UUID) -> StaffAccountPublic:
    user = system.app.get_user(user_id)
    row = system.read_side.wallets.wallet(user.wallet_id) if user.wallet_id else None
    wallet = wallet_public(row) if row else None
    public = user_public(user, frozen=bool(wallet and wallet.frozen))
    return StaffAccountPublic(**public.model_dump(), wallet=wallet)


def _user_id(user_id: str) -> UUID:
    try:
        return UUID(user_id)
    except ValueError:
        raise Problem(404, "user not found") from None


@router.get("/users", response_model=Page[StaffAccountPublic])
def users(staff: UserReader, system: SystemDep,
          q: Annotated[str | None, Query(max_length=100)] = None,
          limit: Annotated[int, Query(ge=1, le=200)] = 50,
          cursor: IdCursor = None) -> Page[StaffAccountPublic]:
    """Customers whose e-mail, name, business or phone contains `q`, newest first."""
    system.catch_up_reads()
    rows = system.read_side.directory.search(q, kinds=("person", "company", "agent"),
                                             limit=limit + 1, after=id_cursor(cursor))
    data = [staff_account(system, row["id"]) for row in rows[:limit]]
    return Page(data=data, next_cursor=str(rows[limit - 1]["id"]) if len(rows) > limit else None)


@router.post("/users/{user_id}/freeze", response_model=StaffAccountPublic)
def freeze(user_id: str, staff: UserManager, system: SystemDep) -> StaffAccountPublic:
    """Stop a customer's wallet from sending money; it can still receive."""
    outcome = system.app.set_frozen(staff_id=staff.user_id, user_id=_user_id(user_id),
                                    frozen=True, reason="frozen by staff")
    system.show(outcome.position)
    return staff_account(system, _user_id(user_id))


@router.post("/users/{user_id}/unfreeze", response_model=StaffAccountPublic)
def unfreeze(user_id: str, staff: UserManager, system: SystemDep) -> StaffAccountPublic:
    outcome = system.app.set_frozen(staff_id=staff.user_id, user_id=_user_id(user_id),
                                    frozen=False, reason="unfrozen by staff")
    system.show(outcome.position)
    return staff_account(system, _user_id(user_id))


@router.post("/users/{user_id}/kyc", response_model=StaffAccountPublic)
def decide_kyc(user_id: str, body: KycDecision, staff: UserManager,
               system: SystemDep) -> StaffAccountPublic:
    """Approve or reject a customer's identity documents; the wallet's limits follow."""
    outcome = system.identity.decide_kyc(staff.user_id, _user_id(user_id), body.decision,
                                         body.reason)
    system.show(outcome.position)
    return staff_account(system, outcome.value.id)


@router.post("/staff/{user_id}/role", response_model=UserPublic)
def change_role(user_id: str, body: RoleChange, staff: Admin, system: SystemDep) -> UserPublic:
    """Give a staff member another role; their sessions end, so it applies at once."""
    return user_public(system.identity.change_role(staff.user_id, _user_id(user_id), body.role))


@router.get("/users/{user_id}/security-events", response_model=list[SecurityEventPublic])
def security_events(user_id: str, staff: UserReader,
                    system: SystemDep) -> list[SecurityEventPublic]:
    """The account's sign-ins, failures, 2FA, device, KYC and profile history, oldest first."""
    return [SecurityEventPublic(**e) for e in system.identity.security_events(_user_id(user_id))]


@router.post("/adjustments", status_code=201, response_model=AdjustmentPublic)
def adjust(body: AdjustmentCreate, staff: Admin, system: SystemDep,
           idempotency_key: IdempotencyKey = None) -> AdjustmentPublic:
    """A manual ledger entry against the adjustments account, signed with the admin's id."""
    outcome = system.app.adjust(
        staff_id=staff.user_id, wallet_id=body.wallet_id, direction=body.direction,
        money=Money.positive(body.amount, body.currency), reason=body.reason,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))
    order = outcome.value
    return AdjustmentPublic(id=order.id, status=order.status,
                            wallet_id=order.payee_wallet_id or order.payer_wallet_id,
                            direction="credit" if order.payee_wallet_id else "debit",
                            amount=order.amount, currency=order.currency, reason=order.note,
                            created_by=order.initiated_by, created_at=order.created_on)
