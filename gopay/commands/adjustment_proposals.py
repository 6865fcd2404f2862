"""Maker-checker adjustments: one staff member proposes a ledger entry, another approves it.

Approving applies the entry in the same commit as the approval, so it is booked exactly
once: a second approval (even one racing the first) finds the proposal applied. Nobody
approves their own proposal (403); its proposer may withdraw it (reject).

Which accounts an entry may move money between, in either direction:

- a wallet and `adjustments`: a customer's balance corrected, at GoPay's gain or loss;
- a wallet and `suspense`: money held in suspense found to be a customer's (or owed by one);
- `suspense` and `adjustments`: a difference nobody can explain, written off;
- `suspense` and `fees`: a PSP fee difference accepted as a cost (or a fee refunded);
- `receivables` and `adjustments`: a customer's debt (an uncovered chargeback) written off.

The clearing accounts follow the PSP's files and change only through reconciliation
(`gopay.commands.reconciliation`); a wallet never pays another wallet by adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from uuid import UUID, uuid4, uuid5

from gopay.aggregates.adjustment_proposal import AdjustmentProposal
from gopay.aggregates.errors import CurrencyMismatch, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE, SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.adjustment import Direction
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, Party, money_flow
from gopay.group_commit import UnitOfWork

WALLET = "wallet"
SYSTEM_ACCOUNTS = frozenset(account.value for account in SystemAccount)
PAIRS = frozenset({
    frozenset({WALLET, SystemAccount.ADJUSTMENTS.value}),
    frozenset({WALLET, SystemAccount.SUSPENSE.value}),
    frozenset({SystemAccount.SUSPENSE.value, SystemAccount.ADJUSTMENTS.value}),
    frozenset({SystemAccount.SUSPENSE.value, SystemAccount.FEES.value}),
    frozenset({SystemAccount.RECEIVABLES.value, SystemAccount.ADJUSTMENTS.value}),
})


@dataclass(frozen=True, kw_only=True)
class ProposeAdjustment(Command[AdjustmentProposal]):
    """Propose moving `money` into (credit) or out of (debit) `account`, against `counter_account`."""

    staff_id: UUID
    account: str  # a wallet id, or a GoPay account's name (suspense, ...)
    direction: Direction
    money: Money
    reason: str
    counter_account: str = SystemAccount.ADJUSTMENTS.value
    idempotency_key: str | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValidationFailed("an adjustment needs a reason")
        if self.money.amount <= 0:
            raise ValidationFailed("amount must be greater than zero")

    @cached_property
    def proposal_id(self) -> UUID:
        """Derived from the key, so a repeated request finds its proposal."""
        if self.idempotency_key is None:
            return uuid4()
        return uuid5(LEDGER_NAMESPACE,
                     f"adjustment-proposal/{self.staff_id}/{self.idempotency_key}")


@dataclass(frozen=True, kw_only=True)
class ApproveAdjustment(MoneyCommand):
    """The checker (`caller_id`) approves: the entry is booked now."""

    operation = "adjustment_proposal"
    proposal_id: UUID


@dataclass(frozen=True, kw_only=True)
class RejectAdjustment(Command[AdjustmentProposal]):
    staff_id: UUID
    proposal_id: UUID
    reason: str = ""


@in_batch(ProposeAdjustment, probes=lambda command: (
    (command.proposal_id,) if command.idempotency_key is not None else ()))
def propose_adjustment(command: ProposeAdjustment, unit: UnitOfWork,
                       context: Context) -> AdjustmentProposal:
    existing = repeat_of(unit, command.proposal_id, AdjustmentProposal, command.idempotency_key,
                         lambda proposal: proposal.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    accounts = (command.account, command.counter_account)
    if frozenset(_kind(account) for account in accounts) not in PAIRS:
        raise ValidationFailed(f"an adjustment cannot move money between {command.account} "
                               f"and {command.counter_account}")
    for account in accounts:
        _party(unit, account, command.money)  # it exists, in this currency
    proposal = AdjustmentProposal(
        id=command.proposal_id, account=_canonical(command.account),
        counter_account=_canonical(command.counter_account), direction=command.direction.value,
        amount=command.money.amount, currency=command.money.currency, reason=command.reason,
        proposed_by=command.staff_id, request_fingerprint=command.fingerprint)
    unit.add(proposal)
    return proposal


@money_flow(ApproveAdjustment)
def approve_adjustment(command: ApproveAdjustment, unit: UnitOfWork, context: Context) -> MoneyFlow:
    proposal = unit.get(command.proposal_id, AdjustmentProposal)
    proposal.apply(by=command.caller_id, order_id=command.order_id)
    money = Money(proposal.amount, proposal.currency)
    account = _party(unit, proposal.account, money)
    counter = _party(unit, proposal.counter_account, money)
    payer, payee = (counter, account) if proposal.direction == Direction.CREDIT else (account, counter)
    # A correction: no tier limit applies, and no fee is charged on it.
    return MoneyFlow(TransactionType.ADJUSTMENT, money, payer=payer, payee=payee,
                     reference=proposal.reason, limits=False, charges_fee=False)


@in_batch(RejectAdjustment)
def reject_adjustment(command: RejectAdjustment, unit: UnitOfWork,
                      context: Context) -> AdjustmentProposal:
    proposal = unit.get(command.proposal_id, AdjustmentProposal)
    proposal.reject(by=command.staff_id, reason=command.reason)
    return proposal


def _kind(account: str) -> str:
    """`wallet` for a wallet id, else the GoPay account's name; anything else is refused."""
    if account in SYSTEM_ACCOUNTS:
        return account
    try:
        UUID(account)
    except ValueError:
        raise ValidationFailed(f"{account!r} is neither a wallet id nor one of GoPay's accounts "
                               f"({', '.join(SystemAccount)})") from None
    return WALLET


def _canonical(account: str) -> str:
    return account if _kind(account) != WALLET else str(UUID(account))


def _party(unit: UnitOfWork, account: str, money: Money) -> Party:
    if _kind(account) != WALLET:
        return SystemAccount(account)
    wallet = unit.find(UUID(account), Wallet)
    if wallet is None:
        raise ValidationFailed(f"there is no wallet {account}")
    if wallet.currency != money.currency:
        raise CurrencyMismatch(f"wallet {account} holds {wallet.currency}, not {money.currency}")
    return wallet
