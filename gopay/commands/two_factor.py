"""Second factors: TOTP codes (RFC 6238) and recovery codes, set up, enabled, spent once."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.user import OtpRejected, User
from gopay.commands.bus import Command, Context, Outcome, procedure
from gopay.group_commit import UnitOfWork
from gopay.security import otp


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True, kw_only=True)
class SetUpTotp(Command[TotpSetup]):
    """A new secret to scan; it takes effect only once `EnableTotp` sees a valid code."""

    user_id: UUID


@dataclass(frozen=True, kw_only=True)
class EnableTotp(Command[list[str]]):
    """Turn 2FA on with a first valid code; answers recovery codes, shown only now."""

    user_id: UUID
    code: str


@dataclass(frozen=True, kw_only=True)
class DisableTotp(Command[User]):
    user_id: UUID
    code: str


@dataclass(frozen=True, kw_only=True)
class RenewRecoveryCodes(Command[list[str]]):
    """Replace every recovery code; the old ones stop working."""

    user_id: UUID
    code: str


@dataclass(frozen=True, kw_only=True)
class ConfirmSecondFactor(Command[None]):
    """Step-up: a fresh code before a large payment or a security change (when 2FA is on)."""

    user_id: UUID
    code: str | None


@procedure(SetUpTotp)
def set_up_totp(command: SetUpTotp, context: Context) -> Outcome[TotpSetup]:
    secret = otp.new_secret()

    def set_up(unit: UnitOfWork) -> TotpSetup:
        user = unit.get(command.user_id, User)
        user.set_up_totp(secret)
        return TotpSetup(secret, otp.provisioning_uri(secret, user.email))

    return context.commit(set_up)


@procedure(EnableTotp)
def enable_totp(command: EnableTotp, context: Context) -> Outcome[list[str]]:
    codes = otp.new_recovery_codes()
    digests = tuple(otp.recovery_code_digest(c) for c in codes)
    now = context.clock().timestamp()

    def enable(unit: UnitOfWork) -> list[str]:
        user = unit.get(command.user_id, User)
        step = otp.matching_step(user.totp_secret, command.code, now) if user.totp_secret else None
        if step is None:
            raise OtpRejected("the code is wrong or expired")
        user.enable_totp(step, digests)
        return codes

    return context.commit(enable)


@procedure(DisableTotp)
def disable_totp(command: DisableTotp, context: Context) -> Outcome[User]:
    now = context.clock().timestamp()

    def disable(unit: UnitOfWork) -> User:
        user = unit.get(command.user_id, User)
        if user.totp_enabled:
            spend_second_factor(user, command.code, now)
        user.disable_totp()
        return user

    return context.commit(disable)


@procedure(RenewRecoveryCodes)
def renew_recovery_codes(command: RenewRecoveryCodes, context: Context) -> Outcome[list[str]]:
    codes = otp.new_recovery_codes()
    digests = tuple(otp.recovery_code_digest(c) for c in codes)
    now = context.clock().timestamp()

    def renew(unit: UnitOfWork) -> list[str]:
        user = unit.get(command.user_id, User)
        if user.totp_enabled:
            spend_second_factor(user, command.code, now)
        user.renew_recovery_codes(digests)
        return codes

    return context.commit(renew)


@procedure(ConfirmSecondFactor)
def confirm_second_factor(command: ConfirmSecondFactor, context: Context) -> Outcome[None]:
    now = context.clock().timestamp()

    def confirm(unit: UnitOfWork) -> None:
        user = unit.get(command.user_id, User)
        if not user.totp_enabled:
            return
        if not command.code:
            raise OtpRejected("this needs a fresh code from your authenticator app")
        spend_second_factor(user, command.code, now)

    return context.commit(confirm)


def spend_second_factor(user: User, code: str, now: float) -> None:
    """Use a TOTP code (its time step, once) or one of the recovery codes (once)."""
    code = code.strip()
    if otp.is_totp_code(code):
        step = otp.matching_step(user.totp_secret or "", code, now)
        if step is None:
            raise OtpRejected("the code is wrong or expired")
        user.use_otp(step)
    else:
        user.use_recovery_code(otp.recovery_code_digest(code))
