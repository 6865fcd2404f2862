"""Money flows: a handler declares who pays whom, and one mechanism books it.

A money command's handler looks up what it needs and answers with a `MoneyFlow`: the payer
and the payee (a wallet, or one of GoPay's own accounts), the amount, whether the tiers'
limits apply, whether the money moves now or when the order completes, and what the PSP
keeps. This module turns that declaration into one payment order and one balanced journal
entry, with the fee the schedule asks for and a `Debited`/`Credited` (or `Held`, then
`Captured`) event on every wallet involved. It also makes every money command idempotent
the same way, and records the same refusals the same way for every flow: a keyed request
that the ledger refuses leaves a failed order behind, so repeating the key repeats the
refusal instead of trying again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, ClassVar, TypeVar
from uuid import UUID, uuid4

from gopay.aggregates.errors import AccountFrozen, CurrencyMismatch, DomainError, InsufficientFunds
from gopay.aggregates.fees import Fee, FeePayer
from gopay.aggregates.fraud import FraudSuspected, Outcome, Review
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.commands.screening import Screening, screen, screening_probes
from gopay.group_commit import UnitOfWork

# Refusals the ledger decides (not input errors), recorded on the order of a keyed request.
RECORDED_REFUSALS: dict[str, type[DomainError]] = {
    error.code: error for error in (InsufficientFunds, AccountFrozen, LimitExceeded,
                                    FraudSuspected)
}

Party = Wallet | SystemAccount


@dataclass(frozen=True, kw_only=True)
class MoneyCommand(Command[PaymentOrder]):
    """What every money command carries: who asks, and what makes a repeat the same request."""

    caller_id: UUID
    idempotency_key: str | None = None
    fingerprint: str = ""

    # Where the request came from, for fraud screening: the signed-in device and the
    # country of the client's address (None when unknown).
    device_id: str | None = None
    client_country: str | None = None

    operation: ClassVar[str]  # names the operation in the order id a key derives
    screened: ClassVar[bool] = False  # someone paying out of their wallet: screened for fraud
    # Whether screening may hold it for review: not when the command also settles something
    # else at once (a QR code or a payment request is paid in the same batch), which a
    # rejection could not undo; such a payment is refused where another would be held.
    may_hold: ClassVar[bool] = True

    @cached_property
    def order_id(self) -> UUID:
        """Derived from the key, so a retry finds the same order; new for a command without one."""
        if self.idempotency_key is None:
            return uuid4()
        return order_id_for(self.caller_id, self.operation, self.idempotency_key)


@dataclass(frozen=True)
class MoneyFlow:
    """What a money command moves, from whom to whom, under which rules."""

    order_type: TransactionType
    money: Money
    payer: Party
    payee: Party
    reference: str = ""
    limits: bool = True  # the tiers' limits apply (people paying), not for corrections
    # The payee's tier caps what its wallet may hold: not for an account GoPay keeps for a
    # biller or an operator, which gathers many customers' payments until it is settled.
    payee_limits: bool = True
    # The money moves when the order completes (`complete`): a top-up once the PSP has
    # charged, a payout once it has paid. A paying wallet's money is held until then.
    deferred: bool = False
    # What the PSP keeps for its part (known when it answers): booked from the flow's GoPay
    # account (its clearing account) to GoPay's fees, a cost of the payment.
    psp_fee: Money | None = None
    # A claim on the paying wallet (a chargeback; deferred, a dispute): it gives (or holds)
    # what it has, frozen or not, and the rest is owed to this account.
    shortfall: SystemAccount | None = None
    charges_fee: bool = True  # GoPay's fee schedule applies (not to a chargeback, say)
    # The agent (payer or payee) who earns the schedule's commission for carrying the payment
    # out: paid from GoPay's fees account in the same entry, when the money moves.
    commission_to: Wallet | None = None


M = TypeVar("M", bound=MoneyCommand)
Declaration = Callable[[M, UnitOfWork, Context], MoneyFlow]


def money_flow(command_type: type[M]) -> Callable[[Declaration[M]], Declaration[M]]:
    """Register a money command whose handler declares its flow."""
    def register(declare: Declaration[M]) -> Declaration[M]:
        def move_money(command: M, unit: UnitOfWork, context: Context) -> PaymentOrder:
            return _move_money(command, unit, context, declare)

        probes = _screened_probes if command_type.screened else _own_order
        in_batch(command_type, probes=probes, answer=repeat_refusal)(move_money)
        return declare
    return register


def repeat_refusal(order: PaymentOrder) -> PaymentOrder:
    """The answer to a money command: its order, or the refusal its key recorded.

    Only an order refused when it was asked for (never planned) repeats as a refusal; a
    deferred order that failed later (the PSP declined a card for `insufficient_funds`, say)
    is answered as it stands, whatever its reason is called.
    """
    if (order.status == OrderStatus.FAILED and not order.planned_postings
            and order.failure_reason in RECORDED_REFUSALS):
        raise RECORDED_REFUSALS[order.failure_reason](order.failure_detail)
    return order


def complete(order: PaymentOrder, unit: UnitOfWork, *, psp_fee: Money | None = None) -> None:
    """Move the money of a deferred order now: the payer's hold is captured, the payee
    credited, the agent paid its planned commission, and the planned entry booked with what
    the PSP kept."""
    currency = order.currency
    planned, commission = _split_commission(order.planned_postings, currency)
    fees = SystemAccount.FEES.account_id(currency)
    fee = sum(p.amount for p in planned if p.account_id == fees)
    payer_fee = 0
    if order.payer_wallet_id is not None:
        payer = unit.get(order.payer_wallet_id, Wallet)
        # The plan says who pays the fee: the payer's leg carries it when the payer does (and
        # then it was held too); otherwise it comes out of what the payee receives. A claim's
        # plan (a dispute) may carry less than the amount: what the payer's wallet could hold,
        # the rest owed to the claim's shortfall account.
        paid = -sum(p.amount for p in planned if p.account_id == payer.id)
        covered = min(paid, order.amount)
        payer_fee = paid - covered
        if covered:
            payer.capture(Money(covered, currency), hold_id=order.id,
                          entry_type=order.order_type, counterparty=_other_side(order, payer.id),
                          reference=order.note)
        if payer_fee:
            payer.capture(Money(payer_fee, currency), hold_id=order.id,
                          entry_type=TransactionType.FEE, counterparty="fees", reference=order.note)
    if order.payee_wallet_id is not None:
        # The money has arrived (or left the payer): no limit can send it back now.
        payee = unit.get(order.payee_wallet_id, Wallet)
        payee.credit(Money(order.amount, currency), entry_id=order.id,
                     entry_type=order.order_type,
                     counterparty=_other_side(order, payee.id), reference=order.note)
        if fee - payer_fee:
            payee.pay_fee(Money(fee - payer_fee, currency), entry_id=order.id,
                          reference=order.note)
    if commission is not None:
        agent_id, earned = commission
        assert agent_id in (order.payer_wallet_id, order.payee_wallet_id), "an agent of the order"
        _pay_commission(unit.get(agent_id, Wallet), Money(earned, currency), order.id, order.note)
    costs = _psp_cost(_clearing_of(planned, currency), psp_fee)
    # Merged, one posting per account; unless that nets to nothing (a top-up whose GoPay fee
    # took all of it, and the PSP's the same again): then the legs as they are, since an
    # order that succeeds with no posting would book its plan instead.
    order.succeed(*(_merged([*order.planned_postings, *costs])
                    or [*order.planned_postings, *costs]))


def cancel(order: PaymentOrder, unit: UnitOfWork, *, reason: str, detail: str = "") -> None:
    """A deferred order that will not happen: a payer's held money is given back."""
    # (A claim's plan has no payer leg when the payer's wallet had nothing to hold.)
    if order.payer_wallet_id is not None and any(
            p.account_id == order.payer_wallet_id for p in order.planned_postings):
        unit.get(order.payer_wallet_id, Wallet).release(hold_id=order.id)
    order.fail(reason=reason, detail=detail)


