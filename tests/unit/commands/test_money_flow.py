"""The money-flow mechanism's held path: reserve now, book the planned entry or give it back later.

No flow of GoPay holds funds yet (payouts and cash-outs will), so this story declares one of
its own: a payout-like command whose money is held first and paid to GoPay's payout
clearing account when the order completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest

from gopay.aggregates.errors import AccountFrozen, CurrencyMismatch, InsufficientFunds, InvalidState
from gopay.aggregates.fees import FeePayer, FeeRule
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands import money_flow as flows
from gopay.commands.bus import Context
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.recipients import wallet_of
from gopay.commands.staff import SetFrozen
from gopay.group_commit import UnitOfWork
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

CLEARING = SystemAccount.PAYOUT_CLEARING.account_id("USD")
FEES = SystemAccount.FEES.account_id("USD")


@dataclass(frozen=True, kw_only=True)
class SendToBank(MoneyCommand):
    """Pay `money` out of a wallet to the owner's bank (a stand-in for the payouts to come)."""

    operation = "story-payout"
    wallet_id: UUID
    money: Money


@money_flow(SendToBank)
def send_to_bank(command: SendToBank, unit: UnitOfWork, context: Context) -> MoneyFlow:
    return MoneyFlow(TransactionType.PAYOUT, command.money,
                     payer=unit.get(command.wallet_id, Wallet),
                     payee=SystemAccount.PAYOUT_CLEARING, reference="to the bank",
                     deferred=True)


@dataclass(frozen=True, kw_only=True)
class PayOnDelivery(MoneyCommand):
    """Pay a merchant's wallet once the goods arrive: held now, credited when the order completes."""

    operation = "story-pay-on-delivery"
    wallet_id: UUID
    merchant: str
    money: Money


@money_flow(PayOnDelivery)
def pay_on_delivery(command: PayOnDelivery, unit: UnitOfWork, context: Context) -> MoneyFlow:
    return MoneyFlow(TransactionType.QR_PAYMENT, command.money,
                     payer=unit.get(command.wallet_id, Wallet),
                     payee=wallet_of(unit, command.merchant), reference="order 66",
                     deferred=True)


def payout_fee(**rule: Any) -> InMemoryGoPay:
    return InMemoryGoPay(settings(fees={TransactionType.PAYOUT: FeeRule(**rule)}))


@pytest.fixture
def gopay() -> InMemoryGoPay:
    """Payouts cost 50."""
    return payout_fee(fixed=50)


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 20_000)
    return ada


def send(gopay: InMemoryGoPay, user: User, amount: int, key: str | None = None) -> PaymentOrder:
    return gopay.run(SendToBank(caller_id=user.id, wallet_id=wallet_id(user),
                                money=Money(amount, "USD"), idempotency_key=key,
                                fingerprint=str(amount)))


def complete(gopay: InMemoryGoPay, order: PaymentOrder) -> None:
    """What the PSP's confirmation will do: a batch of its own, later."""
    gopay.in_batch(lambda unit: flows.complete(unit.get(order.id, PaymentOrder), unit))


def cancel(gopay: InMemoryGoPay, order: PaymentOrder) -> None:
    gopay.in_batch(lambda unit: flows.cancel(unit.get(order.id, PaymentOrder), unit,
                                             reason="psp_declined", detail="account closed"))


def captures(gopay: InMemoryGoPay, user: User) -> list[tuple[str, int, str]]:
    return [(e.entry_type, e.amount, e.counterparty)
            for e in gopay.events(wallet_id(user))
            if isinstance(e, Wallet.Captured)]


