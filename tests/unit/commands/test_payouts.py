"""Payouts: held at once, taken when the PSP has paid, given back when it has not."""

from __future__ import annotations

import pytest

from gopay.aggregates.errors import AccountFrozen, CurrencyMismatch, InsufficientFunds, ValidationFailed
from gopay.aggregates.fees import FeeRule
from gopay.aggregates.instruments import digital_wallet
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.staff import SetFrozen
from gopay.psp.port import OperationKind, OperationStatus
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

PAYOUT_CLEARING = SystemAccount.PAYOUT_CLEARING.account_id("USD")
FEES = SystemAccount.FEES.account_id("USD")


@pytest.fixture
def gopay() -> InMemoryGoPay:
    """Payouts cost 50, on top of the amount."""
    return InMemoryGoPay(settings(fees={TransactionType.PAYOUT: FeeRule(fixed=50)}))


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 20_000)
    return ada


@pytest.fixture
def bank(gopay: InMemoryGoPay, ada: User) -> PaymentMethod:
    return gopay.add_bank_account(ada)


def money(gopay: InMemoryGoPay, user: User) -> tuple[int, int, int]:
    """(balance, held, available) of the user's wallet."""
    wallet = gopay.wallet(user)
    return wallet.balance, wallet.held, wallet.available


def freeze(gopay: InMemoryGoPay, user: User) -> None:
    gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=user.id, frozen=True, reason="review"))


class TestRequesting:
    def test_the_money_and_its_fee_are_held_at_once(self, gopay: InMemoryGoPay, ada: User,
                                                    bank: PaymentMethod) -> None:
        order = gopay.pay_out(ada, bank, 6_000)
        assert money(gopay, ada) == (20_000, 6_050, 13_950)
        assert (order.status, order.payer_wallet_id, order.postings) == (
            OrderStatus.PENDING, wallet_id(ada), ())
        assert order.planned_postings == (Posting(wallet_id(ada), -6_050, "USD"),
                                          Posting(PAYOUT_CLEARING, 6_000, "USD"),
                                          Posting(FEES, 50, "USD"))
        [task] = gopay.tasks()
        assert (task.id, task.operation) == (PspTask.id_for_call(order.id), OperationKind.PAYOUT)
        gopay.check_books()

    def test_money_goes_to_a_bank_account_or_a_card(self, gopay: InMemoryGoPay, ada: User) -> None:
        assert gopay.pay_out(ada, gopay.add_card(ada), 100).status == OrderStatus.PENDING
        paypal = gopay.add_method(ada, digital_wallet("paypal", "ada@example.com"))
        with pytest.raises(ValidationFailed, match="bank account or a card"):
            gopay.pay_out(ada, paypal, 100)

    def test_what_is_not_available_is_not_paid_out(self, gopay: InMemoryGoPay, ada: User,
                                                   bank: PaymentMethod) -> None:
        """Held money is not available; a keyed refusal is kept and repeated, holding nothing."""
        gopay.pay_out(ada, bank, 9_000)
        gopay.pay_out(ada, bank, 9_000)
        head = gopay.head()
        for _ in range(2):
            with pytest.raises(InsufficientFunds):
                gopay.pay_out(ada, bank, 1_900, key="too-much")  # 1,950 with its fee
        # The refusal is recorded once, as a failed order with no task to call the PSP.
        recorded = [type(e).__qualname__ for e in gopay.all_events()][head:]
        assert recorded == ["PaymentOrder.Created", "PaymentOrder.Failed"]
        assert len(gopay.tasks()) == 2
        assert money(gopay, ada) == (20_000, 18_100, 1_900)
        gopay.pay_out(ada, bank, 1_850)
        assert money(gopay, ada) == (20_000, 20_000, 0)

    def test_a_frozen_wallet_pays_nothing_out(self, gopay: InMemoryGoPay, ada: User,
                                              bank: PaymentMethod) -> None:
        freeze(gopay, ada)
        with pytest.raises(AccountFrozen):
            gopay.pay_out(ada, bank, 100)
        assert money(gopay, ada) == (20_000, 0, 20_000) and gopay.tasks() == []

    def test_money_of_another_currency_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                  bank: PaymentMethod) -> None:
        with pytest.raises(CurrencyMismatch):
            gopay.pay_out(ada, bank, 100, currency="EUR")
        assert gopay.tasks() == []

    def test_a_payout_counts_towards_the_day_s_limit(self, gopay: InMemoryGoPay, ada: User,
                                                     bank: PaymentMethod) -> None:
        """Unverified: 300.00 a day; held payouts count, their fees do not."""
        gopay.fund(ada, 20_000)
        for _ in range(3):
            gopay.pay_out(ada, bank, 10_000)
        with pytest.raises(LimitExceeded):
            gopay.pay_out(ada, bank, 1)