def _own_order(command: MoneyCommand) -> tuple[UUID, ...]:
    return (command.order_id,)


def _screened_probes(command: MoneyCommand) -> tuple[UUID, ...]:
    # The device's activity and the rules may not exist yet: asked about with the order, in
    # the batch's one query, instead of one read each.
    return (command.order_id, *screening_probes(command))


def _move_money(command: M, unit: UnitOfWork, context: Context,
                declare: Declaration[M]) -> PaymentOrder:
    key = command.idempotency_key
    existing = repeat_of(unit, command.order_id, PaymentOrder, key,
                         lambda order: order.request_fingerprint == command.fingerprint)
    if existing is None and key is None:
        # Without a key the id is this command's own: found, it is this very command, whose
        # commit landed though its answer was lost (a failover), and now runs again.
        existing = unit.find(command.order_id, PaymentOrder)
    if existing is not None:
        return existing
    flow = declare(command, unit, context)
    order = PaymentOrder(id=command.order_id, order_type=flow.order_type,
                         initiated_by=command.caller_id,
                         payer_wallet_id=_wallet_id_of(flow.payer),
                         payee_wallet_id=_wallet_id_of(flow.payee), amount=flow.money.amount,
                         currency=flow.money.currency, note=flow.reference,
                         request_fingerprint=command.fingerprint)
    unit.add(order)
    screening = screen(command, flow, order.id, unit, context)
    try:
        if screening is not None and screening.verdict.outcome == Outcome.REFUSE:
            raise FraudSuspected("this payment looks like fraud and was refused: "
                                 + "; ".join(screening.verdict.reasons))
        if screening is not None and screening.verdict.outcome == Outcome.HOLD:
            _hold_for_review(command, flow, order, context, screening, unit)
        else:
            (_defer if flow.deferred else _post)(flow, order, context, screening)
    except tuple(RECORDED_REFUSALS.values()) as refusal:
        # A fraud refusal is recorded even without a key: every screening decision is an event.
        if key is None and not isinstance(refusal, FraudSuspected):
            raise
        unit.confirm_fresh()
        unit.rollback()
        order.fail(reason=refusal.code, detail=str(refusal))
        unit.add(order)
        if isinstance(refusal, FraudSuspected) and screening is not None:
            screening.refused().record(unit)
        return order
    if screening is not None:
        screening.record(unit)
    return order


