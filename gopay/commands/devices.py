"""Lost and found phones: lock a device (and every session on it), let it sign in again."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from gopay.aggregates.errors import Unauthenticated
from gopay.aggregates.session import Session
from gopay.aggregates.user import OtpRejected, User
from gopay.commands.bus import Command, Context, Outcome, in_batch, procedure
from gopay.commands.two_factor import spend_second_factor
from gopay.group_commit import UnitOfWork
from gopay.security.passwords import verify_password


@dataclass(frozen=True, kw_only=True)
class LockDevice(Command[User]):
    """Kill every session of a lost device at once; with `wipe`, tell it to erase itself."""

    user_id: UUID
    device_id: str
    wipe: bool = False


@dataclass(frozen=True, kw_only=True)
class ReenrollDevice(Command[User]):
    """Let a locked device sign in again: password, and the second factor if there is one."""

    user_id: UUID
    device_id: str
    password: str = field(repr=False)
    code: str | None = None


@in_batch(LockDevice)
def lock_device(command: LockDevice, unit: UnitOfWork, context: Context) -> User:
    user = unit.get(command.user_id, User)
    for session_id in user.lock_device(command.device_id, wipe=command.wipe):
        session = unit.find(session_id, Session)
        if session is not None:
            session.revoke(reason="device_locked")
    return user


@procedure(ReenrollDevice)
def reenroll_device(command: ReenrollDevice, context: Context) -> Outcome[User]:
    if not verify_password(context.app.get(command.user_id, User).password_hash, command.password):
        raise Unauthenticated("the password is wrong")
    now = context.clock().timestamp()

    def reenroll(unit: UnitOfWork) -> User:
        user = unit.get(command.user_id, User)
        if user.totp_enabled:
            if not command.code:
                raise OtpRejected("re-enrolling a device needs a code from your "
                                  "authenticator app")
            spend_second_factor(user, command.code, now)
        user.reenroll_device(command.device_id)
        return user

    return context.commit(reenroll)

