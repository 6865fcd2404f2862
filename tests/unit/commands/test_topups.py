"""Top-ups: pending until the PSP has charged, then credited once, with every fee booked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gopay.aggregates.errors import CurrencyMismatch, IdempotencyConflict, NotFound, ValidationFailed
from gopay.aggregates.fees import FeePayer, FeeRule
from gopay.aggregates.instruments import crypto, digital_wallet
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.payment_methods import RemovePaymentMethod
from gopay.commands.staff import SetFrozen
from gopay.psp.port import OperationKind, OperationStatus
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

PSP_CLEARING = SystemAccount.PSP_CLEARING.account_id("USD")
FEES = SystemAccount.FEES.account_id("USD")


def top_up_fee(**rule: Any) -> InMemoryGoPay:
    return InMemoryGoPay(settings(fees={TransactionType.TOPUP: FeeRule(**rule)}))




def lines(gopay: InMemoryGoPay, user: User) -> list[tuple[str, str, int, int]]:
    """The wallet's history: (event, entry type, amount, balance after)."""
    return [(type(e).__name__, e.entry_type, e.amount, e.balance_after)
            for e in gopay.events(wallet_id(user))
            if isinstance(e, Wallet.Debited | Wallet.Credited | Wallet.Captured)]


class TestRequesting:
    def test_a_top_up_waits_for_the_psp_and_moves_nothing(self, gopay: InMemoryGoPay, ada: User,
                                                          visa: PaymentMethod) -> None:
        """Pending, its entry planned, the wallet untouched, and a task to charge the card."""
        order = gopay.top_up(ada, visa, 2_500)
        assert (order.status, order.order_type, order.payee_wallet_id, order.payer_wallet_id) == (
            OrderStatus.PENDING, TransactionType.TOPUP, wallet_id(ada), None)
        assert order.planned_postings == (Posting(PSP_CLEARING, -2_500, "USD"),
                                          Posting(wallet_id(ada), 2_500, "USD"))
        assert gopay.balance(ada) == 0 and lines(gopay, ada) == []
        [task] = gopay.tasks()
        assert (task.id, task.kind, task.operation, task.order_id) == (
            PspTask.id_for_call(order.id), TaskKind.CALL, OperationKind.CHARGE, order.id)
        assert dict(task.payload) == {"payment_method_id": str(visa.id), "owner_id": str(ada.id)}
        # The request calls the PSP itself; the job steps in only if it has not after a while.
        assert datetime.fromisoformat(task.due_at) == gopay.clock() + timedelta(seconds=15)
        assert PSP_CLEARING not in gopay.check_books().accounts

    def test_money_comes_from_a_card_a_bank_account_or_a_digital_wallet(
            self, gopay: InMemoryGoPay, ada: User) -> None:
        for method in (gopay.add_bank_account(ada),
                       gopay.add_method(ada, digital_wallet("paypal", "ada@example.com"))):
            assert gopay.top_up(ada, method, 100).status == OrderStatus.PENDING
        address = gopay.add_method(ada, crypto("btc", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"))
        head = gopay.head()
        with pytest.raises(ValidationFailed, match="card, a bank account or a digital wallet"):
            gopay.top_up(ada, address, 100)
        assert gopay.head() == head

    def test_only_the_caller_s_own_saved_methods_pay(self, gopay: InMemoryGoPay, ada: User,
                                                    visa: PaymentMethod) -> None:
        """Someone else's method, or one removed, does not exist: nothing is saved."""
        grace = gopay.register("grace@example.com")
        graces = gopay.add_card(grace)
        gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=visa.id))
        head = gopay.head()
        for method in (graces, visa):
            with pytest.raises(NotFound):
                gopay.top_up(ada, method, 100)
        assert gopay.head() == head

    def test_money_of_another_currency_is_refused_before_the_psp_is_asked(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod) -> None:
        """Charged first, a credit the wallet cannot take would leave the money at the PSP."""
        head = gopay.head()
        for key in (None, "eur"):
            with pytest.raises(CurrencyMismatch):
                gopay.top_up(ada, visa, 100, currency="EUR", key=key)
        assert gopay.head() == head and gopay.tasks() == []

    def test_a_wallet_may_not_be_topped_up_past_its_balance_limit(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod) -> None:
        """Checked when asked (unverified: 1,000.00), and a keyed refusal is kept and repeated."""
        gopay.fund(ada, 95_000)
        with pytest.raises(LimitExceeded):
            gopay.top_up(ada, visa, 5_001, key="too-much")
        with pytest.raises(LimitExceeded):
            gopay.top_up(ada, visa, 5_001, key="too-much")
        assert gopay.tasks() == []
        assert gopay.top_up(ada, visa, 5_000).status == OrderStatus.PENDING

    def test_the_same_key_finds_the_same_top_up(self, gopay: InMemoryGoPay, ada: User,
                                               visa: PaymentMethod) -> None:
        """The pay button clicked twice: one order, one task, one charge to come."""
        first = gopay.top_up(ada, visa, 2_500, key="pay-button")
        head = gopay.head()
        assert gopay.top_up(ada, visa, 2_500, key="pay-button").id == first.id
        assert gopay.head() == head and len(gopay.tasks()) == 1
        with pytest.raises(IdempotencyConflict):
            gopay.top_up(ada, visa, 2_600, key="pay-button")