def _hold_for_review(command: MoneyCommand, flow: MoneyFlow, order: PaymentOrder,
                     context: Context, screening: Screening, unit: UnitOfWork) -> None:
    """Hold the payer's money (and fee) with the entry planned, for a reviewer to decide:
    approving completes the order (`complete`), rejecting cancels it (`cancel`)."""
    if flow.deferred or not command.may_hold:
        # A deferred flow's outside work (a PSP call, say) is already on its way, and some
        # commands settle more than the payment: they cannot wait for a reviewer, so a
        # payment that would be held is refused instead.
        raise FraudSuspected("this payment needs a review and cannot wait for one: "
                             + "; ".join(screening.verdict.reasons))
    assert isinstance(flow.payer, Wallet), "only payments out of a wallet are screened"
    _defer(flow, order, context, screening)
    unit.add(Review(id=Review.id_for(order.id), order_id=order.id, sender_wallet_id=flow.payer.id,
                    amount=flow.money.amount, currency=flow.money.currency,
                    score=screening.verdict.score, reasons=screening.verdict.reasons,
                    sender_activity=screening.sender_activity))


def _post(flow: MoneyFlow, order: PaymentOrder, context: Context,
          screening: Screening | None = None) -> None:
    """Move the money now: one journal entry, and the wallets' lines with their fees (a
    screened payment on the payer's line, which is where screening counts it)."""
    fee = context.fees.fee_for(flow.order_type, flow.money) if flow.charges_fee else None
    commission = _commission(flow, context)
    payer, payee = flow.payer, flow.payee
    taken = flow.money
    if isinstance(payer, Wallet) and flow.shortfall is not None:
        recovered = payer.recover(flow.money, entry_id=order.id, entry_type=flow.order_type,
                                  counterparty=_name(payee), reference=flow.reference)
        taken = recovered or Money(0, flow.money.currency)
    elif isinstance(payer, Wallet):
        payer.debit(flow.money, entry_id=order.id, entry_type=flow.order_type,
                    counterparty=_name(payee), reference=flow.reference, on=context.today(),
                    limits=context.limits[payer.tier] if flow.limits else None,
                    **_made(screening))
        if fee and fee.paid_by == FeePayer.PAYER:
            payer.pay_fee(fee.money, entry_id=order.id, reference=flow.reference)
    if isinstance(payee, Wallet):
        payee.credit(flow.money, entry_id=order.id, entry_type=flow.order_type,
                     counterparty=_name(payer), reference=flow.reference,
                     limits=context.limits[payee.tier] if flow.limits and flow.payee_limits
                     else None)
        if fee and fee.paid_by == FeePayer.PAYEE:
            payee.pay_fee(fee.money, entry_id=order.id, reference=flow.reference)
    if commission is not None and flow.commission_to is not None:
        _pay_commission(flow.commission_to, commission, order.id, flow.reference)
    postings = _entry(flow, fee, commission)
    if flow.shortfall is not None and taken != flow.money:
        owed = flow.money.amount - taken.amount
        postings += [Posting(_account_id(payer, order.currency), owed, order.currency),
                     Posting(flow.shortfall.account_id(order.currency), -owed, order.currency)]
    clearing = payee if isinstance(payee, SystemAccount) else payer
    if isinstance(clearing, SystemAccount):
        postings += _psp_cost(clearing.account_id(order.currency), flow.psp_fee)
    order.succeed(*_merged(postings))


