"""QR payments: a merchant's code, paid from a wallet like a transfer, a fixed amount exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    ValidationFailed,
)
from gopay.aggregates.fees import FeePayer, FeeRule
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.qr_code import QrAlreadyPaid, QrCode, QrExpired
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.qr_payments import CreateQrCode, PayQrCode
from gopay.commands.staff import SetFrozen
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

FEES = SystemAccount.FEES.account_id("USD")


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
def grace(gopay: InMemoryGoPay) -> User:
    grace = gopay.register("grace@example.com")
    gopay.fund(grace, 5_000)
    return grace


def qr_code(gopay: InMemoryGoPay, merchant: User, amount: int | None = None, **fields: Any) -> QrCode:
    return gopay.run(CreateQrCode(merchant_id=merchant.id, amount=amount, **fields))


def pay(gopay: InMemoryGoPay, payer: User, code: QrCode, amount: int | None = None,
        **fields: Any) -> PaymentOrder:
    return gopay.run(pay_command(payer, code, amount, **fields))


def pay_command(payer: User, code: QrCode, amount: int | None = None, **fields: Any) -> PayQrCode:
    return PayQrCode(caller_id=payer.id, payer_wallet_id=wallet_id(payer), terms=code.terms,
                     amount=amount, **fields)


class TestMakingCodes:
    def test_a_fixed_amount_code_is_a_checkout_that_expires_soon(self, gopay: InMemoryGoPay,
                                                                 shop: User) -> None:
        """Its terms: the merchant's wallet and currency, the amount, the reference, 15 minutes."""
        code = qr_code(gopay, shop, 1_250, reference="order 17")
        terms = code.terms
        assert (terms.merchant_wallet_id, terms.amount, terms.currency, terms.reference) == (
            shop.wallet_id, 1_250, "USD", "order 17")
        assert terms.expires_at == gopay.clock() + timedelta(minutes=15)

    def test_an_open_amount_code_never_expires_unless_told(self, gopay: InMemoryGoPay,
                                                          shop: User) -> None:
        assert qr_code(gopay, shop).terms.expires_at is None
        told = qr_code(gopay, shop, expires_in=timedelta(seconds=90)).terms.expires_at
        assert told == gopay.clock() + timedelta(seconds=90)

    def test_an_expiry_is_whole_seconds_and_never_sooner_than_asked(self, gopay: InMemoryGoPay,
                                                                   shop: User) -> None:
        """The payload counts whole seconds: a fraction is rounded up, not down."""
        gopay.clock.advance(seconds=0.25)
        expires_at = qr_code(gopay, shop, 100, expires_in=timedelta(seconds=1)).terms.expires_at
        assert expires_at is not None and expires_at.microsecond == 0
        assert expires_at >= gopay.clock() + timedelta(seconds=1)

    @pytest.mark.parametrize("kind", ["person", "agent", "biller"])
    def test_only_merchants_make_codes(self, gopay: InMemoryGoPay, kind: str) -> None:
        fields = ({"kind": "company", "business_name": "Water Co", "category": "biller"}
                  if kind == "biller" else {"kind": kind})
        someone = gopay.register(f"{kind}@example.com", **fields)
        with pytest.raises(Forbidden):
            qr_code(gopay, someone, 100)

    def test_a_keyed_request_makes_one_code(self, gopay: InMemoryGoPay, shop: User) -> None:
        first = qr_code(gopay, shop, 100, idempotency_key="k", fingerprint="a")
        assert qr_code(gopay, shop, 100, idempotency_key="k", fingerprint="a").id == first.id
        with pytest.raises(IdempotencyConflict):
            qr_code(gopay, shop, 200, idempotency_key="k", fingerprint="b")
        assert gopay.event_types(first.id) == ["Created"]

    @pytest.mark.parametrize("amount", [0, -5])
    def test_a_fixed_amount_is_positive(self, gopay: InMemoryGoPay, shop: User, amount: int) -> None:
        with pytest.raises(ValidationFailed):
            qr_code(gopay, shop, amount)


