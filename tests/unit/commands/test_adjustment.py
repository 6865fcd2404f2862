"""Manual ledger entries: staff credit or debit a wallet against GoPay's adjustments account."""

from __future__ import annotations

import pytest

from gopay.aggregates.errors import IdempotencyConflict, InsufficientFunds, ValidationFailed
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.adjustment import Adjust, Direction
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id

ADJUSTMENTS = SystemAccount.ADJUSTMENTS.account_id("USD")


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def adjust(gopay: InMemoryGoPay, user: User, direction: str, amount: int, *,
           reason: str = "goodwill credit", key: str | None = None,
           fingerprint: str = "") -> PaymentOrder:
    return gopay.run(Adjust(caller_id=gopay.admin.id, wallet_id=wallet_id(user),
                            direction=Direction(direction), money=Money(amount, "USD"),
                            reason=reason, idempotency_key=key, fingerprint=fingerprint))


class TestCorrections:
    def test_a_credit_comes_from_the_adjustments_account(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The entry takes the money from GoPay's adjustments account; the reason is the reference."""
        order = adjust(gopay, ada, "credit", 2_500)
        assert (order.status, order.order_type, order.note, order.initiated_by) == (
            OrderStatus.SUCCEEDED, TransactionType.ADJUSTMENT, "goodwill credit", gopay.admin.id)
        assert order.postings == (Posting(ADJUSTMENTS, -2_500, "USD"),
                                  Posting(wallet_id(ada), 2_500, "USD"))
        credited = gopay.events(wallet_id(ada))[-1]
        assert isinstance(credited, Wallet.Credited)
        assert (credited.counterparty, credited.reference) == ("adjustments", "goodwill credit")

    def test_a_debit_goes_to_the_adjustments_account(self, gopay: InMemoryGoPay, ada: User) -> None:
        adjust(gopay, ada, "credit", 2_500)
        order = adjust(gopay, ada, "debit", 1_000, reason="duplicate credit reversed")
        assert order.postings == (Posting(wallet_id(ada), -1_000, "USD"),
                                  Posting(ADJUSTMENTS, 1_000, "USD"))
        assert gopay.balance(ada) == 1_500
        assert gopay.check_books().accounts[ADJUSTMENTS] == -1_500

    def test_a_debit_never_takes_a_wallet_below_zero(self, gopay: InMemoryGoPay, ada: User) -> None:
        adjust(gopay, ada, "credit", 500)
        with pytest.raises(InsufficientFunds):
            adjust(gopay, ada, "debit", 501)
        assert gopay.balance(ada) == 500

    def test_corrections_are_not_bound_by_the_tier_s_limits(self, gopay: InMemoryGoPay,
                                                            ada: User) -> None:
        """Staff may credit and debit past an unverified wallet's limits; nothing counts as spent."""
        adjust(gopay, ada, "credit", 150_000)
        adjust(gopay, ada, "debit", 40_000)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.spent_today) == (110_000, 0)


class TestTheReason:
    @pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
    def test_a_correction_without_a_reason_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                      reason: str) -> None:
        with pytest.raises(ValidationFailed, match="needs a reason"):
            adjust(gopay, ada, "credit", 100, reason=reason)
        assert gopay.balance(ada) == 0

    def test_a_blank_reason_is_refused_before_a_repeat_is_looked_up(self, gopay: InMemoryGoPay,
                                                                    ada: User) -> None:
        """Even a key that already made an order cannot be replayed without a reason."""
        first = adjust(gopay, ada, "credit", 100, key="k", fingerprint="f")
        head = gopay.head()
        with pytest.raises(ValidationFailed, match="needs a reason"):
            adjust(gopay, ada, "credit", 100, reason=" ", key="k", fingerprint="f")
        assert gopay.head() == head and gopay.order(first.id).status == OrderStatus.SUCCEEDED


class TestRepeatedCorrections:
    def test_a_repeated_key_books_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        first = adjust(gopay, ada, "credit", 100, key="k", fingerprint="f")
        again = adjust(gopay, ada, "credit", 100, key="k", fingerprint="f")
        assert again.id == first.id and gopay.balance(ada) == 100

    def test_the_same_key_for_another_correction_is_a_conflict(self, gopay: InMemoryGoPay,
                                                               ada: User) -> None:
        adjust(gopay, ada, "credit", 100, key="k", fingerprint="f")
        with pytest.raises(IdempotencyConflict):
            adjust(gopay, ada, "debit", 100, key="k", fingerprint="g")

    def test_a_refused_keyed_debit_is_repeated(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Like any money flow: the refusal is recorded and the key keeps answering with it."""
        with pytest.raises(InsufficientFunds):
            adjust(gopay, ada, "debit", 100, key="k", fingerprint="f")
        adjust(gopay, ada, "credit", 1_000)
        with pytest.raises(InsufficientFunds):
            adjust(gopay, ada, "debit", 100, key="k", fingerprint="f")
        assert gopay.balance(ada) == 1_000
        gopay.check_books()
