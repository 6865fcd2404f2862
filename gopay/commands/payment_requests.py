"""Payment requests: ask someone for money; they pay it as a transfer, decline it or let it expire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from uuid import UUID, uuid4, uuid5

from gopay.aggregates.errors import CurrencyMismatch, NotFound, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_request import PaymentRequest
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.commands.recipients import wallet_of
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class RequestPayment(Command[PaymentRequest]):
    """Ask the wallet `payer` names (an e-mail, a phone or a wallet id) for `money`, for `valid_for`."""

    requester_id: UUID
    requester_wallet_id: UUID
    payer: str
    money: Money
    note: str = ""
    valid_for: timedelta = timedelta(days=7)
    idempotency_key: str | None = None
    fingerprint: str = ""

    @cached_property
    def request_id(self) -> UUID:
        """Derived from the key, so a retry finds the same request; new for a command without one."""
        if self.idempotency_key is None:
            return uuid4()
        return uuid5(LEDGER_NAMESPACE,
                     f"payment-request/{self.requester_id}/{self.idempotency_key}")


@dataclass(frozen=True, kw_only=True)
class PayPaymentRequest(MoneyCommand):
    """The payer (caller) pays a request addressed to their wallet: a transfer to the requester."""

    operation = "payment-request-payment"
    screened = True
    may_hold = False
    request_id: UUID
    payer_wallet_id: UUID


@dataclass(frozen=True, kw_only=True)
class DeclinePaymentRequest(Command[PaymentRequest]):
    request_id: UUID
    payer_wallet_id: UUID


@dataclass(frozen=True, kw_only=True)
class CancelPaymentRequest(Command[PaymentRequest]):
    request_id: UUID
    requester_wallet_id: UUID


@dataclass(frozen=True, kw_only=True)
class ExpirePaymentRequest(Command[PaymentRequest]):
    """Record that an open request outlived its time (the scheduler does, when it is due)."""

    request_id: UUID


def _own_request(command: RequestPayment) -> tuple[UUID, ...]:
    return (command.request_id,) if command.idempotency_key is not None else ()


def _as_it_is(request: PaymentRequest) -> PaymentRequest:
    return request


@in_batch(RequestPayment, probes=_own_request, answer=_as_it_is)
def request_payment(command: RequestPayment, unit: UnitOfWork, context: Context) -> PaymentRequest:
    existing = repeat_of(unit, command.request_id, PaymentRequest, command.idempotency_key,
                         lambda request: request.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    if command.money.amount <= 0:
        raise ValidationFailed("amount must be greater than zero")
    if command.valid_for <= timedelta(0):
        raise ValidationFailed("a payment request must be open for some time")
    requester = unit.get(command.requester_wallet_id, Wallet)
    payer = wallet_of(unit, command.payer)
    if payer.id == requester.id:
        raise ValidationFailed("you cannot ask yourself for money")
    for wallet in (requester, payer):
        if wallet.currency != command.money.currency:
            raise CurrencyMismatch(f"a wallet of this request holds {wallet.currency}, "
                                   f"not {command.money.currency}")
    request = PaymentRequest(
        id=command.request_id, requester_id=command.requester_id,
        requester_wallet_id=requester.id, payer_id=payer.owner_id, payer_wallet_id=payer.id,
        amount=command.money.amount, currency=command.money.currency, note=command.note,
        expires_at=(context.clock() + command.valid_for).isoformat(),
        request_fingerprint=command.fingerprint)
    unit.add(request)
    return request


@money_flow(PayPaymentRequest)
def pay_payment_request(command: PayPaymentRequest, unit: UnitOfWork,
                        context: Context) -> MoneyFlow:
    request = _addressed_to(unit, command.request_id, command.payer_wallet_id)
    # Paid in the same batch as the money moves: a second payment finds it paid, and a
    # refused one (not enough money, a limit) leaves it open.
    request.pay(order_id=command.order_id, now=context.clock())
    return MoneyFlow(TransactionType.TRANSFER, Money(request.amount, request.currency),
                     payer=unit.get(command.payer_wallet_id, Wallet),
                     payee=unit.get(request.requester_wallet_id, Wallet),
                     reference=str(request.id))


@in_batch(DeclinePaymentRequest)
def decline_payment_request(command: DeclinePaymentRequest, unit: UnitOfWork,
                            context: Context) -> PaymentRequest:
    request = _addressed_to(unit, command.request_id, command.payer_wallet_id)
    request.decline(now=context.clock())
    return request


@in_batch(CancelPaymentRequest)
def cancel_payment_request(command: CancelPaymentRequest, unit: UnitOfWork,
                           context: Context) -> PaymentRequest:
    request = unit.find(command.request_id, PaymentRequest)
    if request is None or request.requester_wallet_id != command.requester_wallet_id:
        raise NotFound("payment request not found")
    request.cancel(now=context.clock())
    return request


@in_batch(ExpirePaymentRequest)
def expire_payment_request(command: ExpirePaymentRequest, unit: UnitOfWork,
                           context: Context) -> PaymentRequest:
    request = unit.get(command.request_id, PaymentRequest)
    request.expire(now=context.clock())
    return request


def _addressed_to(unit: UnitOfWork, request_id: UUID, payer_wallet_id: UUID) -> PaymentRequest:
    """The request, if it asks this wallet for money; to anyone else it does not exist."""
    request = unit.find(request_id, PaymentRequest)
    if request is None or request.payer_wallet_id != payer_wallet_id:
        raise NotFound("payment request not found")
    return request
