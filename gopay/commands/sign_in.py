"""Signing in and out: sessions started by a password (and second factor), rotated, revoked.

Failed sign-ins are throttled per account and per client address, unknown e-mails
included, so an answer never tells whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4

from gopay.aggregates.errors import DomainError, TooManyAttempts, Unauthenticated
from gopay.aggregates.session import Session, SessionRevoked, token_digest
from gopay.aggregates.user import EmailIndex, OtpRejected, User
from gopay.commands.bus import Command, Context, Outcome, in_batch, procedure
from gopay.commands.two_factor import spend_second_factor
from gopay.group_commit import UnitOfWork
from gopay.security.passwords import hash_password, needs_rehash, verify_password
from gopay.security.tokens import new_refresh_token, split_refresh_token


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: Session
    refresh_token: str


@dataclass(frozen=True, kw_only=True)
class SignIn(Command[SignedIn]):
    """A new session for right credentials (and a second factor, when the user has one)."""

    email: str
    password: str = field(repr=False)
    otp: str | None = None
    device_id: str | None = None
    address: str | None = None


@dataclass(frozen=True, kw_only=True)
class RefreshSession(Command[SignedIn]):
    """Rotate a refresh token; presenting a used one revokes its whole session."""

    refresh_token: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class EndSession(Command[Session]):
    session_id: UUID
    reason: str = "logout"


@procedure(SignIn)
def sign_in(command: SignIn, context: Context) -> Outcome[SignedIn]:
    throttle = context.login_throttle
    subjects = throttle.subjects(command.email, command.address)
    wait = throttle.retry_after(subjects)
    if wait is not None:
        raise TooManyAttempts("too many failed sign-ins; try again later", retry_after=wait)
    try:
        outcome = _start_session(command, context)
    except (Unauthenticated, OtpRejected) as refusal:
        if not (isinstance(refusal, OtpRejected) and not command.otp):  # asking is no failure
            throttle.failed(subjects)
        raise
    throttle.succeeded(command.email)
    return outcome


def _start_session(command: SignIn, context: Context) -> Outcome[SignedIn]:
    user = user_by_email(context, command.email)
    if not verify_password(user.password_hash if user else None, command.password):
        if user is not None:
            context.commit(lambda unit: unit.get(user.id, User).login_failed(
                reason="password", device_id=command.device_id, address=command.address))
        raise Unauthenticated("the e-mail or the password is wrong")
    assert user is not None
    rehashed = hash_password(command.password) if needs_rehash(user.password_hash) else None
    session_id = uuid4()
    refresh_token, secret = new_refresh_token(session_id)
    now = context.clock()

    def start(unit: UnitOfWork) -> SignedIn | DomainError:
        # A refusal that records a failure is returned, not raised: the failure is saved.
        current = unit.get(user.id, User)
        if rehashed:
            current.rehash_password(rehashed)
        if not current.may_sign_in_on(command.device_id):
            current.login_failed(reason="device_locked", device_id=command.device_id,
                                 address=command.address)
            return Unauthenticated("this device was locked; re-enroll it from another "
                                   "signed-in device with your password and second factor")
        if current.totp_enabled:
            if not command.otp:
                return OtpRejected("enter the code from your authenticator app")
            try:
                spend_second_factor(current, command.otp, now.timestamp())
            except OtpRejected as refusal:
                current.login_failed(reason="otp", device_id=command.device_id,
                                     address=command.address)
                return refusal
        session = Session(id=session_id, user_id=current.id, device_id=command.device_id,
                          refresh_digest=token_digest(secret))
        current.logged_in(session_id=session_id, device_id=command.device_id,
                          address=command.address, at=now.isoformat())
        unit.add(session)
        return SignedIn(current, session, refresh_token)

    outcome = context.commit(start)
    if isinstance(outcome.value, DomainError):
        raise outcome.value
    return Outcome(outcome.value, outcome.position)


@procedure(RefreshSession)
def refresh_session(command: RefreshSession, context: Context) -> Outcome[SignedIn]:
    parsed = split_refresh_token(command.refresh_token)
    if parsed is None or context.app.find(parsed[0], Session) is None:
        raise SessionRevoked("this refresh token is not valid")
    session_id, secret = parsed
    new_token, new_secret = new_refresh_token(session_id)

    def rotate(unit: UnitOfWork) -> Session:
        session = unit.get(session_id, Session)
        session.rotate(secret, token_digest(new_secret))
        return session

    outcome = context.commit(rotate)
    session = outcome.value
    if session.revoked:
        raise SessionRevoked("this refresh token was already used; the session is revoked")
    return Outcome(SignedIn(context.app.get(session.user_id, User), session, new_token),
                   outcome.position)


@in_batch(EndSession)
def end_session(command: EndSession, unit: UnitOfWork, context: Context) -> Session:
    session = unit.get(command.session_id, Session)
    session.revoke(reason=command.reason)
    return session


def user_by_email(context: Context, email: str) -> User | None:
    index = context.app.find(EmailIndex.id_for(email), EmailIndex)
    return context.app.find(index.user_id, User) if index else None