def _defer(flow: MoneyFlow, order: PaymentOrder, context: Context,
           screening: Screening | None = None) -> None:
    """Plan the entry; reserve a paying wallet's money (and fee, counting a screened payment
    as made); check a wallet payee can take it. Completing the order books the plan."""
    fee = context.fees.fee_for(flow.order_type, flow.money) if flow.charges_fee else None
    if fee and not isinstance(flow.payer, Wallet):
        # Money from outside (a card a top-up charges) brings the amount and no more: the
        # receiving wallet pays the fee out of it, as `complete` books it.
        fee = replace(fee, paid_by=FeePayer.PAYEE)
    if isinstance(flow.payer, Wallet) and flow.shortfall is None:
        flow.payer.hold(flow.money, hold_id=order.id, entry_type=flow.order_type,
                        on=context.today(),
                        limits=context.limits[flow.payer.tier] if flow.limits else None,
                        fee=fee.money if fee and fee.paid_by == FeePayer.PAYER else None,
                        counterparty=_name(flow.payee), **_made(screening))
    if isinstance(flow.payee, Wallet) and flow.payee.currency != flow.money.currency:
        # Refused now, not when the order completes and the money cannot arrive.
        raise CurrencyMismatch(f"the receiving wallet holds {flow.payee.currency}, "
                               f"not {flow.money.currency}")
    if isinstance(flow.payer, Wallet) and flow.shortfall is not None:
        _hold_claim(flow, flow.payer, flow.shortfall, order)
        return
    if isinstance(flow.payee, Wallet) and flow.limits and flow.payee_limits:
        limit = context.limits[flow.payee.tier].max_balance
        if flow.payee.balance + flow.money.amount > limit:
            raise LimitExceeded(f"the receiving wallet cannot hold that much (its limit is {limit})")
    order.plan(*_entry(flow, fee, _commission(flow, context)))


def _hold_claim(flow: MoneyFlow, payer: Wallet, shortfall: SystemAccount,
                order: PaymentOrder) -> None:
    """A deferred claim on a wallet (a dispute): it holds what it has, frozen or not, and the
    plan owes the rest to `shortfall`, so completing it gives the payee all of the amount."""
    held = payer.hold_back(flow.money, hold_id=order.id, entry_type=flow.order_type)
    owed = flow.money.amount - (held.amount if held else 0)
    currency = flow.money.currency
    order.plan(*_merged([*_entry(flow, None), Posting(payer.id, owed, currency),
                         Posting(shortfall.account_id(currency), -owed, currency)]))


def _commission(flow: MoneyFlow, context: Context) -> Money | None:
    """What the flow's agent earns, if it names one and the schedule pays one."""
    if flow.commission_to is None:
        return None
    assert flow.commission_to in (flow.payer, flow.payee), "the agent is a party to the payment"
    return context.fees.commission_for(flow.order_type, flow.money)


def _pay_commission(agent: Wallet, commission: Money, entry_id: UUID, reference: str) -> None:
    """The agent's commission line: earned, so no limit sends it back."""
    agent.credit(commission, entry_id=entry_id, entry_type=TransactionType.COMMISSION,
                 counterparty=SystemAccount.FEES.value, reference=reference)


