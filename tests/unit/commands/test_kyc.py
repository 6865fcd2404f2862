"""Know your customer: adults send documents, staff decide, and the wallet's limits follow."""

from __future__ import annotations

from datetime import date

import pytest

from gopay.aggregates.errors import InvalidState, ValidationFailed
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.kyc import DecideKyc, SubmitKyc
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id

# The story's clock says 2026-03-13: an adult was born on or before 2008-03-13.
EIGHTEEN_TODAY = date(2008, 3, 13)


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def submit(gopay: InMemoryGoPay, user: User, born: date = date(1990, 12, 10),
           document_type: str = "passport") -> User:
    return gopay.run(SubmitKyc(user_id=user.id, document_type=document_type,
                               document_number=" x1234567 ", date_of_birth=born))


def decide(gopay: InMemoryGoPay, user: User, decision: str) -> User:
    return gopay.run(DecideKyc(staff_id=gopay.admin.id, user_id=user.id, decision=decision,
                               reason="documents checked"))


class TestSubmitting:
    def test_documents_make_the_check_pending(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The document number is kept trimmed and in capitals, the birth date as a date."""
        user = submit(gopay, ada)
        assert (user.kyc_status, user.document_number, user.date_of_birth) == (
            "pending", "X1234567", "1990-12-10")

    def test_someone_eighteen_today_may_submit(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The age rule reads the story's clock: eighteen years to the day is an adult."""
        assert submit(gopay, ada, born=EIGHTEEN_TODAY).kyc_status == "pending"

    def test_someone_eighteen_tomorrow_may_not(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(ValidationFailed, match="adults"):
            submit(gopay, ada, born=date(2008, 3, 14))
        gopay.clock.advance(days=1)
        assert submit(gopay, ada, born=date(2008, 3, 14)).kyc_status == "pending"

    @pytest.mark.parametrize("born", [date(2026, 3, 14), date(1899, 12, 31)])
    def test_an_impossible_birth_date_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                 born: date) -> None:
        with pytest.raises(ValidationFailed, match="not a real date of birth"):
            submit(gopay, ada, born=born)

    def test_an_unknown_document_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(ValidationFailed, match="document_type"):
            submit(gopay, ada, document_type="library_card")

    def test_pending_documents_cannot_be_sent_again(self, gopay: InMemoryGoPay, ada: User) -> None:
        submit(gopay, ada)
        with pytest.raises(InvalidState, match="pending"):
            submit(gopay, ada)

    def test_staff_are_not_verified_this_way(self, gopay: InMemoryGoPay) -> None:
        with pytest.raises(ValidationFailed, match="staff"):
            submit(gopay, gopay.admin)


class TestDeciding:
    def test_approval_verifies_the_user_and_raises_the_wallet_s_tier(self, gopay: InMemoryGoPay,
                                                                      ada: User) -> None:
        """The user and the wallet change together, and the wallet records who decided."""
        submit(gopay, ada)
        staff = gopay.admin
        head = gopay.head()
        assert decide(gopay, ada, "approve").kyc_status == "verified"
        assert gopay.wallet(ada).tier == "verified"
        assert gopay.head() == head + 2
        changed = gopay.events(wallet_id(ada))[-1]
        assert isinstance(changed, Wallet.TierChanged) and changed.by == staff.id

    def test_the_limits_follow_the_tier(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A payment over the unverified tier's limit goes through once the user is verified."""
        grace = gopay.register("grace@example.com")
        gopay.fund(ada, 50_000)
        with pytest.raises(LimitExceeded):
            gopay.transfer(ada, "grace@example.com", 20_000)
        submit(gopay, ada)
        decide(gopay, ada, "approve")
        gopay.transfer(ada, "grace@example.com", 20_000)
        assert gopay.balance(grace) == 20_000

    def test_rejection_leaves_the_tier_and_allows_a_new_submission(self, gopay: InMemoryGoPay,
                                                                   ada: User) -> None:
        submit(gopay, ada)
        assert decide(gopay, ada, "reject").kyc_status == "rejected"
        assert gopay.wallet(ada).tier == "unverified"
        assert "TierChanged" not in gopay.event_types(wallet_id(ada))
        assert submit(gopay, ada).kyc_status == "pending"

    def test_there_is_nothing_to_decide_before_a_submission(self, gopay: InMemoryGoPay,
                                                            ada: User) -> None:
        with pytest.raises(InvalidState):
            decide(gopay, ada, "approve")

    def test_a_verified_user_cannot_be_decided_again(self, gopay: InMemoryGoPay, ada: User) -> None:
        submit(gopay, ada)
        decide(gopay, ada, "approve")
        with pytest.raises(InvalidState):
            decide(gopay, ada, "reject")
        with pytest.raises(InvalidState, match="verified"):
            submit(gopay, ada)

    def test_a_decision_is_approve_or_reject(self, gopay: InMemoryGoPay, ada: User) -> None:
        submit(gopay, ada)
        with pytest.raises(ValidationFailed):
            decide(gopay, ada, "maybe")
        assert gopay.user(ada.id).kyc_status == "pending"
