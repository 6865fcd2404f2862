"""Registration, login and sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request

from gopay.api.deps import Caller, IdempotencyKey, SystemDep
from gopay.api.problems import Problem
from gopay.api.schemas import (
    Accepted,
    LoginRequest,
    OtpConfirm,
    RecoveryCodesPublic,
    RecoveryConfirm,
    RecoveryRequest,
    RefreshRequest,
    TokenPair,
    TotpSetupPublic,
    UserCreate,
    UserPublic,
)
from gopay.commands.recovery import ConfirmRecovery, RequestRecovery
from gopay.commands.registration import Register
from gopay.commands.sign_in import EndSession, RefreshSession, SignedIn, SignIn
from gopay.commands.two_factor import DisableTotp, EnableTotp, RenewRecoveryCodes, SetUpTotp
from gopay.security.tokens import AccessClaims, issue_access_token
from gopay.system import System

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def user_public(row: dict[str, Any]) -> UserPublic:
    """A user as the directory shows them."""
    return UserPublic.model_validate(row)


def shown_user(system: System, user_id: Any, position: int) -> UserPublic:
    """The user as the read side shows them once it has reached `position`."""
    system.show(position)
    row = system.read_side.directory.user(user_id)
    if row is None:
        raise Problem(404, "user not found")
    return user_public(row)


def token_pair(system: System, signed_in: SignedIn) -> TokenPair:
    user, session = signed_in.user, signed_in.session
    ttl = timedelta(minutes=system.settings.access_token_minutes)
    claims = AccessClaims(user.id, session.id, user.kind, user.role, user.wallet_id,
                          session.device_id)
    return TokenPair(access_token=issue_access_token(claims, system.settings.signing_key, ttl),
                     refresh_token=signed_in.refresh_token, expires_in=int(ttl.total_seconds()))


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/register", status_code=201, response_model=UserPublic)
def register(body: UserCreate, system: SystemDep,
             idempotency_key: IdempotencyKey = None) -> UserPublic:
    """Open an account for a person, company or agent, with a wallet in `currency`."""
    outcome = system.commands.run(Register(
        email=str(body.email), password=body.password, kind=body.kind,
        full_name=body.full_name, phone=body.phone, country=body.country,
        business_name=body.business_name, category=body.category, currency=body.currency,
        idempotency_key=idempotency_key))
    return shown_user(system, outcome.value.id, outcome.position)


@router.post("/login", response_model=TokenPair)
def login(body: LoginRequest, request: Request, system: SystemDep) -> TokenPair:
    """Exchange e-mail and password for an access token and a refresh token.

    With 2FA on, `otp` (a current code or a recovery code) is needed too: 401 `otp_required`.
    Repeated failures for one account or from one address answer 429 with Retry-After,
    whether or not the e-mail belongs to anyone. A locked device cannot sign in.
    """
    outcome = system.commands.run(SignIn(email=body.email, password=body.password, otp=body.otp,
                                         device_id=body.device_id, address=_address(request)))
    return token_pair(system, outcome.value)


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, system: SystemDep) -> TokenPair:
    """Rotate the refresh token: the old one stops working, reusing it ends the session."""
    return token_pair(system, system.commands.run(RefreshSession(refresh_token=body.refresh_token)).value)


@router.post("/logout", status_code=204)
def logout(caller: Caller, system: SystemDep) -> None:
    """End this session: its access and refresh tokens stop working at once."""
    system.commands.run(EndSession(session_id=caller.session_id))


@router.post("/2fa/setup", response_model=TotpSetupPublic)
def set_up_two_factor(caller: Caller, system: SystemDep) -> TotpSetupPublic:
    """A new TOTP secret to put in an authenticator app; nothing changes until `enable`."""
    setup = system.commands.run(SetUpTotp(user_id=caller.user_id)).value
    return TotpSetupPublic(secret=setup.secret, otpauth_uri=setup.otpauth_uri)


@router.post("/2fa/enable", response_model=RecoveryCodesPublic)
def enable_two_factor(body: OtpConfirm, caller: Caller, system: SystemDep) -> RecoveryCodesPublic:
    """Turn 2FA on with a first valid code; the answer holds recovery codes, shown only once."""
    codes = system.commands.run(EnableTotp(user_id=caller.user_id, code=body.otp)).value
    return RecoveryCodesPublic(recovery_codes=codes)


@router.post("/2fa/disable", response_model=UserPublic)
def disable_two_factor(body: OtpConfirm, caller: Caller, system: SystemDep) -> UserPublic:
    """Turn 2FA off; it takes a fresh code (or a recovery code)."""
    outcome = system.commands.run(DisableTotp(user_id=caller.user_id, code=body.otp))
    return shown_user(system, caller.user_id, outcome.position)


@router.post("/2fa/recovery-codes", response_model=RecoveryCodesPublic)
def renew_recovery_codes(body: OtpConfirm, caller: Caller, system: SystemDep) -> RecoveryCodesPublic:
    """Replace every recovery code with ten new ones; the old ones stop working."""
    codes = system.commands.run(RenewRecoveryCodes(user_id=caller.user_id, code=body.otp)).value
    return RecoveryCodesPublic(recovery_codes=codes)


@router.post("/recovery", status_code=202, response_model=Accepted)
def request_recovery(body: RecoveryRequest, request: Request, system: SystemDep) -> Accepted:
    """E-mail a one-time recovery token; the answer is the same whether the e-mail exists."""
    system.commands.run(RequestRecovery(email=body.email, address=_address(request)))
    return Accepted(detail="if an account has this e-mail, a recovery token is on its way")


@router.post("/recovery/confirm", response_model=UserPublic)
def confirm_recovery(body: RecoveryConfirm, system: SystemDep) -> UserPublic:
    """Set a new password with the token; every session of the account ends."""
    outcome = system.commands.run(ConfirmRecovery(token=body.token, new_password=body.new_password))
    return shown_user(system, outcome.value.id, outcome.position)