class TestPaying:
    def test_the_merchant_is_credited_in_one_entry(self, gopay: InMemoryGoPay, shop: User,
                                                   ada: User) -> None:
        """A qr_payment order, a line in each history with the code's reference."""
        order = pay(gopay, ada, qr_code(gopay, shop, 1_250, reference="order 17"))
        assert (order.status, order.order_type, order.note) == (
            OrderStatus.SUCCEEDED, TransactionType.QR_PAYMENT, "order 17")
        assert order.postings == (Posting(wallet_id(ada), -1_250, "USD"),
                                  Posting(wallet_id(shop), 1_250, "USD"))
        assert (gopay.balance(ada), gopay.balance(shop)) == (3_750, 1_250)
        credited = gopay.events(wallet_id(shop))[-1]
        assert isinstance(credited, Wallet.Credited)
        assert (credited.entry_type, credited.counterparty, credited.reference) == (
            "qr_payment", str(ada.wallet_id), "order 17")
        gopay.check_books()

    def test_a_fixed_amount_code_is_paid_once(self, gopay: InMemoryGoPay, shop: User, ada: User,
                                              grace: User) -> None:
        code = qr_code(gopay, shop, 1_000)
        first = pay(gopay, ada, code)
        with pytest.raises(QrAlreadyPaid) as refused:
            pay(gopay, grace, code)
        assert refused.value.details == {"payment_id": str(first.id)}
        assert (gopay.balance(grace), gopay.balance(shop)) == (5_000, 1_000)
        assert gopay.app.get(code.id, QrCode).payment_id == first.id

    def test_many_paying_one_fixed_code_at_once_pay_it_once(self, gopay: InMemoryGoPay,
                                                            shop: User) -> None:
        """Twenty payers in one batch: one payment, nineteen refusals, nobody else charged."""
        payers = [gopay.register(f"payer{n}@example.com") for n in range(20)]
        for payer in payers:
            gopay.fund(payer, 1_000)
        code = qr_code(gopay, shop, 700)

        async def all_at_once() -> list[object]:
            return await asyncio.gather(*(gopay.commands.run_async(pay_command(payer, code))
                                          for payer in payers), return_exceptions=True)

        answers = asyncio.run(all_at_once())
        assert sum(isinstance(a, QrAlreadyPaid) for a in answers) == 19
        assert sum(gopay.balance(payer) for payer in payers) == 20 * 1_000 - 700
        assert gopay.balance(shop) == 700
        gopay.check_books()

    def test_an_open_amount_code_is_paid_any_number_of_times(self, gopay: InMemoryGoPay,
                                                             shop: User, ada: User,
                                                             grace: User) -> None:
        """Each payer enters an amount; the code itself never changes."""
        code = qr_code(gopay, shop, reference="till 2")
        pay(gopay, ada, code, 300)
        pay(gopay, grace, code, 450)
        pay(gopay, ada, code, 50)
        assert gopay.balance(shop) == 800
        assert gopay.event_types(code.id) == ["Created"]

    def test_an_open_amount_needs_an_amount(self, gopay: InMemoryGoPay, shop: User,
                                            ada: User) -> None:
        with pytest.raises(ValidationFailed, match="open amount"):
            pay(gopay, ada, qr_code(gopay, shop))

    def test_a_fixed_amount_cannot_be_changed_by_the_payer(self, gopay: InMemoryGoPay,
                                                           shop: User, ada: User) -> None:
        """The same amount again is harmless; another amount is refused."""
        code = qr_code(gopay, shop, 1_000)
        with pytest.raises(ValidationFailed, match="cannot change"):
            pay(gopay, ada, code, 1)
        assert pay(gopay, ada, code, 1_000).amount == 1_000

    def test_an_expired_code_is_refused(self, gopay: InMemoryGoPay, shop: User, ada: User) -> None:
        code = qr_code(gopay, shop, 100, expires_in=timedelta(seconds=60))
        gopay.clock.advance(seconds=60)
        with pytest.raises(QrExpired):
            pay(gopay, ada, code)
        assert gopay.balance(ada) == 5_000
        assert gopay.app.get(code.id, QrCode).payment_id is None

    def test_a_merchant_cannot_pay_its_own_code(self, gopay: InMemoryGoPay, shop: User) -> None:
        gopay.fund(shop, 1_000)
        with pytest.raises(ValidationFailed, match="your own"):
            pay(gopay, shop, qr_code(gopay, shop, 100))

    def test_the_code_s_currency_must_be_the_payer_s(self, gopay: InMemoryGoPay, shop: User) -> None:
        euro = gopay.register("eve@example.com", currency="EUR")
        gopay.fund(euro, 5_000, "EUR")
        with pytest.raises(CurrencyMismatch):
            pay(gopay, euro, qr_code(gopay, shop, 100))


