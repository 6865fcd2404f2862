"""Cash-outs: the customer's money is held for an agent, who pays it in cash against a one-time code.

Asking for a cash-out is a deferred money flow from the customer's wallet to the agent's,
with a `CashOut` beside it; the agent's entry of the right code completes it (the hold
captured, the agent's float credited, its commission paid), a wrong one counts against it.

The code is never stored. Its secret digits are derived from the cash-out's id under a key
derived from the customer's data key, so that the answer to a repeated request (same
Idempotency-Key) can show the same code again; the cash-out keeps a keyed digest to check
an entry against. A wrong entry is recorded before it is refused (the `answer` of the
handler raises it once the batch is durable), so guesses cannot be retried for free.

After `attempts` wrong codes the cash-out is cancelled and the money released at once, as a
mobile-money voucher is: a code that is being guessed at must die, and the customer, who
still has the phone, asks for a new one in seconds. Locking it instead would keep the
customer's money out of reach for nothing the customer did.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from uuid import UUID

from gopay.aggregates.cash_out import (
    CODE_LENGTH,
    SECRET_DIGITS,
    SLOT_DIGITS,
    CashOut,
    CashOutSlot,
    CashOutStatus,
    CodeEntry,
    WrongCode,
)
from gopay.aggregates.errors import AccountFrozen, DomainError, InvalidState, NotFound, ValidationFailed
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.cash_ins import at_agent, signed_in_agent
from gopay.commands.idempotency import repeat_of
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, cancel, complete, money_flow
from gopay.commands.recipients import agent_wallet
from gopay.group_commit import UnitOfWork

SLOTS = 10**SLOT_DIGITS
# Slots tried at random for a new cash-out before the agent counts as too busy: with 10,000
# slots, even an agent with 2,000 codes waiting finds a free one at once.
SLOT_TRIES = 32


@dataclass(frozen=True, kw_only=True)
class RequestCashOut(MoneyCommand):
    """Hold `money` of the customer's wallet for the agent `agent_id`, whose code lasts
    `valid_for` and survives `attempts` wrong guesses."""

    operation = "cash-out"
    screened = True
    wallet_id: UUID
    agent_id: UUID
    money: Money
    valid_for: timedelta = timedelta(minutes=15)
    attempts: int = 3


@dataclass(frozen=True, kw_only=True)
class ConfirmCashOut(Command["CodeAnswer"]):
    """The agent (caller) enters the code the customer shows: right, the cash-out is paid."""

    agent_id: UUID
    code: str
    idempotency_key: str | None = None

    @cached_property
    def entry_id(self) -> UUID:
        assert self.idempotency_key is not None, "only a keyed entry is kept"
        return order_id_for(self.agent_id, "cash-out-code-entry", self.idempotency_key)


@dataclass(frozen=True, kw_only=True)
class CancelCashOut(Command[CashOut]):
    """The customer calls a pending cash-out off: the money is released."""

    customer_wallet_id: UUID
    order_id: UUID


@dataclass(frozen=True, kw_only=True)
class ExpireCashOut(Command[CashOut]):
    """Release a cash-out whose code has expired (the scheduler does, when it is due)."""

    order_id: UUID


@dataclass(frozen=True)
class CodeAnswer:
    """What an entry did to the cash-out, and the refusal to answer once that is saved."""

    cash_out: CashOut
    refusal: DomainError | None = None


def code_of(context: Context, cash_out: CashOut) -> str:
    """The cash-out's code, as the customer is shown it: its slot, then its secret."""
    return f"{cash_out.slot:0{SLOT_DIGITS}d}" + _secret(context, cash_out.customer_id,
                                                       cash_out.order_id, cash_out.slot)


