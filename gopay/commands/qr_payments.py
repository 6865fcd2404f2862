"""QR payments: a merchant makes a QR code, a person pays it from their wallet.

The code's terms travel in its signed payload (`gopay.security.qr_codes`), which the API
checks before a payment reaches this module: a payment needs nothing but those terms, so
an open-amount code (a sticker at the till) is paid by many people without contention. A
fixed-amount code (a checkout) is paid once: the payment records itself on the code in its
own commit, so when many try together exactly one succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.qr_code import QrCode, QrTerms
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.merchants import merchant
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork

# A fixed-amount code is a checkout: it expires soon unless the merchant says otherwise.
# An open-amount code without `expires_in` is a sticker at the till and never expires.
FIXED_AMOUNT_LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True, kw_only=True)
class CreateQrCode(Command[QrCode]):
    """A merchant's QR code: for `amount` (or any amount the payer enters), until `expires_in`."""

    merchant_id: UUID
    amount: int | None = None
    reference: str = ""
    expires_in: timedelta | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""


@dataclass(frozen=True, kw_only=True)
class PayQrCode(MoneyCommand):
    """Pay the QR code whose (already verified) terms are `terms`, from the payer's wallet."""

    operation = "qr_payment"
    screened = True
    may_hold = False
    payer_wallet_id: UUID
    terms: QrTerms
    amount: int | None = None  # only for an open-amount code


@in_batch(CreateQrCode, probes=lambda command: (
        (QrCode.id_for(command.merchant_id, command.idempotency_key),)
        if command.idempotency_key else ()))
def create_qr_code(command: CreateQrCode, unit: UnitOfWork, context: Context) -> QrCode:
    qr_id = (QrCode.id_for(command.merchant_id, command.idempotency_key)
             if command.idempotency_key else uuid4())
    existing = repeat_of(unit, qr_id, QrCode, command.idempotency_key,
                         lambda code: code.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    owner = merchant(unit, command.merchant_id)
    assert owner.wallet_id is not None
    wallet = unit.get(owner.wallet_id, Wallet)
    if command.amount is not None:
        Money.positive(command.amount, wallet.currency)
    lifetime = command.expires_in or (FIXED_AMOUNT_LIFETIME if command.amount is not None else None)
    if lifetime is not None and lifetime < timedelta(seconds=1):
        raise ValidationFailed("expires_in must be at least one second")
    code = QrCode(id=qr_id, merchant_id=owner.id, wallet_id=wallet.id, amount=command.amount,
                  currency=wallet.currency, reference=command.reference,
                  expires_at=_whole_seconds(context.clock() + lifetime) if lifetime else None,
                  request_fingerprint=command.fingerprint)
    unit.add(code)
    return code


@money_flow(PayQrCode)
def pay_qr_code(command: PayQrCode, unit: UnitOfWork, context: Context) -> MoneyFlow:
    terms = command.terms
    terms.check_open(context.clock())
    money = Money.positive(terms.amount_to_pay(command.amount), terms.currency)
    payer = unit.get(command.payer_wallet_id, Wallet)
    payee = unit.get(terms.merchant_wallet_id, Wallet)
    if payee.id == payer.id:
        raise ValidationFailed("you cannot pay your own QR code")
    if terms.fixed:
        unit.get(terms.qr_id, QrCode).pay(payment_id=command.order_id, payer_wallet_id=payer.id)
    return MoneyFlow(TransactionType.QR_PAYMENT, money, payer=payer, payee=payee,
                     reference=terms.reference)


def _whole_seconds(moment: datetime) -> str:
    """An expiry the payload can carry exactly (it counts whole seconds), never earlier than asked."""
    rounded = moment.replace(microsecond=0)
    return (rounded + timedelta(seconds=1) if rounded < moment else rounded).isoformat()