class TestRefusals:
    def test_not_enough_money_moves_nothing_and_leaves_the_code_unpaid(
            self, gopay: InMemoryGoPay, shop: User, ada: User) -> None:
        code = qr_code(gopay, shop, 5_001)
        with pytest.raises(InsufficientFunds):
            pay(gopay, ada, code)
        assert (gopay.balance(ada), gopay.balance(shop)) == (5_000, 0)
        assert gopay.app.get(code.id, QrCode).payment_id is None
        gopay.fund(ada, 1)
        pay(gopay, ada, code)  # still payable once there is enough

    def test_a_frozen_wallet_cannot_pay(self, gopay: InMemoryGoPay, shop: User, ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="fraud"))
        with pytest.raises(AccountFrozen):
            pay(gopay, ada, qr_code(gopay, shop, 100))
        assert gopay.balance(shop) == 0

    def test_a_frozen_merchant_still_receives(self, gopay: InMemoryGoPay, shop: User,
                                              ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=shop.id, frozen=True, reason="review"))
        pay(gopay, ada, qr_code(gopay, shop, 100))
        assert gopay.balance(shop) == 100

    def test_the_tier_s_limits_apply(self, gopay: InMemoryGoPay, shop: User, ada: User) -> None:
        """10,000 a payment for the unverified tier, as for transfers."""
        gopay.fund(ada, 20_000)
        with pytest.raises(LimitExceeded, match="at most 10000"):
            pay(gopay, ada, qr_code(gopay, shop), 10_001)
        pay(gopay, ada, qr_code(gopay, shop), 10_000)

    def test_a_keyed_refusal_is_recorded_and_repeated(self, gopay: InMemoryGoPay, shop: User,
                                                      ada: User) -> None:
        code = qr_code(gopay, shop, 6_000)
        for _ in range(2):
            with pytest.raises(InsufficientFunds):
                pay(gopay, ada, code, idempotency_key="k", fingerprint="f")
        order = gopay.order(order_id_for(ada.id, "qr_payment", "k"))
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "insufficient_funds")
        assert gopay.app.get(code.id, QrCode).payment_id is None


class TestRepeatedRequests:
    def test_a_repeat_answers_the_first_payment_and_moves_nothing_more(
            self, gopay: InMemoryGoPay, shop: User, ada: User) -> None:
        """The fixed code is paid; the repeat with the key finds that payment, not a refusal."""
        code = qr_code(gopay, shop, 1_000)
        first = pay(gopay, ada, code, idempotency_key="k", fingerprint="f")
        again = pay(gopay, ada, code, idempotency_key="k", fingerprint="f")
        assert again.id == first.id
        assert (gopay.balance(ada), gopay.balance(shop)) == (4_000, 1_000)

    def test_the_key_with_another_request_is_a_conflict(self, gopay: InMemoryGoPay, shop: User,
                                                        ada: User) -> None:
        code = qr_code(gopay, shop)
        pay(gopay, ada, code, 100, idempotency_key="k", fingerprint="f")
        with pytest.raises(IdempotencyConflict):
            pay(gopay, ada, code, 200, idempotency_key="k", fingerprint="g")


class TestFees:
    @pytest.mark.parametrize(("paid_by", "ada_after", "shop_after"), [
        (FeePayer.PAYER, 5_000 - 1_000 - 15, 1_000), (FeePayer.PAYEE, 4_000, 1_000 - 15)])
    def test_the_schedule_s_fee_is_in_the_same_entry(self, paid_by: FeePayer, ada_after: int,
                                                     shop_after: int) -> None:
        """1.5 % of 1,000, from whoever the schedule says, to GoPay's fees account."""
        gopay = InMemoryGoPay(settings(fees={TransactionType.QR_PAYMENT: FeeRule(bps=150,
                                                                                 paid_by=paid_by)}))
        shop = gopay.register("till@shop.example", kind="company", business_name="Shop",
                              category="merchant")
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 5_000)
        order = pay(gopay, ada, qr_code(gopay, shop, 1_000))
        assert Posting(FEES, 15, "USD") in order.postings
        assert (gopay.balance(ada), gopay.balance(shop)) == (ada_after, shop_after)
        gopay.check_books()
