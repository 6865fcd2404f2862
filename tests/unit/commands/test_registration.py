"""Opening an account: a customer with a wallet or staff with a role, once per e-mail and phone."""

from __future__ import annotations

from typing import Any

import pytest

from gopay.aggregates.errors import EmailTaken, IdempotencyConflict, PhoneTaken, ValidationFailed
from gopay.aggregates.user import STAFF_ROLES, EmailIndex, PhoneIndex, User
from gopay.commands.registration import Register
from gopay.security.passwords import verify_password
from tests.unit.commands.in_memory import PASSWORD, InMemoryGoPay, wallet_id


def ada(**fields: Any) -> Register:
    values: dict[str, Any] = {"email": "Ada@Example.com", "password": PASSWORD,
                                 "kind": "person", "full_name": "Ada Lovelace",
                                 "phone": "+442071234567", "country": "GB", **fields}
    return Register(**values)


class TestOpeningAnAccount:
    def test_a_person_gets_an_empty_wallet_in_their_currency(self, gopay: InMemoryGoPay) -> None:
        """A customer's account comes with a wallet of their currency, empty and unverified."""
        user = gopay.run(ada(currency="EUR"))
        wallet = gopay.wallet(user)
        assert (wallet.owner_id, wallet.currency, wallet.balance, wallet.tier) == (
            user.id, "EUR", 0, "unverified")
        assert user.kyc_status == "unverified" and not user.is_staff

    def test_the_email_is_kept_in_lower_case_and_claimed(self, gopay: InMemoryGoPay) -> None:
        """The e-mail is normalised and its index points at the new user, as does the phone's."""
        user = gopay.run(ada())
        assert user.email == "ada@example.com"
        assert gopay.app.get(EmailIndex.id_for("ADA@example.com"), EmailIndex).user_id == user.id
        assert gopay.app.get(PhoneIndex.id_for("+442071234567"), PhoneIndex).user_id == user.id

    def test_the_password_is_kept_only_as_a_hash(self, gopay: InMemoryGoPay) -> None:
        """What is stored verifies the password and is not the password."""
        user = gopay.run(ada())
        assert PASSWORD not in user.password_hash
        assert verify_password(user.password_hash, PASSWORD)

    def test_one_commit_opens_user_wallet_and_claims(self, gopay: InMemoryGoPay) -> None:
        """User, wallet, e-mail and phone claims are saved together: one group commit."""
        batches = gopay.app.committer.batches
        user = gopay.run(ada())
        assert gopay.app.committer.batches == batches + 1
        assert gopay.event_types(user.id) == ["Registered"]
        assert gopay.event_types(wallet_id(user)) == ["Opened"]

    def test_an_unknown_currency_is_refused(self, gopay: InMemoryGoPay) -> None:
        """A wallet is only opened in a currency GoPay holds, and nothing is saved otherwise."""
        with pytest.raises(ValidationFailed, match="currency"):
            gopay.run(ada(currency="XYZ"))
        assert gopay.head() == 0


class TestRepeatedRegistration:
    def test_the_same_request_with_its_key_finds_the_first_account(self, gopay: InMemoryGoPay) -> None:
        """A retried registration answers with the account the first one opened, saving nothing."""
        first = gopay.run(ada(idempotency_key="signup-1"))
        head = gopay.head()
        again = gopay.run(ada(idempotency_key="signup-1"))
        assert (again.id, again.wallet_id) == (first.id, first.wallet_id)
        assert gopay.head() == head

    def test_the_same_key_with_another_profile_is_a_conflict(self, gopay: InMemoryGoPay) -> None:
        """A key reused with different details is refused, not taken for the first request."""
        gopay.run(ada(idempotency_key="signup-1"))
        with pytest.raises(IdempotencyConflict):
            gopay.run(ada(idempotency_key="signup-1", full_name="Augusta Ada King"))

    def test_the_same_key_with_another_password_is_a_conflict(self, gopay: InMemoryGoPay) -> None:
        """A retry must know the first request's password: nobody takes over an account by replaying a key."""
        gopay.run(ada(idempotency_key="signup-1"))
        with pytest.raises(IdempotencyConflict):
            gopay.run(ada(idempotency_key="signup-1", password="another long password"))

    def test_the_same_key_with_another_currency_is_a_conflict(self, gopay: InMemoryGoPay) -> None:
        """The wallet's currency is part of the request a key stands for."""
        gopay.run(ada(idempotency_key="signup-1"))
        with pytest.raises(IdempotencyConflict):
            gopay.run(ada(idempotency_key="signup-1", currency="EUR"))

    def test_without_a_key_a_repeat_is_a_second_claim_of_the_email(self, gopay: InMemoryGoPay) -> None:
        """Only a key makes a repeat the same request; otherwise the e-mail is taken."""
        gopay.run(ada())
        with pytest.raises(EmailTaken):
            gopay.run(ada())


