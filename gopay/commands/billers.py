"""Billers: staff set one up with its payable account, and name the bank account it is settled to.

A biller's bank account is a payment method owned by the biller, its IBAN sealed in the vault
as a customer's is, so settling a biller is a payout like any other (`gopay.commands.
biller_settlements`). The IBAN goes into the vault before the biller's events are saved:
a crash in between leaves at worst a sealed row nothing refers to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4, uuid5

from gopay.aggregates import instruments
from gopay.aggregates.biller import Biller
from gopay.aggregates.errors import DomainError, NotFound, ValidationFailed
from gopay.aggregates.instruments import Instrument
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, Outcome, procedure
from gopay.commands.idempotency import repeat_of
from gopay.commands.payment_methods import FINGERPRINT
from gopay.commands.psp_outcomes import shown
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True)
class BankAccountDetails:
    """An IBAN and the name of the account's holder, as staff typed them."""

    iban: str = field(repr=False)  # never in a log line
    holder_name: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class CreateBiller(Command[Biller]):
    """Set up a biller and its payable account (and, if given, the bank account it is settled to)."""

    staff_id: UUID
    name: str
    category: str
    currency: str = "USD"
    bank_account: BankAccountDetails | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""  # of the request, its bank account left out

    def __post_init__(self) -> None:
        if not (self.name.strip() and self.category.strip()):
            raise ValidationFailed("a biller needs a name and a category")
        Money(0, self.currency)  # a currency GoPay holds


@dataclass(frozen=True, kw_only=True)
class SetBillerBankAccount(Command[Biller]):
    """Settle the biller to this bank account from now on (the same account again changes nothing)."""

    staff_id: UUID
    biller_id: UUID
    bank_account: BankAccountDetails


@procedure(CreateBiller)
def create_biller(command: CreateBiller, context: Context) -> Outcome[Biller]:
    key = command.idempotency_key
    biller_id = Biller.id_for(command.staff_id, key) if key else uuid4()
    # Derived from the biller: a retry vaults its IBAN under the same method, not a second one.
    method_id = uuid5(LEDGER_NAMESPACE, f"biller-bank-account/{biller_id}")
    account = (_vault(context, biller_id, method_id, command.bank_account)
               if command.bank_account else None)
    # The account by its keyed fingerprint: a plain digest of a request would be one of the IBAN.
    request = f"{command.fingerprint}/{account[1] if account else ''}"

    def set_up(unit: UnitOfWork) -> Biller:
        existing = repeat_of(unit, biller_id, Biller, key,
                             lambda biller: biller.request_fingerprint == request)
        if existing is not None:
            return existing
        payable = Wallet(owner_id=biller_id, currency=command.currency)
        biller = Biller(id=biller_id, name=command.name.strip(),
                        category=command.category.strip(), currency=command.currency,
                        wallet_id=payable.id, created_by=command.staff_id,
                        request_fingerprint=request)
        unit.add(payable, biller)
        if account is not None:
            method = _bank_account(biller_id, method_id, *account)
            unit.add(method)
            biller.set_bank_account(method.id, shown(method), by=command.staff_id)
        return biller

    try:
        return context.commit(set_up, probes=(biller_id,) if key else ())
    except DomainError:
        saved = context.app.find(method_id, PaymentMethod)
        if account is not None and (saved is None or saved.fingerprint != account[1]):
            context.vault.discard(method_id, account[1])  # refused: keep no IBAN for it
        raise


@procedure(SetBillerBankAccount)
def set_biller_bank_account(command: SetBillerBankAccount, context: Context) -> Outcome[Biller]:
    if context.app.find(command.biller_id, Biller) is None:
        raise NotFound("biller not found")
    method_id = uuid4()
    instrument, fingerprint = _vault(context, command.biller_id, method_id, command.bank_account)
    replaced: list[UUID] = []

    def change(unit: UnitOfWork) -> Biller:
        replaced.clear()
        biller = unit.get(command.biller_id, Biller)
        current = (unit.find(biller.bank_account_id, PaymentMethod)
                   if biller.bank_account_id else None)
        if current is not None and current.fingerprint == fingerprint:
            return biller  # the account it is settled to already
        method = _bank_account(biller.id, method_id, instrument, fingerprint)
        unit.add(method)
        if current is not None:
            current.remove()
            replaced.append(current.id)
        biller.set_bank_account(method.id, shown(method), by=command.staff_id)
        return biller

    try:
        outcome = context.commit(change)
    except BaseException:
        context.vault.discard(method_id)
        raise
    if outcome.value.bank_account_id != method_id:
        context.vault.discard(method_id)  # nothing changed: keep no second copy
    for old in replaced:
        context.vault.discard(old)
    return outcome


def _vault(context: Context, biller_id: UUID, method_id: UUID,
           details: BankAccountDetails) -> tuple[Instrument, str]:
    """Check the IBAN and seal it under the biller's key; the account and its fingerprint."""
    instrument = instruments.bank_account(details.iban, details.holder_name)
    fingerprint = context.vault.digest(biller_id, FINGERPRINT, instrument.identity)
    context.app.data_keys.ensure(method_id)  # the holder's name is sealed under it
    context.vault.keep(biller_id, method_id, fingerprint, instrument.secret)
    return instrument, fingerprint


def _bank_account(biller_id: UUID, method_id: UUID, instrument: Instrument,
                  fingerprint: str) -> PaymentMethod:
    return PaymentMethod(id=method_id, owner_id=biller_id, method_type=instrument.kind,
                         details=instrument.details, holder_name=instrument.holder_name,
                         fingerprint=fingerprint, request_digest=None)