class TestSucceeding:
    @pytest.mark.parametrize("paid_by", list(FeePayer))
    def test_the_wallet_is_credited_with_the_fees_booked(self, paid_by: FeePayer) -> None:
        """The credit, then GoPay's fee as a line; the PSP's fee from psp_clearing to fees.

        The card is charged the amount alone, whoever the schedule says pays the fee: the
        wallet pays it out of what arrives.
        """
        gopay = top_up_fee(fixed=30, paid_by=paid_by)
        ada = gopay.register("ada@example.com")
        order = gopay.top_up(ada, gopay.add_card(ada), 10_000)
        gopay.settle(order, fee=25)
        assert lines(gopay, ada) == [("Credited", "topup", 10_000, 10_000),
                                     ("Debited", "fee", 30, 9_970)]
        settled = gopay.order(order.id)
        assert (settled.status, settled.psp_reference) == (OrderStatus.SUCCEEDED, f"psp-{order.id}")
        # The PSP holds 10,000 less its 25 for GoPay; GoPay earned 30 and paid 25.
        assert set(settled.postings) == {Posting(PSP_CLEARING, -9_975, "USD"),
                                         Posting(wallet_id(ada), 9_970, "USD"),
                                         Posting(FEES, 5, "USD")}
        books = gopay.check_books()
        assert (books.of(SystemAccount.PSP_CLEARING), books.of(SystemAccount.FEES)) == (-9_975, 5)

    def test_a_top_up_the_fees_take_whole_books_what_happened(self) -> None:
        """30 in, GoPay's fee of 30, the PSP's of 30 too: the wallet gets nothing, and the
        books say so (the legs as they are, not the plan, which had no PSP fee in it)."""
        gopay = top_up_fee(fixed=30)
        ada = gopay.register("ada@example.com")
        order = gopay.settle(gopay.top_up(ada, gopay.add_card(ada), 30), fee=30)
        assert order.status == OrderStatus.SUCCEEDED
        books = gopay.check_books()
        assert (books.of(SystemAccount.PSP_CLEARING), books.of(SystemAccount.FEES)) == (0, 0)
        assert gopay.wallet(ada).balance == 0

    def test_the_call_task_is_done_once_the_order_is_settled(self, gopay: InMemoryGoPay,
                                                             ada: User, visa: PaymentMethod) -> None:
        order = gopay.settle(gopay.top_up(ada, visa, 1_000))
        task = gopay.task(PspTask.id_for_call(order.id))
        assert (task.done, task.outcome) == (True, "succeeded")
        assert gopay.due_tasks() == []

    def test_the_same_news_twice_credits_once(self, gopay: InMemoryGoPay, ada: User,
                                              visa: PaymentMethod) -> None:
        """The PSP's answer, then a status query, then its webhook: one credit."""
        order = gopay.top_up(ada, visa, 1_000)
        for _ in range(3):
            assert gopay.settle(order, fee=10).status == OrderStatus.SUCCEEDED
        assert lines(gopay, ada) == [("Credited", "topup", 1_000, 1_000)]
        assert gopay.event_types(order.id).count("Succeeded") == 1
        assert gopay.check_books().of(SystemAccount.FEES) == -10

    def test_a_failure_after_the_success_changes_nothing(self, gopay: InMemoryGoPay, ada: User,
                                                         visa: PaymentMethod) -> None:
        order = gopay.settle(gopay.top_up(ada, visa, 1_000))
        head = gopay.head()
        again = gopay.settle(order, OperationStatus.FAILED, reason="card_declined")
        assert (again.status, again.failure_reason) == (OrderStatus.SUCCEEDED, None)
        assert gopay.head() == head and gopay.balance(ada) == 1_000

    def test_a_frozen_wallet_still_receives_its_top_up(self, gopay: InMemoryGoPay, ada: User,
                                                       visa: PaymentMethod) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="review"))
        gopay.settle(order)
        assert gopay.balance(ada) == 1_000
        gopay.check_books()

    def test_money_that_arrived_is_credited_past_the_balance_limit(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod) -> None:
        """The limit is checked when asked; once the card is charged the money is the wallet's."""
        order = gopay.top_up(ada, visa, 10_000)
        gopay.fund(ada, 95_000)
        gopay.settle(order)
        assert gopay.balance(ada) == 105_000


