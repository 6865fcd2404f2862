"""Disputes: the payer claims a payment back, the payee's money is held, staff decide once."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from gopay.aggregates.dispute import Dispute, DisputeKind, DisputeStatus, Outcome
from gopay.aggregates.errors import InvalidState, NotFound, ValidationFailed
from gopay.aggregates.ledger import Posting, SystemAccount
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.refunds import DisputeTooLarge, PaymentRefunds, RefundTooLarge
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.clock import utc_now
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.bill_payments import PayBill
from gopay.commands.billers import CreateBiller
from gopay.commands.disputes import (
    AddEvidence,
    DisputeWindowClosed,
    OpenDispute,
    ResolveDispute,
)
from gopay.commands.psp_outcomes import ChargeBack
from gopay.commands.qr_payments import CreateQrCode, PayQrCode
from gopay.commands.refunds import RefundPayment
from gopay.commands.staff import SetFrozen
from tests.unit.commands.in_memory import InMemoryGoPay, SettableClock, wallet_id

RECEIVABLES = SystemAccount.RECEIVABLES.account_id("USD")


@pytest.fixture
def shop(gopay: InMemoryGoPay) -> User:
    return gopay.register("till@shop.example", kind="company", business_name="Corner Shop",
                          category="merchant")


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 5_000)
    return ada


@pytest.fixture
def payment(gopay: InMemoryGoPay, shop: User, ada: User) -> PaymentOrder:
    """Ada paid the shop 1,000 by QR code."""
    return pay_shop(gopay, shop, ada, 1_000)


def pay_shop(gopay: InMemoryGoPay, shop: User, payer: User, amount: int) -> PaymentOrder:
    code = gopay.run(CreateQrCode(merchant_id=shop.id, amount=amount, reference="order 17"))
    return gopay.run(PayQrCode(caller_id=payer.id, payer_wallet_id=wallet_id(payer),
                               terms=code.terms))


def open_dispute(gopay: InMemoryGoPay, payer: User, payment_id: UUID, amount: int | None = None,
                 **fields: Any) -> Dispute:
    order = gopay.run(OpenDispute(caller_id=payer.id, customer_wallet_id=wallet_id(payer),
                                  payment_id=payment_id, reason="never delivered",
                                  amount=amount, **fields))
    return gopay.app.get(Dispute.id_for(order.id), Dispute)


def resolve(gopay: InMemoryGoPay, dispute: Dispute, outcome: Outcome) -> Dispute:
    return gopay.run(ResolveDispute(dispute_id=dispute.id, staff_id=gopay.admin.id,
                                    outcome=outcome))


def spend(gopay: InMemoryGoPay, user: User, amount: int) -> None:
    """The user's money leaves (taken by an adjustment, as if spent)."""
    gopay.run(Adjust(caller_id=gopay.admin.id, wallet_id=wallet_id(user),
                     direction=Direction.DEBIT, money=Money(amount, "USD"),
                     reason="spent", fingerprint=str(uuid4())))


