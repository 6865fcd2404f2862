"""Payment requests: paid at most once, as a transfer under its rules, or declined, cancelled or expired."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.ledger import Posting, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.payment_request import PaymentRequest, RequestStatus
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.payment_requests import (
    CancelPaymentRequest,
    DeclinePaymentRequest,
    ExpirePaymentRequest,
    PayPaymentRequest,
    RequestPayment,
)
from gopay.commands.staff import SetFrozen
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    """Ada asks for money."""
    return gopay.register("ada@example.com")


@pytest.fixture
def grace(gopay: InMemoryGoPay) -> User:
    """Grace is asked, and has the money."""
    grace = gopay.register("grace@example.com", phone="+14155550123")
    gopay.fund(grace, 5_000)
    return grace


def ask(gopay: InMemoryGoPay, requester: User, payer: str, amount: int, currency: str = "USD",
        **fields: Any) -> PaymentRequest:
    return gopay.run(RequestPayment(requester_id=requester.id,
                                    requester_wallet_id=wallet_id(requester), payer=payer,
                                    money=Money(amount, currency), **fields))


def pay(gopay: InMemoryGoPay, payer: User, request: PaymentRequest, **fields: Any) -> PaymentOrder:
    return gopay.run(PayPaymentRequest(caller_id=payer.id, request_id=request.id,
                                       payer_wallet_id=wallet_id(payer), **fields))


def request_now(gopay: InMemoryGoPay, request: PaymentRequest) -> PaymentRequest:
    return gopay.app.get(request.id, PaymentRequest)


class TestAsking:
    @pytest.mark.parametrize("payer", ["grace@example.com", "+14155550123", "wallet id"])
    def test_a_request_is_open_and_names_both_wallets(self, gopay: InMemoryGoPay, ada: User,
                                                      grace: User, payer: str) -> None:
        request = ask(gopay, ada, str(grace.wallet_id) if payer == "wallet id" else payer, 1_200,
                      note="concert tickets")
        assert (request.status, request.amount, request.note) == (RequestStatus.OPEN, 1_200,
                                                                   "concert tickets")
        assert (request.requester_wallet_id, request.payer_wallet_id) == (wallet_id(ada),
                                                                          wallet_id(grace))
        assert request.expires_at == (gopay.clock() + timedelta(days=7)).isoformat()
        assert gopay.balance(grace) == 5_000  # asking moves nothing

    def test_nobody_asks_themselves(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(ValidationFailed, match="yourself"):
            ask(gopay, ada, "ada@example.com", 100)

    def test_an_unknown_payer_is_not_found(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(NotFound):
            ask(gopay, ada, "nobody@example.com", 100)

    def test_both_wallets_must_hold_the_currency(self, gopay: InMemoryGoPay, ada: User,
                                                 grace: User) -> None:
        """No conversion: a request in EUR between USD wallets, or to a EUR wallet, is refused."""
        gopay.register("pierre@example.com", currency="EUR")
        with pytest.raises(CurrencyMismatch):
            ask(gopay, ada, "grace@example.com", 100, currency="EUR")
        with pytest.raises(CurrencyMismatch):
            ask(gopay, ada, "pierre@example.com", 100)

    def test_a_repeated_key_answers_the_same_request(self, gopay: InMemoryGoPay, ada: User,
                                                     grace: User) -> None:
        first = ask(gopay, ada, "grace@example.com", 100, idempotency_key="k", fingerprint="f")
        again = ask(gopay, ada, "grace@example.com", 100, idempotency_key="k", fingerprint="f")
        assert again.id == first.id
        with pytest.raises(IdempotencyConflict):
            ask(gopay, ada, "grace@example.com", 200, idempotency_key="k", fingerprint="g")


class TestPaying:
    def test_paying_is_a_transfer_with_the_request_as_reference(self, gopay: InMemoryGoPay,
                                                                ada: User, grace: User) -> None:
        """One entry from the payer to the requester; both lines say `transfer` and name the request."""
        request = ask(gopay, ada, "grace@example.com", 1_200, note="tickets")
        order = pay(gopay, grace, request)
        assert (order.status, order.order_type) == (OrderStatus.SUCCEEDED, TransactionType.TRANSFER)
        assert order.postings == (Posting(wallet_id(grace), -1_200, "USD"),
                                  Posting(wallet_id(ada), 1_200, "USD"))
        paid, received = gopay.events(wallet_id(grace))[-1], gopay.events(wallet_id(ada))[-1]
        assert isinstance(paid, Wallet.Debited) and isinstance(received, Wallet.Credited)
        assert (paid.entry_type, paid.counterparty, paid.reference) == (
            "transfer", str(ada.wallet_id), str(request.id))
        assert (received.entry_type, received.counterparty, received.reference) == (
            "transfer", str(grace.wallet_id), str(request.id))
        now = request_now(gopay, request)
        assert (now.status, now.order_id) == (RequestStatus.PAID, order.id)
        gopay.check_books()

    def test_a_request_is_paid_once(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 1_200)
        pay(gopay, grace, request)
        with pytest.raises(InvalidState, match="paid"):
            pay(gopay, grace, request)
        assert (gopay.balance(grace), gopay.balance(ada)) == (3_800, 1_200)

    def test_two_payments_at_once_pay_once(self, gopay: InMemoryGoPay, ada: User,
                                           grace: User) -> None:
        """Both in one batch: the request changed by the first is found paid by the second."""
        request = ask(gopay, ada, "grace@example.com", 1_200)

        async def twice() -> list[Any]:
            return await asyncio.gather(*(gopay.commands.run_async(PayPaymentRequest(
                caller_id=grace.id, request_id=request.id, payer_wallet_id=wallet_id(grace),
                idempotency_key=key, fingerprint="f")) for key in ("k1", "k2")),
                return_exceptions=True)

        answers = asyncio.run(twice())
        assert sorted(type(a).__name__ for a in answers) == ["InvalidState", "Outcome"]
        assert (gopay.balance(grace), gopay.balance(ada)) == (3_800, 1_200)

    def test_a_repeated_key_pays_once_and_answers_the_same_transfer(self, gopay: InMemoryGoPay,
                                                                    ada: User, grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 1_200)
        first = pay(gopay, grace, request, idempotency_key="k", fingerprint="f")
        again = pay(gopay, grace, request, idempotency_key="k", fingerprint="f")
        assert again.id == first.id and gopay.balance(ada) == 1_200

    def test_only_the_payer_pays(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """To the requester and to anyone else, the request does not exist."""
        request = ask(gopay, ada, "grace@example.com", 100)
        mallory = gopay.register("mallory@example.com")
        gopay.fund(mallory, 1_000)
        gopay.fund(ada, 1_000)
        for stranger in (ada, mallory):
            with pytest.raises(NotFound):
                pay(gopay, stranger, request)
            with pytest.raises(NotFound):
                gopay.run(DeclinePaymentRequest(request_id=request.id,
                                                payer_wallet_id=wallet_id(stranger)))
        assert request_now(gopay, request).status == RequestStatus.OPEN


class TestTheTransferRules:
    def test_not_enough_money_leaves_the_request_open(self, gopay: InMemoryGoPay, ada: User,
                                                      grace: User) -> None:
        """A keyed refusal is recorded on its order; the request can be paid later."""
        request = ask(gopay, ada, "grace@example.com", 6_000)
        with pytest.raises(InsufficientFunds):
            pay(gopay, grace, request, idempotency_key="k", fingerprint="f")
        assert gopay.order(order_id_for(grace.id, "payment-request-payment", "k")).status == \
            OrderStatus.FAILED
        assert request_now(gopay, request).status == RequestStatus.OPEN
        gopay.fund(grace, 1_000)
        pay(gopay, grace, request, idempotency_key="k2", fingerprint="f")
        assert gopay.balance(ada) == 6_000

    def test_a_frozen_payer_cannot_pay(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 100)
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=grace.id, frozen=True, reason="x"))
        with pytest.raises(AccountFrozen):
            pay(gopay, grace, request)
        assert request_now(gopay, request).status == RequestStatus.OPEN

    def test_the_payer_s_limits_apply(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """10,000 a payment on the unverified tier, as for any transfer."""
        gopay.fund(grace, 20_000)
        request = ask(gopay, ada, "grace@example.com", 10_001)
        with pytest.raises(LimitExceeded):
            pay(gopay, grace, request)
        assert gopay.wallet(grace).spent_today == 0


class TestAnswersOtherThanPaying:
    def test_a_declined_request_cannot_be_paid(self, gopay: InMemoryGoPay, ada: User,
                                               grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 100)
        decline = DeclinePaymentRequest(request_id=request.id, payer_wallet_id=wallet_id(grace))
        assert gopay.run(decline).status == RequestStatus.DECLINED
        assert gopay.run(decline).status == RequestStatus.DECLINED  # again: the same answer
        with pytest.raises(InvalidState, match="declined"):
            pay(gopay, grace, request)
        assert gopay.balance(grace) == 5_000

    def test_the_requester_cancels_it_and_nobody_else_can(self, gopay: InMemoryGoPay, ada: User,
                                                          grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 100)
        with pytest.raises(NotFound):
            gopay.run(CancelPaymentRequest(request_id=request.id,
                                           requester_wallet_id=wallet_id(grace)))
        cancelled = gopay.run(CancelPaymentRequest(request_id=request.id,
                                                   requester_wallet_id=wallet_id(ada)))
        assert cancelled.status == RequestStatus.CANCELLED
        with pytest.raises(InvalidState, match="cancelled"):
            pay(gopay, grace, request)

    def test_a_paid_request_is_not_declined_or_cancelled(self, gopay: InMemoryGoPay, ada: User,
                                                         grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 100)
        pay(gopay, grace, request)
        with pytest.raises(InvalidState):
            gopay.run(DeclinePaymentRequest(request_id=request.id,
                                            payer_wallet_id=wallet_id(grace)))
        with pytest.raises(InvalidState):
            gopay.run(CancelPaymentRequest(request_id=request.id,
                                           requester_wallet_id=wallet_id(ada)))


class TestExpiry:
    def test_an_expired_request_cannot_be_paid_even_before_it_is_recorded(
            self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        request = ask(gopay, ada, "grace@example.com", 100, valid_for=timedelta(hours=1))
        gopay.clock.advance(minutes=59)
        gopay.run(ExpirePaymentRequest(request_id=request.id))  # not due yet: nothing happens
        assert request_now(gopay, request).status == RequestStatus.OPEN
        gopay.clock.advance(minutes=1)
        with pytest.raises(InvalidState, match="expired"):
            pay(gopay, grace, request)
        gopay.run(ExpirePaymentRequest(request_id=request.id))
        assert request_now(gopay, request).status == RequestStatus.EXPIRED
        assert "Expired" in gopay.event_types(request.id)
        assert gopay.balance(grace) == 5_000