class TestFailing:
    def test_a_declined_top_up_fails_and_moves_nothing(self, gopay: InMemoryGoPay, ada: User,
                                                       visa: PaymentMethod) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        failed = gopay.settle(order, OperationStatus.FAILED, reason="card_declined")
        assert (failed.status, failed.failure_reason, failed.postings) == (
            OrderStatus.FAILED, "card_declined", ())
        assert failed.psp_reference == f"psp-{order.id}"
        assert lines(gopay, ada) == [] and gopay.balance(ada) == 0
        assert gopay.task(PspTask.id_for_call(order.id)).outcome == "failed"
        assert PSP_CLEARING not in gopay.check_books().accounts

    def test_a_failure_without_a_reason_is_the_psp_s(self, gopay: InMemoryGoPay, ada: User,
                                                     visa: PaymentMethod) -> None:
        failed = gopay.settle(gopay.top_up(ada, visa, 1_000), OperationStatus.FAILED)
        assert failed.failure_reason == "psp_failed"

    def test_the_key_of_a_declined_top_up_answers_the_order_again(
            self, gopay: InMemoryGoPay, ada: User) -> None:
        """The PSP's reason may be a word GoPay's own refusals use: the repeat still answers
        the order as the first request did, not a refusal it never gave."""
        card = gopay.add_card(ada, "4000000000009995")
        order = gopay.top_up(ada, card, 1_000, key="pay-button")
        gopay.settle(order, OperationStatus.FAILED, reason="insufficient_funds")
        again = gopay.top_up(ada, card, 1_000, key="pay-button")
        assert (again.id, again.status, again.failure_reason) == (
            order.id, OrderStatus.FAILED, "insufficient_funds")

    def test_a_success_after_the_failure_changes_nothing(self, gopay: InMemoryGoPay, ada: User,
                                                         visa: PaymentMethod) -> None:
        order = gopay.settle(gopay.top_up(ada, visa, 1_000), OperationStatus.FAILED)
        head = gopay.head()
        assert gopay.settle(order).status == OrderStatus.FAILED
        assert gopay.head() == head and gopay.balance(ada) == 0


def test_an_order_that_is_no_top_up_or_payout_is_not_settled_with_the_psp(
        gopay: InMemoryGoPay, ada: User) -> None:
    """A transfer's id in a PSP message is refused, and the transfer stays as it was."""
    gopay.fund(ada, 1_000)
    gopay.register("grace@example.com")
    transfer: PaymentOrder = gopay.transfer(ada, "grace@example.com", 100)
    with pytest.raises(ValidationFailed):
        gopay.settle(transfer, OperationStatus.FAILED)
    assert gopay.order(transfer.id).status == OrderStatus.SUCCEEDED
