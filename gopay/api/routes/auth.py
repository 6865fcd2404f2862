"""Registration, login and sessions."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request

from gopay.aggregates.errors import Unauthenticated, ValidationFailed
from gopay.aggregates.session import Session
from gopay.aggregates.user import OtpRejected, User
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
from gopay.application import Registration
from gopay.identity import LoginAttempt
from gopay.security.tokens import AccessClaims, issue_access_token
from gopay.system import System

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def user_public(user: User, frozen: bool = False) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, kind=user.kind, role=user.role,
                      kyc_status=user.kyc_status, wallet_id=user.wallet_id,
                      full_name=user.full_name, phone=user.phone, country=user.country,
                      business_name=user.business_name, category=user.category,
                      frozen=frozen, login_notifications=user.login_notifications,
                      two_factor_enabled=user.totp_enabled, created_at=user.created_on)


def token_pair(system: System, user: User, session: Session, refresh_token: str) -> TokenPair:
    ttl = timedelta(minutes=system.settings.access_token_minutes)
    claims = AccessClaims(user.id, session.id, user.kind, user.role, user.wallet_id)
    return TokenPair(access_token=issue_access_token(claims, system.settings.signing_key, ttl),
                     refresh_token=refresh_token, expires_in=int(ttl.total_seconds()))


@router.post("/register", status_code=201, response_model=UserPublic)
def register(body: UserCreate, system: SystemDep,
             idempotency_key: IdempotencyKey = None) -> UserPublic:
    """Open an account for a person, company or agent, with a wallet in `currency`."""
    if body.kind == "company" and not (body.business_name and body.category):
        raise ValidationFailed("a company needs a business_name and a category")
    outcome = system.app.register(Registration(
        email=str(body.email), password=body.password, kind=body.kind,
        full_name=body.full_name, phone=body.phone, country=body.country,
        business_name=body.business_name, category=body.category, currency=body.currency,
        idempotency_key=idempotency_key))
    return user_public(outcome.value)


@router.post("/login", response_model=TokenPair)
def login(body: LoginRequest, request: Request, system: SystemDep) -> TokenPair:
    """Exchange e-mail and password for an access token and a refresh token.

    With 2FA on, `otp` (a current code or a recovery code) is needed too: 401 `otp_required`.
    Repeated failures for one account or from one address answer 429 with Retry-After,
    whether or not the e-mail belongs to anyone. A locked device cannot sign in.
    """
    throttle = system.login_throttle
    subjects = throttle.subjects(body.email, request.client.host if request.client else None)
    wait = throttle.retry_after(subjects)
    if wait is not None:
        raise Problem(429, "too many failed sign-ins; try again later",
                      headers={"Retry-After": str(wait)})
    try:
        signed_in = system.identity.login(LoginAttempt(
            email=body.email, password=body.password, otp=body.otp, device_id=body.device_id,
            address=request.client.host if request.client else None))
    except (Unauthenticated, OtpRejected) as refusal:
        if not (isinstance(refusal, OtpRejected) and not body.otp):  # asking for it is no failure
            throttle.failed(subjects)
        raise
    throttle.succeeded(body.email)
    return token_pair(system, signed_in.user, signed_in.session, signed_in.refresh_token)


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, system: SystemDep) -> TokenPair:
    """Rotate the refresh token: the old one stops working, reusing it ends the session."""
    session, user, refresh_token = system.app.refresh_session(body.refresh_token)
    return token_pair(system, user, session, refresh_token)


@router.post("/logout", status_code=204)
def logout(caller: Caller, system: SystemDep) -> None:
    """End this session: its access and refresh tokens stop working at once."""
    system.app.end_session(caller.session_id)


@router.post("/2fa/setup", response_model=TotpSetupPublic)
def set_up_two_factor(caller: Caller, system: SystemDep) -> TotpSetupPublic:
    """A new TOTP secret to put in an authenticator app; nothing changes until `enable`."""
    secret, uri = system.identity.set_up_totp(caller.user_id)
    return TotpSetupPublic(secret=secret, otpauth_uri=uri)


@router.post("/2fa/enable", response_model=RecoveryCodesPublic)
def enable_two_factor(body: OtpConfirm, caller: Caller, system: SystemDep) -> RecoveryCodesPublic:
    """Turn 2FA on with a first valid code; the answer holds recovery codes, shown only once."""
    return RecoveryCodesPublic(recovery_codes=system.identity.enable_totp(caller.user_id, body.otp))


@router.post("/2fa/disable", response_model=UserPublic)
def disable_two_factor(body: OtpConfirm, caller: Caller, system: SystemDep) -> UserPublic:
    """Turn 2FA off; it takes a fresh code (or a recovery code)."""
    system.identity.disable_totp(caller.user_id, body.otp)
    return user_public(system.app.get_user(caller.user_id))


@router.post("/2fa/recovery-codes", response_model=RecoveryCodesPublic)
def renew_recovery_codes(body: OtpConfirm, caller: Caller, system: SystemDep) -> RecoveryCodesPublic:
    """Replace every recovery code with ten new ones; the old ones stop working."""
    return RecoveryCodesPublic(
        recovery_codes=system.identity.renew_recovery_codes(caller.user_id, body.otp))


@router.post("/recovery", status_code=202, response_model=Accepted)
def request_recovery(body: RecoveryRequest, request: Request, system: SystemDep) -> Accepted:
    """E-mail a one-time recovery token; the answer is the same whether the e-mail exists."""
    throttle = system.login_throttle
    subjects = throttle.subjects(body.email, request.client.host if request.client else None)
    wait = throttle.retry_after(subjects)
    if wait is not None:
        raise Problem(429, "too many attempts; try again later", headers={"Retry-After": str(wait)})
    throttle.failed(subjects)  # each request spends from the same allowance as failed sign-ins
    system.identity.request_recovery(body.email)
    return Accepted(detail="if an account has this e-mail, a recovery token is on its way")


@router.post("/recovery/confirm", response_model=UserPublic)
def confirm_recovery(body: RecoveryConfirm, system: SystemDep) -> UserPublic:
    """Set a new password with the token; every session of the account ends."""
    return user_public(system.identity.confirm_recovery(body.token, body.new_password))