def _entry(flow: MoneyFlow, fee: Fee | None, commission: Money | None = None) -> list[Posting]:
    """The journal entry of a flow: payer out, payee in, the fee to GoPay's fees account,
    and last the commission from the fees account to the agent (two legs of their own, so
    that a plan keeps it apart: `_split_commission`)."""
    amount, currency = flow.money.amount, flow.money.currency
    payer_pays = payee_keeps = amount
    postings = []
    if fee:
        if fee.paid_by == FeePayer.PAYER:
            payer_pays += fee.money.amount
        else:
            payee_keeps -= fee.money.amount
        postings.append(Posting(SystemAccount.FEES.account_id(currency), fee.money.amount, currency))
    postings.insert(0, Posting(_account_id(flow.payer, currency), -payer_pays, currency))
    if payee_keeps:
        postings.insert(1, Posting(_account_id(flow.payee, currency), payee_keeps, currency))
    if commission is not None and flow.commission_to is not None:
        postings += [Posting(SystemAccount.FEES.account_id(currency), -commission.amount, currency),
                     Posting(flow.commission_to.id, commission.amount, currency)]
    return postings


def _split_commission(planned: tuple[Posting, ...], currency: str
                      ) -> tuple[tuple[Posting, ...], tuple[UUID, int] | None]:
    """A plan's legs without its commission, and the commission: the agent's wallet and what
    it earns. A plan pays out of the fees account only for a commission (`_entry`)."""
    fees = SystemAccount.FEES.account_id(currency)
    for n, posting in enumerate(planned[:-1]):
        if posting.account_id == fees and posting.amount < 0:
            return planned[:n] + planned[n + 2:], (planned[n + 1].account_id, -posting.amount)
    return planned, None


def _psp_cost(clearing: UUID | None, psp_fee: Money | None) -> list[Posting]:
    """What the PSP kept: out of its clearing account, into GoPay's fees as a cost."""
    if clearing is None or psp_fee is None or not psp_fee.amount:
        return []
    fees = SystemAccount.FEES.account_id(psp_fee.currency)
    return [Posting(clearing, psp_fee.amount, psp_fee.currency),
            Posting(fees, -psp_fee.amount, psp_fee.currency)]


def _merged(postings: list[Posting]) -> list[Posting]:
    """One posting per account and currency, in the order they first appear; none of zero."""
    totals: dict[tuple[UUID, str], int] = {}
    for posting in postings:
        key = (posting.account_id, posting.currency)
        totals[key] = totals.get(key, 0) + posting.amount
    return [Posting(account, amount, currency)
            for (account, currency), amount in totals.items() if amount]


def _account_id(party: Party, currency: str) -> UUID:
    return party.id if isinstance(party, Wallet) else party.account_id(currency)


def _made(screening: Screening | None) -> dict[str, Any]:
    """When, and from which device, the payer made a screened payment, for their wallet."""
    if screening is None:
        return {"made_at": None, "device": None}
    return {"made_at": screening.at, "device": screening.payment.device}


def _wallet_id_of(party: Party) -> UUID | None:
    return party.id if isinstance(party, Wallet) else None


def _name(party: Party) -> str:
    """How a wallet's history names the other side: a wallet id, or a GoPay account."""
    return str(party.id) if isinstance(party, Wallet) else party.value


def _other_side(order: PaymentOrder, wallet_id: UUID) -> str:
    """The other party of a deferred order, as a wallet's history names it."""
    for other in (order.payer_wallet_id, order.payee_wallet_id):
        if other is not None and other != wallet_id:
            return str(other)
    clearing = _clearing_of(order.planned_postings, order.currency)
    return next((account.value for account in SystemAccount
                 if account.account_id(order.currency) == clearing), "")


def _clearing_of(postings: tuple[Posting, ...], currency: str) -> UUID | None:
    """The GoPay account (other than fees) an entry moves money through, if any."""
    system = {account.account_id(currency) for account in SystemAccount} - {
        SystemAccount.FEES.account_id(currency)}
    return next((p.account_id for p in postings if p.account_id in system), None)
