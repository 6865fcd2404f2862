"""Users and the indexes that keep e-mails and phone numbers unique by identity."""

from __future__ import annotations

from uuid import uuid4

from gopay.aggregates.user import EmailIndex, PhoneIndex, User


def person(**fields: object) -> User:
    values = {"email": "ada@example.com", "password_hash": "$argon2id$stub", "kind": "person",
              "role": None, "full_name": "Ada", "phone": "+442071234567", "country": "GB",
              "business_name": None, "category": None, "wallet_id": uuid4(), **fields}
    return User(id=uuid4(), **values)


class TestUser:
    def test_starts_unverified_with_one_registered_event(self) -> None:
        """A new user is unverified and recorded by exactly one Registered event."""
        user = person()
        [registered] = user.collect_events()
        assert isinstance(registered, User.Registered)
        assert user.kyc_status == "unverified" and not user.is_staff

    def test_staff_have_a_role_and_no_wallet(self) -> None:
        admin = person(kind="staff", role="admin", wallet_id=None, phone=None)
        assert admin.is_staff and admin.role == "admin" and admin.wallet_id is None

    def test_rehashing_changes_only_the_hash(self) -> None:
        """Upgrading the password hash records it and leaves the profile alone."""
        user = person()
        user.collect_events()
        user.rehash_password("$argon2id$newer")
        [rehashed] = user.collect_events()
        assert isinstance(rehashed, User.PasswordRehashed)
        assert (user.password_hash, user.full_name, user.version) == ("$argon2id$newer", "Ada", 2)


class TestIndexes:
    def test_email_index_ignores_case_and_spaces(self) -> None:
        """One address, however it is typed, claims the same index aggregate."""
        assert EmailIndex.id_for(" Ada@Example.COM ") == EmailIndex.id_for("ada@example.com")
        assert EmailIndex.id_for("ada@example.com") != EmailIndex.id_for("bob@example.com")

    def test_email_and_phone_ids_never_collide(self) -> None:
        """An index id says what it indexes: a phone number cannot take an e-mail's place."""
        assert EmailIndex.id_for("+442071234567") != PhoneIndex.id_for("+442071234567")

    def test_a_claim_points_at_its_user(self) -> None:
        user_id = uuid4()
        claim = EmailIndex(id=EmailIndex.id_for("ada@example.com"), user_id=user_id)
        assert claim.user_id == user_id and claim.version == 1
