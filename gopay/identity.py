"""Commands about who someone is: signing in, second factors, devices, KYC and recovery.

They run through the same group committer as the ledger, so a code spent, a device locked
or a KYC decision is one atomic, durable change, exactly once across API processes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from gopay.aggregates.device import DeviceStatus
from gopay.aggregates.errors import DomainError, Unauthenticated, ValidationFailed
from gopay.aggregates.session import Session, token_digest
from gopay.aggregates.user import OtpRejected, RecoveryRefused, User
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay, Outcome
from gopay.group_commit import UnitOfWork
from gopay.notifications.outbox import Outbox
from gopay.security import otp
from gopay.security.passwords import hash_password, verify_password
from gopay.security.tokens import new_refresh_token

# User events an auditor reads as the account's security history.
SECURITY_EVENTS = ("Registered", "LoggedIn", "LoginFailed", "PasswordRehashed", "PasswordReset",
                   "RecoveryRequested", "TotpSetUp", "TotpEnabled", "TotpDisabled", "RecoveryCodeUsed",
                   "RecoveryCodesRenewed", "DeviceLocked", "DeviceReenrolled", "KycSubmitted",
                   "KycDecided", "ProfileChanged", "RoleChanged",
                   # of the wallet
                   "Frozen", "Unfrozen", "TierChanged")


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: Session
    refresh_token: str


@dataclass(frozen=True)
class LoginAttempt:
    email: str
    password: str
    otp: str | None = None
    device_id: str | None = None
    address: str | None = None


class Identity:
    """Sign-in, 2FA, devices, recovery and KYC over the GoPay application's aggregates."""

    def __init__(self, app: GoPay, outbox: Outbox,
                 recovery_ttl: timedelta = timedelta(minutes=30)) -> None:
        self.app = app
        self.outbox = outbox
        self.recovery_ttl = recovery_ttl

    # Signing in

    def login(self, attempt: LoginAttempt) -> SignedIn:
        """A new session for right credentials (and second factor, when the user has one).

        Raises Unauthenticated or OtpRejected; failures on a real account are recorded.
        """
        a = attempt
        user = self.app.authenticate(a.email, a.password)
        if user is None:
            known = self.app.find_user(a.email)
            if known is not None:
                self._change(known.id, lambda u: u.login_failed(
                    reason="password", device_id=a.device_id, address=a.address))
            raise Unauthenticated("the e-mail or the password is wrong")
        session_id = uuid4()
        refresh_token, secret = new_refresh_token(session_id)
        now = time.time()

        def command(unit: UnitOfWork) -> Session | DomainError:
            current = unit.get(user.id, User)
            if not current.may_sign_in_on(a.device_id):
                current.login_failed(reason="device_locked", device_id=a.device_id,
                                     address=a.address)
                return Unauthenticated("this device was locked; re-enroll it from another "
                                       "signed-in device with your password and second factor")
            if current.totp_enabled:
                if not a.otp:
                    return OtpRejected("enter the code from your authenticator app")
                try:
                    _spend_second_factor(current, a.otp, now)
                except OtpRejected as refusal:
                    current.login_failed(reason="otp", device_id=a.device_id, address=a.address)
                    return refusal
            session = Session(id=session_id, user_id=current.id, device_id=a.device_id,
                              refresh_digest=token_digest(secret))
            current.logged_in(session_id=session_id, device_id=a.device_id, address=a.address,
                              at=_iso(now))
            unit.add(session)
            return session

        result, _ = self.app.committer.execute(command)
        if isinstance(result, DomainError):
            raise result
        return SignedIn(self.app.get_user(user.id), result, refresh_token)

    def confirm_second_factor(self, user_id: UUID, code: str | None) -> None:
        """Step-up: a fresh code before a large payment or a security change (if 2FA is on)."""
        now = time.time()

        def command(unit: UnitOfWork) -> None:
            user = unit.get(user_id, User)
            if not user.totp_enabled:
                return
            if not code:
                raise OtpRejected("this needs a fresh code from your authenticator app")
            _spend_second_factor(user, code, now)

        self.app.committer.execute(command)

    # Two-factor authentication

    def set_up_totp(self, user_id: UUID) -> tuple[str, str]:
        """A new secret to scan; it takes effect only once `enable_totp` sees a valid code."""
        secret = otp.new_secret()
        user = self._change(user_id, lambda u: u.set_up_totp(secret))
        return secret, otp.provisioning_uri(secret, user.email)

    def enable_totp(self, user_id: UUID, code: str) -> list[str]:
        """Turn 2FA on with a first valid code; returns recovery codes, shown only now."""
        codes = otp.new_recovery_codes()
        digests = tuple(otp.recovery_code_digest(c) for c in codes)
        now = time.time()

        def enable(user: User) -> None:
            step = otp.matching_step(user.totp_secret, code, now) if user.totp_secret else None
            if step is None:
                raise OtpRejected("the code is wrong or expired")
            user.enable_totp(step, digests)

        self._change(user_id, enable)
        return codes

    def disable_totp(self, user_id: UUID, code: str) -> None:
        now = time.time()

        def disable(user: User) -> None:
            if user.totp_enabled:
                _spend_second_factor(user, code, now)
            user.disable_totp()

        self._change(user_id, disable)

    def renew_recovery_codes(self, user_id: UUID, code: str) -> list[str]:
        codes = otp.new_recovery_codes()
        digests = tuple(otp.recovery_code_digest(c) for c in codes)
        now = time.time()

        def renew(user: User) -> None:
            if user.totp_enabled:
                _spend_second_factor(user, code, now)
            user.renew_recovery_codes(digests)

        self._change(user_id, renew)
        return codes

    # Devices

    def lock_device(self, user_id: UUID, device_id: str, *, wipe: bool) -> User:
        """Kill every session of a lost device at once; with `wipe`, tell it to erase itself."""

        def command(unit: UnitOfWork) -> User:
            user = unit.get(user_id, User)
            for session_id in user.lock_device(device_id, wipe=wipe):
                session = unit.find(session_id, Session)
                if session is not None:
                    session.revoke(reason="device_locked")
            status = _device_status(unit, device_id)
            status.lock(user_id=user_id, wipe=wipe)
            return user

        return self.app.committer.execute(command)[0]

    def reenroll_device(self, user_id: UUID, device_id: str, password: str,
                        code: str | None) -> User:
        """Let a locked device sign in again: password, and the second factor if there is one."""
        if not verify_password(self.app.get_user(user_id).password_hash, password):
            raise Unauthenticated("the password is wrong")
        now = time.time()

        def command(unit: UnitOfWork) -> User:
            user = unit.get(user_id, User)
            if user.totp_enabled:
                if not code:
                    raise OtpRejected("re-enrolling a device needs a code from your "
                                      "authenticator app")
                _spend_second_factor(user, code, now)
            user.reenroll_device(device_id)
            _device_status(unit, device_id).unlock(user_id=user_id)
            return user

        return self.app.committer.execute(command)[0]

    def device_status(self, device_id: str) -> tuple[bool, bool]:
        """(locked, wipe) for a device id; an unknown id looks like an unlocked device."""
        status = self.app.find(DeviceStatus.id_for(device_id), DeviceStatus)
        return (status.locked, status.wipe) if status else (False, False)

    # Account recovery

    def request_recovery(self, email: str) -> None:
        """E-mail a one-time link that sets a new password; silent when nobody has `email`."""
        user = self.app.find_user(email)
        if user is None:
            verify_password(None, "")  # the same work either way: answers reveal nothing
            return
        secret = secrets.token_urlsafe(32)
        expires_at = datetime.now(UTC) + self.recovery_ttl
        self._change(user.id, lambda u: u.request_recovery(
            token_digest=token_digest(secret), expires_at=expires_at.isoformat()))
        minutes = int(self.recovery_ttl.total_seconds() // 60)
        self.outbox.put(user.id, user.email, "Reset your GoPay password",
                        "Someone asked to reset the password of your GoPay account.\n\n"
                        f"Your one-time recovery token (valid {minutes} minutes):\n\n"
                        f"    {user.id}.{secret}\n\n"
                        "If it was not you, ignore this message: nothing has changed.")

    def confirm_recovery(self, token: str, new_password: str) -> User:
        """Set the new password and end every session, in one commit; the token dies with it."""
        user_id_text, _, secret = token.partition(".")
        try:
            user_id = UUID(user_id_text)
        except ValueError:
            raise RecoveryRefused("this recovery token is invalid, used or expired") from None
        if self.app.find(user_id, User) is None or not secret:
            raise RecoveryRefused("this recovery token is invalid, used or expired")
        password_hash = hash_password(new_password)
        now = datetime.now(UTC).isoformat()

        def command(unit: UnitOfWork) -> User:
            user = unit.get(user_id, User)
            for session_id in user.recover(token_digest(secret), password_hash, now):
                session = unit.find(session_id, Session)
                if session is not None:
                    session.revoke(reason="password_reset")
            return user

        return self.app.committer.execute(command)[0]

    # Know your customer

    def submit_kyc(self, user_id: UUID, document_type: str, document_number: str,
                   date_of_birth: date, today: date | None = None) -> Outcome[User]:
        today = today or datetime.now(UTC).date()
        if not date(1900, 1, 1) <= date_of_birth <= today:
            raise ValidationFailed("date_of_birth is not a real date of birth")
        age = today.year - date_of_birth.year - ((today.month, today.day)
                                                 < (date_of_birth.month, date_of_birth.day))
        if age < 18:
            raise ValidationFailed("GoPay accounts are for adults (18 or older)")
        number = document_number.strip().upper()
        return self._changed(user_id, lambda u: u.submit_kyc(
            document_type, number, date_of_birth.isoformat()))

    def decide_kyc(self, staff_id: UUID, user_id: UUID, decision: str,
                   reason: str) -> Outcome[User]:
        """Staff approve or reject; the wallet's tier (and so its limits) follows at once."""

        def command(unit: UnitOfWork) -> User:
            user = unit.get(user_id, User)
            user.decide_kyc(decision, by=staff_id, reason=reason)
            if user.wallet_id is not None:
                wallet = unit.find(user.wallet_id, Wallet)
                if wallet is not None:
                    wallet.change_tier("verified" if user.kyc_status == "verified"
                                       else "unverified", by=staff_id)
            return user

        user, position = self.app.committer.execute(command)
        return Outcome(user, position)

    def change_role(self, admin_id: UUID, staff_id: UUID, role: str) -> User:
        """Give a staff member another role; their sessions end so no token keeps the old one."""

        def command(unit: UnitOfWork) -> User:
            user = unit.get(staff_id, User)
            user.change_role(role, by=admin_id)
            for session_id in user.sessions:
                session = unit.find(session_id, Session)
                if session is not None:
                    session.revoke(reason="role_changed")
            return user

        return self.app.committer.execute(command)[0]

    # The security history auditors read

    def security_events(self, user_id: UUID) -> list[dict[str, object]]:
        """The account's sign-ins, failures, 2FA, devices, KYC, roles and freezes, oldest first.

        Secrets (password hashes, TOTP secrets, recovery code digests, document numbers)
        are left out; what happened, when, and from where stays.
        """
        user = self.app.get_user(user_id)  # 404 for an unknown id
        hidden = {"password_hash", "secret", "recovery_code_digests", "digest", "token_digest",
                  "document_number", "originator_id", "originator_version", "timestamp",
                  "originator_topic"}
        events = list(self.app.repository.event_store.get(user_id))
        if user.wallet_id is not None:
            events += self.app.repository.event_store.get(user.wallet_id)
        history = [{"type": type(event).__name__, "version": event.originator_version,
                    "at": event.timestamp,
                    "data": {k: v for k, v in vars(event).items() if k not in hidden}}
                   for event in events if type(event).__name__ in SECURITY_EVENTS]
        return sorted(history, key=lambda entry: entry["at"])

    def _change(self, user_id: UUID, change: Callable[[User], None]) -> User:
        return self._changed(user_id, change).value

    def _changed(self, user_id: UUID, change: Callable[[User], None]) -> Outcome[User]:
        def command(unit: UnitOfWork) -> User:
            user = unit.get(user_id, User)
            change(user)
            return user

        user, position = self.app.committer.execute(command)
        return Outcome(user, position)


def _spend_second_factor(user: User, code: str, now: float) -> None:
    """Use a TOTP code (its time step, once) or one of the recovery codes (once)."""
    code = code.strip()
    if otp.is_totp_code(code):
        step = otp.matching_step(user.totp_secret or "", code, now)
        if step is None:
            raise OtpRejected("the code is wrong or expired")
        user.use_otp(step)
    else:
        user.use_recovery_code(otp.recovery_code_digest(code))


def _device_status(unit: UnitOfWork, device_id: str) -> DeviceStatus:
    status = unit.find(DeviceStatus.id_for(device_id), DeviceStatus)
    if status is None:
        status = DeviceStatus(id=DeviceStatus.id_for(device_id))
        unit.add(status)
    return status


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()
