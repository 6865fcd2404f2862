"""Account recovery: a one-time token by e-mail that sets a new password and ends every session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from uuid import UUID

from gopay.aggregates.errors import TooManyAttempts
from gopay.aggregates.session import Session, token_digest
from gopay.aggregates.user import RecoveryRefused, User
from gopay.commands.bus import Command, Context, Outcome, procedure
from gopay.commands.sign_in import user_by_email
from gopay.group_commit import UnitOfWork
from gopay.security.passwords import hash_password, verify_password

INVALID = "this recovery token is invalid, used or expired"


@dataclass(frozen=True, kw_only=True)
class RequestRecovery(Command[None]):
    """E-mail a one-time token; silent (and as slow) when nobody has `email`.

    Each request spends from the same allowance as a failed sign-in, per account and per
    client address, so recovery cannot be used to flood a mailbox or probe for accounts.
    """

    email: str
    address: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConfirmRecovery(Command[User]):
    """Set the new password and end every session, in one commit; the token dies with it."""

    token: str = field(repr=False)
    new_password: str = field(repr=False)


@procedure(RequestRecovery)
def request_recovery(command: RequestRecovery, context: Context) -> Outcome[None]:
    throttle = context.login_throttle
    subjects = throttle.subjects(command.email, command.address)
    wait = throttle.retry_after(subjects)
    if wait is not None:
        raise TooManyAttempts("too many attempts; try again later", retry_after=wait)
    throttle.failed(subjects)
    user = user_by_email(context, command.email)
    if user is None:
        verify_password(None, "")  # the same work either way: answers reveal nothing
        return Outcome(None, 0)
    secret = secrets.token_urlsafe(32)
    expires_at = context.clock() + context.recovery_ttl
    outcome = context.commit(lambda unit: unit.get(user.id, User).request_recovery(
        token_digest=token_digest(secret), expires_at=expires_at.isoformat()))
    minutes = int(context.recovery_ttl.total_seconds() // 60)
    context.outbox.put(user.id, user.email, "Reset your GoPay password",
                       "Someone asked to reset the password of your GoPay account.\n\n"
                       f"Your one-time recovery token (valid {minutes} minutes):\n\n"
                       f"    {user.id}.{secret}\n\n"
                       "If it was not you, ignore this message: nothing has changed.")
    return outcome


@procedure(ConfirmRecovery)
def confirm_recovery(command: ConfirmRecovery, context: Context) -> Outcome[User]:
    user_id_text, _, secret = command.token.partition(".")
    try:
        user_id = UUID(user_id_text)
    except ValueError:
        raise RecoveryRefused(INVALID) from None
    if context.app.find(user_id, User) is None or not secret:
        raise RecoveryRefused(INVALID)
    password_hash = hash_password(command.new_password)
    now = context.clock().isoformat()

    def recover(unit: UnitOfWork) -> User:
        user = unit.get(user_id, User)
        for session_id in user.recover(token_digest(secret), password_hash, now):
            session = unit.find(session_id, Session)
            if session is not None:
                session.revoke(reason="password_reset")
        return user

    return context.commit(recover)