@money_flow(RequestCashOut)
def request_cash_out(command: RequestCashOut, unit: UnitOfWork, context: Context) -> MoneyFlow:
    if command.attempts < 1 or command.valid_for <= timedelta(0):
        raise ValidationFailed("a code needs a lifetime and at least one try")
    customer = unit.get(command.wallet_id, Wallet)
    agent = agent_wallet(unit, command.agent_id)
    if agent.id == customer.id:
        raise ValidationFailed("an agent does not cash out at itself")
    order_id = command.order_id
    slot = _claim_slot(unit, agent.id, order_id)
    secret = _secret(context, customer.owner_id, order_id, slot)
    unit.add(CashOut(id=CashOut.id_for(order_id), order_id=order_id,
                     customer_id=customer.owner_id, customer_wallet_id=customer.id,
                     agent_id=command.agent_id, agent_wallet_id=agent.id,
                     amount=command.money.amount, currency=command.money.currency, slot=slot,
                     code_digest=_digest(context, customer.owner_id, order_id, secret),
                     expires_at=(context.clock() + command.valid_for).isoformat(),
                     attempts_allowed=command.attempts))
    return MoneyFlow(TransactionType.CASH_OUT, command.money, payer=customer, payee=agent,
                     reference=at_agent(command.agent_id), deferred=True, commission_to=agent)


def _answer_entry(answer: CodeAnswer) -> CodeAnswer:
    """Once the entry is saved: the refusal it recorded, if any."""
    if answer.refusal is not None:
        raise answer.refusal
    return answer


def _own_entry(command: ConfirmCashOut) -> tuple[UUID, ...]:
    return (command.entry_id,) if command.idempotency_key is not None else ()


@in_batch(ConfirmCashOut, probes=_own_entry, answer=_answer_entry)
def confirm_cash_out(command: ConfirmCashOut, unit: UnitOfWork, context: Context) -> CodeAnswer:
    key = command.idempotency_key
    fingerprint = context.vault.digest(command.agent_id, "cash-out-code-entry", command.code)
    entry = repeat_of(unit, command.entry_id, CodeEntry, key,
                      lambda e: e.fingerprint == fingerprint) if key is not None else None
    if entry is not None:
        return CodeAnswer(unit.get(CashOut.id_for(entry.order_id), CashOut), _refusal_of(entry))
    agent = signed_in_agent(unit, command.agent_id)
    slot, secret = _parts(command.code)
    found = unit.find(CashOutSlot.id_for(agent.id, slot), CashOutSlot)
    if found is None:
        raise NotFound("no cash-out has this code")
    cash_out = unit.get(CashOut.id_for(found.order_id), CashOut)
    order = unit.get(cash_out.order_id, PaymentOrder)
    right = cash_out.accepts(_digest(context, cash_out.customer_id, cash_out.order_id, secret))
    if cash_out.status == CashOutStatus.PENDING and cash_out.expired_at(context.clock()):
        _end(unit, cash_out, order, CashOutStatus.EXPIRED, "expired")
    refusal: DomainError | None = None
    if cash_out.status != CashOutStatus.PENDING:
        if not right:  # a wrong code for a cash-out that is over names nothing
            raise NotFound("no cash-out has this code")
        if cash_out.status == CashOutStatus.SUCCEEDED:
            raise InvalidState("this code was used already: the cash-out is paid")
        refusal = InvalidState(f"this code no longer works: the cash-out {cash_out.status} "
                               "and the money went back to the customer")
    elif not right:
        cash_out.enter_wrong_code()
        refusal = _wrong_code(unit, cash_out, order)
    else:
        if unit.get(cash_out.customer_wallet_id, Wallet).frozen:
            raise AccountFrozen("the customer's wallet is frozen: it cannot cash out")
        complete(order, unit)
        cash_out.confirm(by=command.agent_id)
    if key is not None:
        unit.add(CodeEntry(id=command.entry_id, fingerprint=fingerprint,
                           order_id=cash_out.order_id,
                           refusal=refusal.code if refusal else None,
                           detail=str(refusal) if refusal else "",
                           attempts_left=cash_out.attempts_left))
    return CodeAnswer(cash_out, refusal)