class TestOneAccountPerEmailAndPhone:
    def test_an_email_taken_in_any_case_is_refused(self, gopay: InMemoryGoPay) -> None:
        """E-mails are unique whatever their case or surrounding spaces."""
        gopay.run(ada())
        with pytest.raises(EmailTaken):
            gopay.run(ada(email="  ADA@example.COM ", phone=None))

    def test_a_phone_taken_is_refused_and_nothing_is_claimed(self, gopay: InMemoryGoPay) -> None:
        """A refused registration leaves no user, wallet or e-mail claim behind."""
        gopay.run(ada())
        head = gopay.head()
        with pytest.raises(PhoneTaken):
            gopay.run(ada(email="grace@example.com"))
        assert gopay.head() == head
        assert gopay.app.find(EmailIndex.id_for("grace@example.com"), EmailIndex) is None

    def test_a_refusal_in_a_batch_leaves_the_others_saved(self, gopay: InMemoryGoPay) -> None:
        """In one group commit, the registration that breaks a rule fails alone."""
        gopay.run(ada())
        with pytest.raises(EmailTaken):
            gopay.run(ada(phone="+442079460000"))
        grace = gopay.run(ada(email="grace@example.com", phone="+442079460000"))
        assert gopay.app.get(PhoneIndex.id_for("+442079460000"), PhoneIndex).user_id == grace.id


class TestCompanies:
    @pytest.mark.parametrize("missing", ["business_name", "category"])
    def test_a_company_needs_a_business_name_and_a_category(self, gopay: InMemoryGoPay,
                                                            missing: str) -> None:
        """Without its business name or category a company is not opened."""
        business = {"business_name": "Analytical Engines Ltd", "category": "retail"}
        with pytest.raises(ValidationFailed, match="business_name and a category"):
            gopay.run(ada(kind="company", **{**business, missing: None}))
        assert gopay.head() == 0

    def test_a_company_with_both_gets_a_wallet(self, gopay: InMemoryGoPay) -> None:
        """A company is a customer: it keeps its business details and gets a wallet."""
        company = gopay.run(ada(kind="company", business_name="Analytical Engines Ltd",
                                category="retail"))
        assert (company.business_name, company.category) == ("Analytical Engines Ltd", "retail")
        assert gopay.wallet(company).owner_id == company.id


class TestStaff:
    @pytest.mark.parametrize("role", STAFF_ROLES)
    def test_staff_get_their_role_and_no_wallet(self, gopay: InMemoryGoPay, role: str) -> None:
        """Every staff role can be given; staff hold no money."""
        member = gopay.register(f"{role}@gopay.example", kind="staff", role=role)
        assert (member.is_staff, member.role, member.wallet_id) == (True, role, None)

    @pytest.mark.parametrize("role", [None, "superuser", "customer"])
    def test_staff_without_a_known_role_are_refused(self, gopay: InMemoryGoPay,
                                                    role: str | None) -> None:
        """A staff account has one of the staff roles, or is not opened."""
        with pytest.raises(ValidationFailed, match="role must be one of"):
            gopay.register("who@gopay.example", kind="staff", role=role)

    def test_an_unknown_kind_of_account_is_refused(self, gopay: InMemoryGoPay) -> None:
        with pytest.raises(ValidationFailed, match="unknown kind"):
            gopay.run(ada(kind="robot"))

    def test_the_registered_event_is_the_user_s_only_one(self, gopay: InMemoryGoPay) -> None:
        """A new staff member is recorded by exactly one Registered event."""
        member = gopay.register("support@gopay.example", kind="staff", role="support")
        [registered] = gopay.events(member.id)
        assert isinstance(registered, User.Registered) and registered.role == "support"
