"""People, companies, agents and staff, and the indexes that keep e-mails and phones unique."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.ledger import LEDGER_NAMESPACE

CUSTOMER_KINDS = ("person", "company", "agent")
STAFF_ROLES = ("admin", "sub_admin", "auditor", "finance", "support")


class User(Aggregate):
    """Someone who signs in: a customer with a wallet, or a staff member with a role."""

    @event("Registered")
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

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @event("ProfileChanged")
    def change_profile(self, full_name: str, phone: str | None,
                       login_notifications: bool) -> None:
        """What a user may change about themselves; nothing else is reachable this way."""
        self.full_name = full_name
        self.phone = phone
        self.login_notifications = login_notifications

    @event("PasswordRehashed")
    def rehash_password(self, password_hash: str) -> None:
        """Keep the stored hash on current Argon2 parameters."""
        self.password_hash = password_hash


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
}
