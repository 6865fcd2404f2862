"""People, companies, agents and staff, and the indexes that keep e-mails and phones unique."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import (
    DomainError,
    InvalidState,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from gopay.aggregates.ledger import LEDGER_NAMESPACE

CUSTOMER_KINDS = ("person", "company", "agent")
STAFF_ROLES = ("admin", "sub_admin", "auditor", "finance", "support")
DOCUMENT_TYPES = ("passport", "national_id", "driving_licence")


def check_opening(kind: str, role: str | None, business_name: str | None,
                  category: str | None) -> None:
    """What an account of each kind needs before it can be opened."""
    if kind == "staff":
        if role not in STAFF_ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}")
    elif kind not in CUSTOMER_KINDS:
        raise ValidationFailed(f"unknown kind of account {kind!r}")
    elif kind == "company" and not (business_name and category):
        raise ValidationFailed("a company needs a business_name and a category")


class RecoveryRefused(Unauthenticated):
    """A recovery token that is wrong, used or expired."""


class OtpRejected(DomainError):
    """A second factor that is missing, wrong, drifted or already used."""

    code = "otp_required"
    status = 401


@dataclass(frozen=True)
class Device:
    """A phone or browser the user signed in from, and the sessions it started."""

    enrolled_at: str
    last_login_at: str
    locked: bool = False
    wipe: bool = False
    sessions: tuple[UUID, ...] = ()


class User(Aggregate):
    """Someone who signs in: a customer with a wallet, or a staff member with a role."""

    class Registered(Aggregate.Created):
        email: str
        password_hash: str
        kind: str
        role: str | None
        full_name: str
        phone: str | None
        country: str | None
        business_name: str | None
        category: str | None
        wallet_id: UUID | None

    @event(Registered)
    def __init__(self, id: UUID, email: str, password_hash: str, kind: str, role: str | None,
                 full_name: str, phone: str | None, country: str | None,
                 business_name: str | None, category: str | None,
                 wallet_id: UUID | None) -> None:
        self.email = email
        self.password_hash = password_hash
        self.kind = kind
        self.role = role
        self.full_name = full_name
        self.phone = phone
        self.country = country
        self.business_name = business_name
        self.category = category
        self.wallet_id = wallet_id
        self.kyc_status = "unverified"
        self.login_notifications = True
        self.totp_secret: str | None = None  # set up, and maybe enabled
        self.totp_enabled = False
        self.last_otp_step = 0  # a time step used once can never be used again
        self.recovery_code_digests: tuple[str, ...] = ()
        self.devices: Mapping[str, Device] = MappingProxyType({})
        self.sessions_without_device: tuple[UUID, ...] = ()
        self.recovery_digest: str | None = None
        self.recovery_expires_at = ""

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    class ProfileChanged(Aggregate.Event):
        full_name: str
        phone: str | None
        login_notifications: bool

    @event(ProfileChanged)
    def change_profile(self, full_name: str, phone: str | None,
                       login_notifications: bool) -> None:
        """What a user may change about themselves; nothing else is reachable this way."""
        self.full_name = full_name
        self.phone = phone
        self.login_notifications = login_notifications

    def change_role(self, role: str, *, by: UUID) -> None:
        """A staff member's new role (their sessions end with it, so it applies at once)."""
        if not self.is_staff:
            raise ValidationFailed("only staff accounts have roles")
        if role not in STAFF_ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}")
        if by == self.id:
            raise ValidationFailed("staff cannot change their own role")
        if role != self.role:
            self._role_changed(role=role, by=by)

    class RoleChanged(Aggregate.Event):
        role: str
        by: UUID

    @event(RoleChanged)
    def _role_changed(self, role: str, by: UUID) -> None:
        self.role = role

    @event("PasswordRehashed")
    def rehash_password(self, password_hash: str) -> None:
        """Keep the stored hash on current Argon2 parameters."""
        self.password_hash = password_hash

    # Signing in, and the devices it happens on

    @property
    def sessions(self) -> list[UUID]:
        """Every session this user ever started (revoking an ended one changes nothing)."""
        on_devices = [sid for device in self.devices.values() for sid in device.sessions]
        return [*on_devices, *self.sessions_without_device]

    def may_sign_in_on(self, device_id: str | None) -> bool:
        device = self.devices.get(device_id) if device_id else None
        return device is None or not device.locked

    class LoggedIn(Aggregate.Event):
        session_id: UUID
        device_id: str | None
        address: str | None
        at: str

    @event(LoggedIn)
    def logged_in(self, session_id: UUID, device_id: str | None, address: str | None,
                  at: str) -> None:
        """A new session; the first sign-in on a device enrolls it."""
        if device_id is None:
            self.sessions_without_device = (*self.sessions_without_device, session_id)
            return
        device = self.devices.get(device_id) or Device(enrolled_at=at, last_login_at=at)
        self._replace_device(device_id, replace(device, last_login_at=at,
                                                sessions=(*device.sessions, session_id)))

    class LoginFailed(Aggregate.Event):
        reason: str
        device_id: str | None
        address: str | None

    @event(LoginFailed)
    def login_failed(self, reason: str, device_id: str | None, address: str | None) -> None:
        """Recorded for the account's security history; state does not change."""

    def lock_device(self, device_id: str, *, wipe: bool) -> list[UUID]:
        """Stop a lost device: its sessions are to be revoked; returns them."""
        device = self.devices.get(device_id)
        if device is None:
            raise NotFound("device not found")
        if not device.locked or (wipe and not device.wipe):
            self._device_locked(device_id=device_id, wipe=wipe or device.wipe)
        return list(device.sessions)

    def reenroll_device(self, device_id: str) -> None:
        """Let a locked device sign in again (after password and second factor)."""
        device = self.devices.get(device_id)
        if device is None:
            raise NotFound("device not found")
        if not device.locked:
            raise InvalidState("this device is not locked")
        self._device_reenrolled(device_id=device_id)

    class DeviceLocked(Aggregate.Event):
        device_id: str
        wipe: bool

    @event(DeviceLocked)
    def _device_locked(self, device_id: str, wipe: bool) -> None:
        self._replace_device(device_id, replace(self.devices[device_id], locked=True, wipe=wipe))

    class DeviceReenrolled(Aggregate.Event):
        device_id: str

    @event(DeviceReenrolled)
    def _device_reenrolled(self, device_id: str) -> None:
        self._replace_device(device_id, replace(self.devices[device_id], locked=False, wipe=False))

    def _replace_device(self, device_id: str, device: Device) -> None:
        self.devices = MappingProxyType({**self.devices, device_id: device})

    # Account recovery: a one-time token, by e-mail, that sets a new password

    def request_recovery(self, token_digest: str, expires_at: str) -> None:
        """Only the latest token works; asking again replaces it."""
        self._recovery_requested(token_digest=token_digest, expires_at=expires_at)

    def recover(self, token_digest: str, password_hash: str, now: str) -> list[UUID]:
        """Set the new password; returns the sessions to revoke (all of them)."""
        if (self.recovery_digest is None
                or not hmac.compare_digest(self.recovery_digest, token_digest)
                or now >= self.recovery_expires_at):
            raise RecoveryRefused("this recovery link is invalid, used or expired")
        self._password_reset(password_hash=password_hash)
        return self.sessions

    @event("RecoveryRequested")
    def _recovery_requested(self, token_digest: str, expires_at: str) -> None:
        self.recovery_digest = token_digest
        self.recovery_expires_at = expires_at

    @event("PasswordReset")
    def _password_reset(self, password_hash: str) -> None:
        self.password_hash = password_hash
        self.recovery_digest = None

    # Two-factor authentication (RFC 6238 time steps; checking a code is gopay.security.otp)

    def set_up_totp(self, secret: str) -> None:
        if self.totp_enabled:
            raise InvalidState("two-factor authentication is already on; disable it first")
        self._totp_set_up(secret=secret)

    def enable_totp(self, step: int, recovery_code_digests: tuple[str, ...]) -> None:
        if self.totp_secret is None or self.totp_enabled:
            raise InvalidState("set up two-factor authentication first")
        self._check_fresh(step)
        self._totp_enabled(step=step, recovery_code_digests=recovery_code_digests)

    def disable_totp(self) -> None:
        """Turn 2FA off; the caller has just proven a second factor (see `use_otp`)."""
        if not self.totp_enabled:
            raise InvalidState("two-factor authentication is not on")
        self._totp_disabled()

    def use_otp(self, step: int) -> None:
        """Spend a code's time step: the same code, or an older one, never works again."""
        self._check_fresh(step)
        self._otp_used(step=step)

    def use_recovery_code(self, digest: str) -> None:
        if digest not in self.recovery_code_digests:
            raise OtpRejected("the code is wrong or already used")
        self._recovery_code_used(digest=digest)

    def renew_recovery_codes(self, digests: tuple[str, ...]) -> None:
        if not self.totp_enabled:
            raise InvalidState("two-factor authentication is not on")
        self._recovery_codes_renewed(recovery_code_digests=digests)

    def _check_fresh(self, step: int) -> None:
        if step <= self.last_otp_step:
            raise OtpRejected("this code was already used; wait for the next one")

    class TotpSetUp(Aggregate.Event):
        secret: str

    @event(TotpSetUp)
    def _totp_set_up(self, secret: str) -> None:
        self.totp_secret = secret

    class TotpEnabled(Aggregate.Event):
        step: int
        recovery_code_digests: tuple[str, ...]

    @event(TotpEnabled)
    def _totp_enabled(self, step: int, recovery_code_digests: tuple[str, ...]) -> None:
        self.totp_enabled = True
        self.last_otp_step = step
        self.recovery_code_digests = tuple(recovery_code_digests)

    class TotpDisabled(Aggregate.Event):
        pass

    @event(TotpDisabled)
    def _totp_disabled(self) -> None:
        self.totp_enabled = False
        self.totp_secret = None
        self.recovery_code_digests = ()

    @event("OtpUsed")
    def _otp_used(self, step: int) -> None:
        self.last_otp_step = step

    @event("RecoveryCodeUsed")
    def _recovery_code_used(self, digest: str) -> None:
        self.recovery_code_digests = tuple(d for d in self.recovery_code_digests if d != digest)

    @event("RecoveryCodesRenewed")
    def _recovery_codes_renewed(self, recovery_code_digests: tuple[str, ...]) -> None:
        self.recovery_code_digests = tuple(recovery_code_digests)

    # Know your customer

    def submit_kyc(self, document_type: str, document_number: str, date_of_birth: str) -> None:
        if self.is_staff:
            raise ValidationFailed("staff accounts are not verified this way")
        if document_type not in DOCUMENT_TYPES:
            raise ValidationFailed(f"document_type must be one of {', '.join(DOCUMENT_TYPES)}")
        if self.kyc_status in ("pending", "verified"):
            raise InvalidState(f"identity documents are already {self.kyc_status}")
        self._kyc_submitted(document_type=document_type, document_number=document_number,
                            date_of_birth=date_of_birth)

    def decide_kyc(self, decision: str, *, by: UUID, reason: str) -> None:
        if decision not in ("approve", "reject"):
            raise ValidationFailed("decision must be approve or reject")
        if self.kyc_status != "pending":
            raise InvalidState(f"there is nothing to decide: KYC is {self.kyc_status}")
        self._kyc_decided(decision=decision, by=by, reason=reason)

    class KycSubmitted(Aggregate.Event):
        document_type: str
        document_number: str
        date_of_birth: str

    @event(KycSubmitted)
    def _kyc_submitted(self, document_type: str, document_number: str,
                       date_of_birth: str) -> None:
        self.kyc_status = "pending"
        self.document_type = document_type
        self.document_number = document_number
        self.date_of_birth = date_of_birth

    class KycDecided(Aggregate.Event):
        decision: str
        by: UUID
        reason: str

    @event(KycDecided)
    def _kyc_decided(self, decision: str, by: UUID, reason: str) -> None:
        self.kyc_status = "verified" if decision == "approve" else "rejected"


class EmailIndex(Aggregate):
    """Claims an e-mail address for one user; a second claim fails to save."""

    @staticmethod
    def id_for(email: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"email/{email.strip().lower()}")

    @event("Claimed")
    def __init__(self, id: UUID, user_id: UUID) -> None:
        self.user_id = user_id


class PhoneIndex(Aggregate):
    """Claims a phone number (E.164) for one user; a number given up can be claimed again."""

    @staticmethod
    def id_for(phone: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"phone/{phone}")

    @event("Claimed")
    def __init__(self, id: UUID, user_id: UUID) -> None:
        self.user_id: UUID | None = user_id

    @event("Reclaimed")
    def claim(self, user_id: UUID) -> None:
        self.user_id = user_id

    @event("Released")
    def release(self) -> None:
        self.user_id = None


# Personal data, sealed with the user's data key in the stored events (gopay/security/sealing.py).
PERSONAL_FIELDS: dict[type, tuple[str, ...]] = {
    User.Registered: ("email", "full_name", "phone"),
    User.ProfileChanged: ("full_name", "phone"),
    User.LoggedIn: ("address",),
    User.LoginFailed: ("address",),
    User.TotpSetUp: ("secret",),
    User.KycSubmitted: ("document_number", "date_of_birth"),
}
