"""Staff work on customer accounts: search, freeze, unfreeze, KYC, roles and manual adjustments."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
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
from gopay.api.pagination import page_of
from gopay.api.problems import Problem
from gopay.api.routes.auth import shown_user, user_public
from gopay.api.routes.wallet import wallet_public
from gopay.api.schemas import (
    AdjustmentCreate,
    AdjustmentPublic,
    DeadLetterPublic,
    KycDecision,
    Page,
    RoleChange,
    SecurityEventPublic,
    StaffAccountPublic,
    UserPublic,
)
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.kyc import DecideKyc
from gopay.commands.psp_outcomes import RetryDeadLetter
from gopay.commands.staff import ChangeRole, SetFrozen
from gopay.system import System

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def staff_accounts(system: System, rows: list[dict[str, Any]]) -> list[StaffAccountPublic]:
    """Customer accounts as staff see them: the directory's rows with their wallets' state."""
    wallet_ids = [row["wallet_id"] for row in rows if row["wallet_id"]]
    wallets = {w["wallet_id"]: wallet_public(w) for w in system.read_side.wallets.wallets(wallet_ids)}
    return [StaffAccountPublic(**user_public(row).model_dump(), wallet=wallets.get(row["wallet_id"]))
            for row in rows]


def shown_account(system: System, user_id: UUID, position: int) -> StaffAccountPublic:
    system.show(position)
    row = system.read_side.directory.user(user_id)
    if row is None:
        raise Problem(404, "user not found")
    return staff_accounts(system, [row])[0]


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
    accounts = dict(zip((row["id"] for row in rows), staff_accounts(system, rows), strict=True))
    return page_of(Page[StaffAccountPublic], rows, limit, lambda row: accounts[row["id"]],
                   lambda row: row["id"])


@router.post("/users/{user_id}/freeze", response_model=StaffAccountPublic)
def freeze(user_id: str, staff: UserManager, system: SystemDep) -> StaffAccountPublic:
    """Stop a customer's wallet from sending money; it can still receive."""
    outcome = system.commands.run(SetFrozen(staff_id=staff.user_id, user_id=_user_id(user_id),
                                            frozen=True, reason="frozen by staff"))
    return shown_account(system, _user_id(user_id), outcome.position)


@router.post("/users/{user_id}/unfreeze", response_model=StaffAccountPublic)
def unfreeze(user_id: str, staff: UserManager, system: SystemDep) -> StaffAccountPublic:
    outcome = system.commands.run(SetFrozen(staff_id=staff.user_id, user_id=_user_id(user_id),
                                            frozen=False, reason="unfrozen by staff"))
    return shown_account(system, _user_id(user_id), outcome.position)


@router.post("/users/{user_id}/kyc", response_model=StaffAccountPublic)
def decide_kyc(user_id: str, body: KycDecision, staff: UserManager,
               system: SystemDep) -> StaffAccountPublic:
    """Approve or reject a customer's identity documents; the wallet's limits follow."""
    outcome = system.commands.run(DecideKyc(staff_id=staff.user_id, user_id=_user_id(user_id),
                                            decision=body.decision, reason=body.reason))
    return shown_account(system, outcome.value.id, outcome.position)


@router.post("/staff/{user_id}/role", response_model=UserPublic)
def change_role(user_id: str, body: RoleChange, staff: Admin, system: SystemDep) -> UserPublic:
    """Give a staff member another role; their sessions end, so it applies at once."""
    outcome = system.commands.run(ChangeRole(admin_id=staff.user_id, staff_id=_user_id(user_id),
                                             role=body.role))
    return shown_user(system, outcome.value.id, outcome.position)


@router.get("/users/{user_id}/security-events", response_model=list[SecurityEventPublic])
def security_events(user_id: str, staff: UserReader,
                    system: SystemDep) -> list[SecurityEventPublic]:
    """The account's sign-ins, failures, 2FA, device, KYC and profile history, oldest first."""
    system.catch_up_reads()
    user = system.read_side.directory.user(_user_id(user_id))
    if user is None:
        raise Problem(404, "user not found")
    subjects = [user["id"], *([user["wallet_id"]] if user["wallet_id"] else [])]
    return [SecurityEventPublic(type=row["type"], version=row["version"], at=row["at"],
                                data=row["data"])
            for row in system.read_side.security.history(*subjects)]


@router.post("/adjustments", status_code=201, response_model=AdjustmentPublic)
def adjust(body: AdjustmentCreate, staff: Admin, system: SystemDep,
           idempotency_key: IdempotencyKey = None) -> AdjustmentPublic:
    """A manual ledger entry against the adjustments account, signed with the admin's id."""
    order = system.commands.run(Adjust(
        caller_id=staff.user_id, wallet_id=body.wallet_id, direction=Direction(body.direction),
        money=Money.positive(body.amount, body.currency), reason=body.reason,
        idempotency_key=idempotency_key, fingerprint=fingerprint(body))).value
    return adjustment_public(order)


@router.get("/dead-letters", response_model=Page[DeadLetterPublic])
def dead_letters(staff: Admin, system: SystemDep,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50,
                 cursor: IdCursor = None) -> Page[DeadLetterPublic]:
    """PSP calls and webhooks given up on after their last retry, newest first."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.psp_tasks.dead_letters(limit=limit + 1,
                                                   after=UUID(after) if after else None)
    return page_of(Page[DeadLetterPublic], rows, limit, DeadLetterPublic.model_validate,
                   lambda row: row["id"])


@router.post("/dead-letters/{task_id}/retry", response_model=DeadLetterPublic)
def retry_dead_letter(task_id: str, staff: Admin, system: SystemDep) -> DeadLetterPublic:
    """Try a dead-lettered task again now; if it fails again it waits for its next retry."""
    try:
        task = UUID(task_id)
    except ValueError:
        raise Problem(404, "dead letter not found") from None
    system.catch_up_reads()
    row = system.read_side.psp_tasks.task(task)
    if row is None or not row["dead"]:
        raise Problem(404, "dead letter not found")
    system.commands.run(RetryDeadLetter(staff_id=staff.user_id, task_id=task))
    system.psp_process.attempt(task)
    system.catch_up_reads()
    return DeadLetterPublic.model_validate(system.read_side.psp_tasks.task(task))


def adjustment_public(order: PaymentOrder) -> AdjustmentPublic:
    credit = order.payee_wallet_id is not None
    wallet_id = order.payee_wallet_id if credit else order.payer_wallet_id
    assert wallet_id is not None, "an adjustment moves money of one wallet"
    return AdjustmentPublic(id=order.id, status=order.status, wallet_id=wallet_id,
                            direction="credit" if credit else "debit", amount=order.amount,
                            currency=order.currency, reason=order.note,
                            created_by=order.initiated_by, created_at=order.created_on)
