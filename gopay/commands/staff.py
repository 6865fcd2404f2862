"""Staff acting on accounts: freezing a wallet, changing a staff member's role."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.errors import NotFound
from gopay.aggregates.session import Session
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class SetFrozen(Command[Wallet]):
    """Freeze or unfreeze a customer's wallet: a frozen wallet receives but cannot send."""

    staff_id: UUID
    user_id: UUID
    frozen: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class ChangeRole(Command[User]):
    """Give a staff member another role; their sessions end so no token keeps the old one."""

    admin_id: UUID
    staff_id: UUID
    role: str


@in_batch(SetFrozen)
def set_frozen(command: SetFrozen, unit: UnitOfWork, context: Context) -> Wallet:
    user = unit.get(command.user_id, User)
    if user.wallet_id is None:
        raise NotFound("this account has no wallet")
    wallet = unit.get(user.wallet_id, Wallet)
    if command.frozen:
        wallet.freeze(by=command.staff_id, reason=command.reason)
    else:
        wallet.unfreeze(by=command.staff_id, reason=command.reason)
    return wallet


@in_batch(ChangeRole)
def change_role(command: ChangeRole, unit: UnitOfWork, context: Context) -> User:
    user = unit.get(command.staff_id, User)
    unchanged = user.role == command.role
    user.change_role(command.role, by=command.admin_id)
    if unchanged:  # the same role again: nothing to apply, no session to end
        return user
    for session_id in user.sessions:
        session = unit.find(session_id, Session)
        if session is not None:
            session.revoke(reason="role_changed")
    return user