class TestSucceeding:
    def test_the_psp_s_success_takes_the_held_money(self, gopay: InMemoryGoPay, ada: User,
                                                    bank: PaymentMethod) -> None:
        """The amount and the fee leave as two lines; the PSP's fee is GoPay's cost."""
        order = gopay.pay_out(ada, bank, 6_000)
        settled = gopay.settle(order, fee=20)
        assert money(gopay, ada) == (13_950, 0, 13_950)
        assert [(e.entry_type, e.amount, e.balance_after, e.counterparty)
                for e in gopay.events(wallet_id(ada)) if isinstance(e, Wallet.Captured)] == [
            ("payout", 6_000, 14_000, "payout_clearing"), ("fee", 50, 13_950, "fees")]
        assert set(settled.postings) == {Posting(wallet_id(ada), -6_050, "USD"),
                                         Posting(PAYOUT_CLEARING, 6_020, "USD"),
                                         Posting(FEES, 30, "USD")}
        books = gopay.check_books()
        assert (books.of(SystemAccount.PAYOUT_CLEARING), books.of(SystemAccount.FEES)) == (6_020, 30)

    def test_the_same_success_twice_takes_the_money_once(self, gopay: InMemoryGoPay, ada: User,
                                                         bank: PaymentMethod) -> None:
        order = gopay.pay_out(ada, bank, 6_000)
        gopay.settle(order)
        head = gopay.head()
        gopay.settle(order)
        assert gopay.head() == head and money(gopay, ada) == (13_950, 0, 13_950)

    def test_a_failure_after_the_success_gives_nothing_back(self, gopay: InMemoryGoPay, ada: User,
                                                            bank: PaymentMethod) -> None:
        order = gopay.settle(gopay.pay_out(ada, bank, 6_000))
        assert gopay.settle(order, OperationStatus.FAILED).status == OrderStatus.SUCCEEDED
        assert money(gopay, ada) == (13_950, 0, 13_950)
        assert "Released" not in gopay.event_types(wallet_id(ada))

    def test_a_wallet_frozen_meanwhile_still_pays_what_the_psp_paid(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod) -> None:
        """The money has left with the PSP: freezing the wallet cannot stop it now."""
        order = gopay.pay_out(ada, bank, 6_000)
        freeze(gopay, ada)
        gopay.settle(order)
        assert money(gopay, ada) == (13_950, 0, 13_950)
        gopay.check_books()


class TestFailing:
    def test_the_psp_s_failure_gives_the_held_money_back(self, gopay: InMemoryGoPay, ada: User,
                                                         bank: PaymentMethod) -> None:
        order = gopay.pay_out(ada, bank, 6_000)
        failed = gopay.settle(order, OperationStatus.FAILED, reason="account_closed")
        assert (failed.status, failed.failure_reason, failed.postings) == (
            OrderStatus.FAILED, "account_closed", ())
        assert money(gopay, ada) == (20_000, 0, 20_000)
        assert gopay.event_types(wallet_id(ada))[-1] == "Released"
        assert PAYOUT_CLEARING not in gopay.check_books().accounts

    def test_a_failed_payout_gives_the_day_s_limit_back(self, gopay: InMemoryGoPay, ada: User,
                                                        bank: PaymentMethod) -> None:
        gopay.fund(ada, 20_000)
        orders = [gopay.pay_out(ada, bank, 10_000) for _ in range(3)]
        gopay.settle(orders[0], OperationStatus.FAILED)
        assert gopay.wallet(ada).spent_today == 20_000
        gopay.pay_out(ada, bank, 10_000)
        with pytest.raises(LimitExceeded):
            gopay.pay_out(ada, bank, 1)

    def test_a_success_after_the_failure_takes_nothing(self, gopay: InMemoryGoPay, ada: User,
                                                       bank: PaymentMethod) -> None:
        order = gopay.settle(gopay.pay_out(ada, bank, 6_000), OperationStatus.FAILED)
        head = gopay.head()
        assert gopay.settle(order).status == OrderStatus.FAILED
        assert gopay.head() == head and money(gopay, ada) == (20_000, 0, 20_000)

    def test_the_released_money_can_be_spent_again(self, gopay: InMemoryGoPay, ada: User,
                                                   bank: PaymentMethod) -> None:
        first = gopay.pay_out(ada, bank, 9_950)
        gopay.pay_out(ada, bank, 9_950)
        gopay.settle(first, OperationStatus.FAILED)
        gopay.register("grace@example.com")
        gopay.transfer(ada, "grace@example.com", 10_000)
        assert money(gopay, ada) == (10_000, 10_000, 0)