class TestHolding:
    def test_the_money_and_its_fee_are_held_not_paid(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The balance stays; what is available drops by the amount and the fee."""
        order = send(gopay, ada, 6_000)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held, wallet.available) == (20_000, 6_050, 13_950)
        assert (order.status, order.postings) == (OrderStatus.PENDING, ())
        assert dict(wallet.holds)[str(order.id)].amount == 6_050

    def test_the_entry_is_planned_balanced_and_not_yet_booked(self, gopay: InMemoryGoPay,
                                                              ada: User) -> None:
        order = send(gopay, ada, 6_000)
        assert order.planned_postings == (Posting(wallet_id(ada), -6_050, "USD"),
                                          Posting(CLEARING, 6_000, "USD"),
                                          Posting(FEES, 50, "USD"))
        assert "Succeeded" not in gopay.event_types(order.id)
        assert CLEARING not in gopay.check_books().accounts

    def test_held_money_cannot_be_spent_again(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.register("grace@example.com")
        send(gopay, ada, 6_000)
        send(gopay, ada, 6_000)
        with pytest.raises(InsufficientFunds):
            gopay.transfer(ada, "grace@example.com", 8_000)
        gopay.transfer(ada, "grace@example.com", 7_900)
        assert gopay.wallet(ada).available == 0

    def test_holding_is_refused_like_paying(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Too little money available, a frozen wallet: nothing more is held."""
        send(gopay, ada, 9_000)
        send(gopay, ada, 9_000)
        with pytest.raises(InsufficientFunds):
            send(gopay, ada, 1_900)  # 1,950 with its fee, and 1,900 is available
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="x"))
        with pytest.raises(AccountFrozen):
            send(gopay, ada, 100)
        assert gopay.wallet(ada).held == 18_100

    def test_a_keyed_refusal_is_recorded_and_repeated(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The same mechanism as paying at once: a failed order answers every retry of the key."""
        send(gopay, ada, 9_000)
        send(gopay, ada, 9_000)
        with pytest.raises(InsufficientFunds):
            send(gopay, ada, 5_000, key="k")
        order = gopay.order(order_id_for(ada.id, "story-payout", "k"))
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "insufficient_funds")
        gopay.fund(ada, 10_000)
        with pytest.raises(InsufficientFunds):
            send(gopay, ada, 5_000, key="k")
        assert gopay.wallet(ada).held == 18_100

    def test_a_later_failure_is_not_repeated_as_a_refusal(self, gopay: InMemoryGoPay,
                                                          ada: User) -> None:
        """An order held, then failed by the PSP for `insufficient_funds` (the payer's card had
        none): its key answers the failed order, not a 422 as if the wallet had too little."""
        order = send(gopay, ada, 5_000, key="k")
        gopay.in_batch(lambda unit: flows.cancel(unit.get(order.id, PaymentOrder), unit,
                                                 reason="insufficient_funds"))
        again = send(gopay, ada, 5_000, key="k")
        assert (again.id, again.status, again.failure_reason) == (
            order.id, OrderStatus.FAILED, "insufficient_funds")
        assert gopay.wallet(ada).held == 0

    def test_a_repeated_key_holds_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        first = send(gopay, ada, 1_000, key="k")
        again = send(gopay, ada, 1_000, key="k")
        assert again.id == first.id and gopay.wallet(ada).held == 1_050


class TestCompleting:
    def test_completing_books_the_planned_entry(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The order succeeds with exactly the entry planned when the money was held."""
        order = send(gopay, ada, 6_000)
        complete(gopay, order)
        done = gopay.order(order.id)
        assert (done.status, done.postings) == (OrderStatus.SUCCEEDED, order.planned_postings)
        books = gopay.check_books()
        assert (books.accounts[CLEARING], books.accounts[FEES]) == (6_000, 50)

    def test_the_hold_is_captured_line_by_line(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The wallet shows the payout and its fee as two captures, and nothing stays held."""
        order = send(gopay, ada, 6_000)
        complete(gopay, order)
        assert captures(gopay, ada) == [("payout", 6_000, "payout_clearing"), ("fee", 50, "fees")]
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held, dict(wallet.holds)) == (13_950, 0, {})

    def test_the_entry_is_booked_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Completing again is refused and changes nothing."""
        order = send(gopay, ada, 6_000)
        complete(gopay, order)
        head = gopay.head()
        with pytest.raises(InvalidState):
            complete(gopay, order)
        assert gopay.head() == head
        assert gopay.event_types(order.id).count("Succeeded") == 1
        assert gopay.balance(ada) == 13_950

    def test_one_of_two_holds_completes_alone(self, gopay: InMemoryGoPay, ada: User) -> None:
        first, second = send(gopay, ada, 1_000), send(gopay, ada, 2_000)
        complete(gopay, second)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held) == (20_000 - 2_050, 1_050)
        assert list(wallet.holds) == [str(first.id)]
        gopay.check_books()

    def test_a_payee_paid_fee_is_kept_out_of_the_payout(self) -> None:
        """The wallet pays the amount alone; payout clearing gets it less GoPay's fee."""
        gopay = payout_fee(fixed=50, paid_by=FeePayer.PAYEE)
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 20_000)
        order = send(gopay, ada, 6_000)
        assert gopay.wallet(ada).held == 6_000
        complete(gopay, order)
        assert captures(gopay, ada) == [("payout", 6_000, "payout_clearing")]
        assert (gopay.balance(ada), gopay.wallet(ada).held) == (14_000, 0)
        books = gopay.check_books()
        assert (books.accounts[CLEARING], books.accounts[FEES]) == (5_950, 50)