@in_batch(CancelCashOut)
def cancel_cash_out(command: CancelCashOut, unit: UnitOfWork, context: Context) -> CashOut:
    cash_out = unit.find(CashOut.id_for(command.order_id), CashOut)
    if cash_out is None or cash_out.customer_wallet_id != command.customer_wallet_id:
        raise NotFound("cash-out not found")
    if cash_out.status == CashOutStatus.CANCELLED and cash_out.reason == "cancelled_by_customer":
        return cash_out  # cancelled already: the same request again
    _end(unit, cash_out, unit.get(cash_out.order_id, PaymentOrder), CashOutStatus.CANCELLED,
         "cancelled_by_customer")
    return cash_out


@in_batch(ExpireCashOut)
def expire_cash_out(command: ExpireCashOut, unit: UnitOfWork, context: Context) -> CashOut:
    cash_out = unit.get(CashOut.id_for(command.order_id), CashOut)
    if cash_out.status == CashOutStatus.PENDING and cash_out.expired_at(context.clock()):
        _end(unit, cash_out, unit.get(cash_out.order_id, PaymentOrder), CashOutStatus.EXPIRED,
             "expired")
    return cash_out


def _refusal_of(entry: CodeEntry) -> DomainError | None:
    """The refusal a keyed entry was answered with, to answer its repeat the same way."""
    if entry.refusal == WrongCode.code:
        return WrongCode(entry.detail, attempts_left=entry.attempts_left)
    return InvalidState(entry.detail) if entry.refusal else None


def _wrong_code(unit: UnitOfWork, cash_out: CashOut, order: PaymentOrder) -> WrongCode:
    """The refusal of a wrong guess, once it is counted; the last one ends the cash-out."""
    left = cash_out.attempts_left
    if left:
        return WrongCode(f"wrong code: {left} {'try' if left == 1 else 'tries'} left",
                         attempts_left=left)
    _end(unit, cash_out, order, CashOutStatus.CANCELLED, "too_many_wrong_codes")
    return WrongCode("wrong code, and that was the last try: the cash-out is cancelled and the "
                     "money went back to the customer", attempts_left=0)


def _end(unit: UnitOfWork, cash_out: CashOut, order: PaymentOrder, status: CashOutStatus,
         reason: str) -> None:
    """The cash-out will not be paid: its code stops working and the held money is released."""
    cash_out.end(status, reason=reason)
    cancel(order, unit, reason=reason, detail=f"the cash-out {status}")


def _claim_slot(unit: UnitOfWork, agent_wallet_id: UUID, order_id: UUID) -> int:
    """A slot of the agent's with no pending cash-out, now this one's."""
    for _ in range(SLOT_TRIES):
        number = secrets.randbelow(SLOTS)
        slot_id = CashOutSlot.id_for(agent_wallet_id, number)
        slot = unit.find(slot_id, CashOutSlot)
        if slot is None:
            unit.add(CashOutSlot(id=slot_id, order_id=order_id))
            return number
        holder = unit.find(CashOut.id_for(slot.order_id), CashOut)
        if holder is None or holder.status != CashOutStatus.PENDING:
            slot.take(order_id)
            return number
    raise InvalidState("this agent has too many cash-outs waiting: try again in a few minutes")


def _parts(code: str) -> tuple[int, str]:
    """A code's slot and secret digits."""
    code = code.replace(" ", "").replace("-", "")
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isdigit():
        raise ValidationFailed(f"a cash-out code is {CODE_LENGTH} digits")
    return int(code[:SLOT_DIGITS]), code[SLOT_DIGITS:]


def _secret(context: Context, customer_id: UUID, order_id: UUID, slot: int) -> str:
    """The secret digits of a code: derived, never stored, unguessable without GoPay's keys."""
    key = context.app.data_keys.derive(customer_id, "cash-out-code")
    mac = hmac.new(key, f"{order_id}/{slot}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(mac[:8], 'big') % 10**SECRET_DIGITS:0{SECRET_DIGITS}d}"


def _digest(context: Context, customer_id: UUID, order_id: UUID, secret: str) -> str:
    """What the cash-out keeps of its code: a digest under a key of the customer's."""
    return context.vault.digest(customer_id, "cash-out-code", f"{order_id}/{secret}")