class TestOpening:
    def test_the_disputed_amount_is_held_in_the_payee_s_wallet(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        """Open, with the amount held at once and its refund planned; no money moves yet."""
        dispute = open_dispute(gopay, ada, payment.id, 400)
        assert (dispute.status, dispute.amount, dispute.covered, dispute.payment_id) == (
            DisputeStatus.OPEN, 400, 400, payment.id)
        merchant = gopay.wallet(shop)
        assert (merchant.balance, merchant.held) == (1_000, 400)
        order = gopay.order(dispute.order_id)
        assert (order.status, order.postings) == (OrderStatus.PENDING, ())
        assert gopay.app.get(PaymentRefunds.id_for(payment.id), PaymentRefunds).remaining == 600
        gopay.check_books()

    def test_without_an_amount_all_that_is_left_after_refunds_is_disputed(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        gopay.run(RefundPayment(caller_id=shop.id, merchant_wallet_id=wallet_id(shop),
                                payment_id=payment.id, amount=300))
        assert open_dispute(gopay, ada, payment.id).amount == 700
        with pytest.raises(DisputeTooLarge, match="in full"):
            open_dispute(gopay, ada, payment.id)

    def test_transfers_can_be_disputed_by_their_sender(self, gopay: InMemoryGoPay,
                                                      ada: User) -> None:
        bob = gopay.register("bob@example.com")
        transfer = gopay.transfer(ada, "bob@example.com", 250)
        dispute = open_dispute(gopay, ada, transfer.id)
        assert (dispute.amount, dispute.merchant_wallet_id) == (250, wallet_id(bob))
        assert gopay.wallet(bob).held == 250

    def test_bill_payments_can_be_disputed_against_the_biller_s_account(
            self, gopay: InMemoryGoPay, ada: User) -> None:
        """The biller's payable account holds the amount (not the fee: GoPay's own)."""
        power = gopay.run(CreateBiller(staff_id=gopay.admin.id, name="City Power",
                                       category="electricity"))
        bill = gopay.run(PayBill(caller_id=ada.id, wallet_id=wallet_id(ada), biller_id=power.id,
                                 customer_reference="ACC-1", money=Money(800, "USD")))
        dispute = resolve(gopay, open_dispute(gopay, ada, bill.id), Outcome.CUSTOMER)
        assert (dispute.amount, dispute.merchant_wallet_id) == (800, power.wallet_id)
        assert (gopay.balance(ada), gopay.app.get(power.wallet_id, Wallet).balance) == (5_000, 0)
        gopay.check_books()

    def test_only_the_payer_may_dispute(self, gopay: InMemoryGoPay, shop: User, ada: User,
                                        payment: PaymentOrder) -> None:
        """Anyone else (the payee too) is told the payment does not exist; nothing recorded."""
        eve = gopay.register("eve@example.com")
        head = gopay.head()
        for someone in (eve, shop):
            with pytest.raises(NotFound):
                open_dispute(gopay, someone, payment.id)
        with pytest.raises(NotFound):
            open_dispute(gopay, ada, uuid4())
        assert gopay.head() == head

    def test_more_than_was_paid_and_nonsense_are_refused(
            self, gopay: InMemoryGoPay, ada: User, payment: PaymentOrder) -> None:
        with pytest.raises(DisputeTooLarge):
            open_dispute(gopay, ada, payment.id, 1_001)
        with pytest.raises(ValidationFailed):
            open_dispute(gopay, ada, payment.id, 0)
        with pytest.raises(ValidationFailed):
            gopay.run(OpenDispute(caller_id=ada.id, customer_wallet_id=wallet_id(ada),
                                  payment_id=payment.id, reason="   "))

    def test_the_window_closes_after_the_configured_days(self) -> None:
        """60 days by default: on day 59 a dispute opens, after day 60 it is refused."""
        gopay = InMemoryGoPay(clock=SettableClock(utc_now()))
        shop = gopay.register("till@shop.example", kind="company", business_name="Shop",
                              category="merchant")
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 5_000)
        first, second = pay_shop(gopay, shop, ada, 100), pay_shop(gopay, shop, ada, 100)
        gopay.clock.advance(days=59)
        open_dispute(gopay, ada, first.id)
        gopay.clock.advance(days=1, seconds=5)
        with pytest.raises(DisputeWindowClosed):
            open_dispute(gopay, ada, second.id)


class TestDeciding:
    def test_for_the_customer_the_hold_pays_the_refund_once(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        """One journal entry from the shop to Ada; a second decision changes nothing."""
        dispute = resolve(gopay, open_dispute(gopay, ada, payment.id, 400), Outcome.CUSTOMER)
        assert dispute.status == DisputeStatus.WON
        order = gopay.order(dispute.order_id)
        assert (order.status, order.postings) == (OrderStatus.SUCCEEDED, (
            Posting(wallet_id(shop), -400, "USD"), Posting(wallet_id(ada), 400, "USD")))
        assert (gopay.balance(ada), gopay.balance(shop), gopay.wallet(shop).held) == (
            4_400, 600, 0)
        head = gopay.head()
        for outcome in Outcome:
            with pytest.raises(InvalidState):
                resolve(gopay, dispute, outcome)
        assert gopay.head() == head
        gopay.check_books()

    def test_for_the_merchant_the_hold_is_released_and_refundable_again(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        dispute = resolve(gopay, open_dispute(gopay, ada, payment.id), Outcome.MERCHANT)
        assert dispute.status == DisputeStatus.LOST
        assert gopay.order(dispute.order_id).status == OrderStatus.FAILED
        assert (gopay.balance(ada), gopay.balance(shop), gopay.wallet(shop).held) == (
            4_000, 1_000, 0)
        with pytest.raises(InvalidState):
            resolve(gopay, dispute, Outcome.CUSTOMER)
        gopay.run(RefundPayment(caller_id=shop.id, merchant_wallet_id=wallet_id(shop),
                                payment_id=payment.id))  # all of it, once more refundable
        assert gopay.balance(ada) == 5_000
        gopay.check_books()

    def test_a_payee_who_spent_the_money_owes_it_and_the_customer_gets_all(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        """What the wallet could not hold is advanced from receivables on a customer win."""
        spend(gopay, shop, 700)
        dispute = open_dispute(gopay, ada, payment.id, 500)
        assert (dispute.covered, dispute.owed, gopay.wallet(shop).held) == (300, 200, 300)
        resolve(gopay, dispute, Outcome.CUSTOMER)
        assert gopay.order(dispute.order_id).postings == (
            Posting(wallet_id(shop), -300, "USD"), Posting(wallet_id(ada), 500, "USD"),
            Posting(RECEIVABLES, -200, "USD"))
        assert (gopay.balance(ada), gopay.balance(shop)) == (4_500, 0)
        assert gopay.check_books().accounts[RECEIVABLES] == -200

    def test_a_payee_with_nothing_loses_nothing_it_does_not_have(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        """Nothing held: on a merchant win there is nothing to release, and no error."""
        spend(gopay, shop, 1_000)
        dispute = open_dispute(gopay, ada, payment.id)
        assert (dispute.covered, gopay.wallet(shop).held) == (0, 0)
        assert resolve(gopay, dispute, Outcome.MERCHANT).status == DisputeStatus.LOST
        gopay.check_books()

    def test_a_frozen_payee_s_money_is_held_too(self, gopay: InMemoryGoPay, shop: User,
                                               ada: User, payment: PaymentOrder) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=shop.id, frozen=True,
                            reason="review"))
        assert open_dispute(gopay, ada, payment.id).covered == 1_000


class TestRefundsAndDisputesTogether:
    def test_a_refund_cannot_take_what_a_dispute_claims(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        open_dispute(gopay, ada, payment.id, 600)
        refund = RefundPayment(caller_id=shop.id, merchant_wallet_id=wallet_id(shop),
                               payment_id=payment.id, amount=500)
        with pytest.raises(RefundTooLarge):
            gopay.run(refund)
        gopay.run(RefundPayment(caller_id=shop.id, merchant_wallet_id=wallet_id(shop),
                                payment_id=payment.id, amount=400))
        with pytest.raises(DisputeTooLarge):
            open_dispute(gopay, ada, payment.id, 1)


class TestEvidence:
    def test_the_payee_answers_while_the_dispute_is_open(
            self, gopay: InMemoryGoPay, shop: User, ada: User, payment: PaymentOrder) -> None:
        dispute = open_dispute(gopay, ada, payment.id)

        def answer(by: User, text: str = "delivered on the 3rd") -> Dispute:
            return gopay.run(AddEvidence(dispute_id=dispute.id, payee_wallet_id=wallet_id(by),
                                         by=by.id, text=text))

        assert [item.text for item in answer(shop).evidence] == ["delivered on the 3rd"]
        with pytest.raises(NotFound):
            answer(ada)  # only the payee
        with pytest.raises(ValidationFailed):
            answer(shop, " ")
        resolve(gopay, dispute, Outcome.MERCHANT)
        with pytest.raises(InvalidState):
            answer(shop)


class TestChargebacks:
    def test_a_chargeback_opens_a_dispute_decided_by_the_bank(self, gopay: InMemoryGoPay,
                                                             ada: User) -> None:
        """Linked to the top-up, for the customer, with what the wallet gave back."""
        card = gopay.add_card(ada)
        topup = gopay.settle(gopay.top_up(ada, card, 2_000))
        spend(gopay, ada, 6_000)
        chargeback = gopay.run(ChargeBack(caller_id=topup.id, topup_id=topup.id,
                                          idempotency_key="dp_1", fingerprint="charge.disputed",
                                          money=Money(2_000, "USD")))
        dispute = gopay.app.get(Dispute.id_for(chargeback.id), Dispute)
        assert (dispute.kind, dispute.status, dispute.payment_id, dispute.amount,
                dispute.covered, dispute.customer_wallet_id) == (
            DisputeKind.CHARGEBACK, DisputeStatus.WON, topup.id, 2_000, 1_000, wallet_id(ada))
        with pytest.raises(InvalidState):
            resolve(gopay, dispute, Outcome.MERCHANT)
        assert isinstance(gopay.events(wallet_id(ada))[-1], Wallet.Debited)
        gopay.check_books()