class TestHoldingForAWallet:
    """The same mechanism when the payee is a wallet: it is credited only when the order completes."""

    @pytest.mark.parametrize("paid_by", list(FeePayer))
    def test_the_merchant_is_paid_on_completion(self, paid_by: FeePayer) -> None:
        """Whoever pays the fee, each wallet's lines add up to its leg of the planned entry."""
        gopay = InMemoryGoPay(settings(fees={TransactionType.QR_PAYMENT: FeeRule(
            fixed=30, paid_by=paid_by)}))
        ada, shop = gopay.register("ada@example.com"), gopay.register("shop@example.com")
        gopay.fund(ada, 5_000)
        order = gopay.run(PayOnDelivery(caller_id=ada.id, wallet_id=wallet_id(ada),
                                        merchant="shop@example.com", money=Money(1_000, "USD")))
        assert gopay.balance(shop) == 0
        complete(gopay, order)
        payer_pays, shop_keeps = (1_030, 1_000) if paid_by == FeePayer.PAYER else (1_000, 970)
        assert (gopay.balance(ada), gopay.balance(shop)) == (5_000 - payer_pays, shop_keeps)
        assert gopay.wallet(ada).held == 0
        books = gopay.check_books()
        assert books.accounts[FEES] == 30

    def test_a_wallet_of_another_currency_is_refused_before_anything_is_held(
            self, gopay: InMemoryGoPay, ada: User) -> None:
        """Found when asked, not when the order completes and the money could not arrive."""
        gopay.register("boutique@example.com", currency="EUR")
        with pytest.raises(CurrencyMismatch, match="holds EUR"):
            gopay.run(PayOnDelivery(caller_id=ada.id, wallet_id=wallet_id(ada),
                                    merchant="boutique@example.com", money=Money(1_000, "USD")))
        assert gopay.wallet(ada).held == 0


class TestCancelling:
    def test_cancelling_gives_the_money_back(self, gopay: InMemoryGoPay, ada: User) -> None:
        """All of the hold returns to what is available; no entry is booked; the order says why."""
        order = send(gopay, ada, 6_000)
        cancel(gopay, order)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held, wallet.available) == (20_000, 0, 20_000)
        failed = gopay.order(order.id)
        assert (failed.status, failed.failure_reason, failed.failure_detail, failed.postings) == (
            OrderStatus.FAILED, "psp_declined", "account closed", ())
        assert CLEARING not in gopay.check_books().accounts

    def test_cancelling_gives_the_day_s_allowance_back(self) -> None:
        """Money never paid out does not count as spent: the daily limit is free again."""
        gopay = payout_fee()  # free, so that the amounts are the limits'
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 50_000)
        orders = [send(gopay, ada, 10_000) for _ in range(3)]
        with pytest.raises(LimitExceeded):
            send(gopay, ada, 1)
        cancel(gopay, orders[1])
        assert gopay.wallet(ada).spent_today == 20_000
        send(gopay, ada, 10_000)

    def test_the_fee_counts_towards_no_limit(self) -> None:
        """As for payments made at once, a fee is not spending: a payout of the whole daily
        allowance goes through with its fee on top, and the day counts the payout alone."""
        gopay = payout_fee(fixed=50)
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 50_000)
        limits = gopay.context.limits["unverified"]
        order = send(gopay, ada, limits.per_payment)
        wallet = gopay.wallet(ada)
        assert (order.status, wallet.held) == (OrderStatus.PENDING, limits.per_payment + 50)
        assert wallet.spent_today == limits.per_payment
        cancel(gopay, order)
        assert gopay.wallet(ada).spent_today == 0

    def test_what_was_cancelled_cannot_complete(self, gopay: InMemoryGoPay, ada: User) -> None:
        order = send(gopay, ada, 6_000)
        cancel(gopay, order)
        with pytest.raises(InvalidState):
            complete(gopay, order)
        with pytest.raises(InvalidState):
            cancel(gopay, order)
        assert gopay.balance(ada) == 20_000

    def test_what_was_completed_cannot_be_cancelled(self, gopay: InMemoryGoPay, ada: User) -> None:
        order = send(gopay, ada, 6_000)
        complete(gopay, order)
        with pytest.raises(InvalidState):
            cancel(gopay, order)
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        gopay.check_books()
