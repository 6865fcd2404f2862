"""Refunds: a merchant gives a payment back to the payer's wallet, never more than was paid."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from gopay.aggregates.errors import AccountFrozen, InsufficientFunds, InvalidState, NotFound
from gopay.aggregates.ledger import Posting, TransactionType
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.refunds import PaymentRefunds, RefundTooLarge
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Outcome
from gopay.commands.qr_payments import CreateQrCode, PayQrCode
from gopay.commands.refunds import RefundPayment
from gopay.commands.staff import SetFrozen
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id


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
    """Ada paid the shop 1,000 for order 17."""
    code = gopay.run(CreateQrCode(merchant_id=shop.id, amount=1_000, reference="order 17"))
    return gopay.run(PayQrCode(caller_id=ada.id, payer_wallet_id=wallet_id(ada), terms=code.terms))


def refund(gopay: InMemoryGoPay, merchant: User, payment_id: Any, amount: int | None = None,
           **fields: Any) -> PaymentOrder:
    return gopay.run(refund_command(merchant, payment_id, amount, **fields))


def refund_command(merchant: User, payment_id: Any, amount: int | None = None,
                   **fields: Any) -> RefundPayment:
    return RefundPayment(caller_id=merchant.id, merchant_wallet_id=wallet_id(merchant),
                         payment_id=payment_id, amount=amount, **fields)


class TestRefunding:
    def test_a_full_refund_gives_the_payer_everything_back(self, gopay: InMemoryGoPay, shop: User,
                                                          ada: User, payment: PaymentOrder) -> None:
        """A refund order of its own, from the merchant's wallet to the payer's, in both histories."""
        order = refund(gopay, shop, payment.id)
        assert (order.status, order.order_type, order.amount, order.note) == (
            OrderStatus.SUCCEEDED, TransactionType.REFUND, 1_000, str(payment.id))
        assert order.postings == (Posting(wallet_id(shop), -1_000, "USD"),
                                  Posting(wallet_id(ada), 1_000, "USD"))
        assert (gopay.balance(ada), gopay.balance(shop)) == (5_000, 0)
        for user, kind in ((shop, Wallet.Debited), (ada, Wallet.Credited)):
            line = gopay.events(wallet_id(user))[-1]
            assert isinstance(line, kind)
            assert (line.entry_type, line.entry_id) == ("refund", order.id)
        gopay.check_books()

    def test_partial_refunds_add_up_to_what_was_paid(self, gopay: InMemoryGoPay, shop: User,
                                                    ada: User, payment: PaymentOrder) -> None:
        """Parts, then the rest when no amount is given; then nothing is left."""
        refund(gopay, shop, payment.id, 300)
        refund(gopay, shop, payment.id, 200)
        rest = refund(gopay, shop, payment.id)
        assert rest.amount == 500
        refunds = gopay.app.get(PaymentRefunds.id_for(payment.id), PaymentRefunds)
        assert (refunds.refunded, refunds.remaining) == (1_000, 0)
        with pytest.raises(RefundTooLarge, match="in full"):
            refund(gopay, shop, payment.id)
        assert gopay.balance(ada) == 5_000

    def test_a_refund_beyond_what_is_left_is_refused_whole(self, gopay: InMemoryGoPay, shop: User,
                                                          ada: User, payment: PaymentOrder) -> None:
        refund(gopay, shop, payment.id, 600)
        with pytest.raises(RefundTooLarge) as refused:
            refund(gopay, shop, payment.id, 401)
        assert refused.value.details == {"refundable": 400}
        assert (gopay.balance(ada), gopay.balance(shop)) == (4_600, 400)

    def test_refunds_at_once_never_pass_the_payment(self, gopay: InMemoryGoPay, shop: User,
                                                   ada: User, payment: PaymentOrder) -> None:
        """Fifty refunds of 30 in one batch: 33 fit into 1,000, the others are refused."""
        async def all_at_once() -> list[object]:
            return await asyncio.gather(*(gopay.commands.run_async(
                refund_command(shop, payment.id, 30)) for _ in range(50)), return_exceptions=True)

        answers = asyncio.run(all_at_once())
        assert sum(isinstance(a, Outcome) for a in answers) == 33
        assert sum(isinstance(a, RefundTooLarge) for a in answers) == 17
        assert (gopay.balance(ada), gopay.balance(shop)) == (4_990, 10)
        gopay.check_books()

    def test_the_merchant_needs_the_money_to_refund(self, gopay: InMemoryGoPay, shop: User,
                                                   ada: User, payment: PaymentOrder) -> None:
        """A merchant that paid its takings out cannot refund; nothing is counted as refunded."""
        bob = gopay.register("bob@example.com")
        gopay.transfer(shop, "bob@example.com", 900)
        with pytest.raises(InsufficientFunds):
            refund(gopay, shop, payment.id)
        assert gopay.app.find(PaymentRefunds.id_for(payment.id), PaymentRefunds) is None
        assert refund(gopay, shop, payment.id, 100).amount == 100
        assert gopay.balance(bob) == 900

    def test_a_frozen_merchant_cannot_refund(self, gopay: InMemoryGoPay, shop: User,
                                            payment: PaymentOrder) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=shop.id, frozen=True, reason="review"))
        with pytest.raises(AccountFrozen):
            refund(gopay, shop, payment.id)


class TestWhatCanBeRefunded:
    def test_another_merchant_s_payment_does_not_exist(self, gopay: InMemoryGoPay,
                                                       payment: PaymentOrder) -> None:
        other = gopay.register("kiosk@example.com", kind="company", business_name="Kiosk",
                               category="merchant")
        gopay.fund(other, 5_000)
        with pytest.raises(NotFound):
            refund(gopay, other, payment.id)

    def test_only_payments_the_merchant_received_are_refunded(self, gopay: InMemoryGoPay,
                                                             shop: User, ada: User) -> None:
        """A transfer to the merchant is not a payment it can refund; nor is an unknown id."""
        transfer = gopay.transfer(ada, "till@shop.example", 500)
        for payment_id in (transfer.id, uuid4()):
            with pytest.raises(NotFound):
                refund(gopay, shop, payment_id)

    def test_a_keyed_refund_is_made_once(self, gopay: InMemoryGoPay, shop: User, ada: User,
                                        payment: PaymentOrder) -> None:
        first = refund(gopay, shop, payment.id, 100, idempotency_key="k", fingerprint="f")
        again = refund(gopay, shop, payment.id, 100, idempotency_key="k", fingerprint="f")
        assert again.id == first.id
        assert gopay.balance(ada) == 4_100

    def test_a_keyed_refusal_is_recorded(self, gopay: InMemoryGoPay, shop: User,
                                         payment: PaymentOrder) -> None:
        """Missing funds leave a failed refund order behind, as for every money flow."""
        gopay.transfer(shop, "ada@example.com", 1_000)
        with pytest.raises(InsufficientFunds):
            refund(gopay, shop, payment.id, idempotency_key="k", fingerprint="f")
        with pytest.raises(InsufficientFunds):
            refund(gopay, shop, payment.id, idempotency_key="k", fingerprint="f")

    def test_a_failed_payment_cannot_be_refunded(self, gopay: InMemoryGoPay, shop: User,
                                                 ada: User) -> None:
        code = gopay.run(CreateQrCode(merchant_id=shop.id, amount=9_000))
        with pytest.raises(InsufficientFunds):
            gopay.run(PayQrCode(caller_id=ada.id, payer_wallet_id=wallet_id(ada), terms=code.terms,
                                idempotency_key="k", fingerprint="f"))
        failed = next(o for o in gopay.orders() if o.status == OrderStatus.FAILED)
        with pytest.raises(InvalidState):
            refund(gopay, shop, failed.id)
