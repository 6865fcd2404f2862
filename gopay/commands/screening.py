"""Fraud screening of an outgoing payment, inside the command that moves its money.

`money_flow` asks `screen` about every command that says it is `screened` (people paying
out of their wallet). The rules read the sender's payments from their wallet (and the
device's from its `Activity`) in the same unit of work the payment is booked in, so the
group commit serialises them: of two payments racing for the last place under a velocity
limit, the second sees the first. A payment that goes through is counted by the wallet's own
line for it (`money_flow`), so screening a clean payment writes no event of its own; a
decision with reasons (flagged, held, refused) is an event on the sender's `Activity`, and a
payment from a device is one on the device's, in the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from uuid import UUID

from prometheus_client import Counter

from gopay.aggregates.fraud import Activity, FraudRules, Outcome, RuleSet, Velocity, Verdict
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.recent_payments import RecentPayments, since
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.group_commit import UnitOfWork

if TYPE_CHECKING:
    from gopay.commands.bus import Context
    from gopay.commands.money_flow import MoneyCommand, MoneyFlow

SCREENED = Counter("gopay_fraud_screenings_total",
                   "Payments screened, by outcome and by the rule that tripped ('none': no rule)",
                   ["outcome", "rule"])

DEFAULT_RULES = RuleSet()  # in force until an admin first changes them
CLEAN = Verdict(Outcome.ALLOW, 0)  # no rule tripped: most payments' verdict, made once

# Payments that move their money at once: pending only while held for review.
HELD_WHEN_PENDING = frozenset({TransactionType.TRANSFER, TransactionType.QR_PAYMENT,
                               TransactionType.BILL_PAYMENT})


@dataclass(frozen=True)
class Payment:
    """What the rules look at in one payment."""

    amount: int
    recipient: str  # the payee as the sender's activity names it
    counterparties: frozenset[str]  # every name of the payee a block list may use (if any)
    device: str | None
    client_country: str | None
    account_country: str | None


@dataclass(frozen=True)
class Screening:
    """A payment's verdict, and how to record it on the activities it was judged on."""

    verdict: Verdict
    order_id: UUID
    at: datetime
    payment: Payment
    sender_wallet_id: UUID
    sender: RecentPayments  # as they were before this payment, for a reviewer

    @property
    def sender_activity(self) -> dict[str, int]:
        """The sender's recent activity as a reviewer reads it (only a held payment asks)."""
        return self.sender.summary(self.at)

    def refused(self) -> Screening:
        """This screening as a refusal (a payment that would be held but cannot wait)."""
        return replace(self, verdict=replace(self.verdict, outcome=Outcome.REFUSE))

    def record(self, unit: UnitOfWork) -> None:
        """The decision as an event on the device's activity, and on the sender's if it has
        reasons (a clean payment is on record as the payer's wallet line)."""
        subjects = []
        if self.verdict.reasons:
            subjects.append((Activity.id_for_sender(self.sender_wallet_id),
                             f"wallet/{self.sender_wallet_id}"))
        if self.payment.device is not None:
            subjects.append((Activity.id_for_device(self.payment.device),
                             f"device/{self.payment.device}"))
        for activity_id, subject in subjects:
            activity = _activity(unit, activity_id, subject)
            activity.screened(order_id=self.order_id, at=self.at, amount=self.payment.amount,
                              recipient=self.payment.recipient, device=self.payment.device,
                              verdict=self.verdict)
        for rule in self.verdict.rules or ("none",):
            _screened(self.verdict.outcome.value, rule).inc()


def screening_probes(command: MoneyCommand) -> tuple[UUID, ...]:
    """Ids screening may find absent (asked about with the batch's other probes)."""
    if command.device_id:
        return (FraudRules.ID, Activity.id_for_device(command.device_id))
    return (FraudRules.ID,)


def screen(command: MoneyCommand, flow: MoneyFlow, order_id: UUID, unit: UnitOfWork,
           context: Context) -> Screening | None:
    """The verdict on a payment, or None if it is not screened (or screening is off)."""
    if (context.fraud_screening == "off" or not command.screened
            or not isinstance(flow.payer, Wallet)):
        return None
    stored_rules = unit.find(FraudRules.ID, FraudRules)
    rules = stored_rules.rules if stored_rules is not None else DEFAULT_RULES
    sender = flow.payer.payments
    device_activity = (unit.find(Activity.id_for_device(command.device_id), Activity)
                       if command.device_id else None)
    device = device_activity.payments if device_activity is not None else None
    recipient = str(flow.payee.id) if isinstance(flow.payee, Wallet) else flow.payee.value
    payment = Payment(
        amount=flow.money.amount, recipient=recipient,
        counterparties=_names_of(command, recipient) if rules.blocked else frozenset(),
        device=command.device_id, client_country=command.client_country,
        account_country=_account_country(command, unit))
    now = context.clock()
    verdict = judge(rules, payment, sender, device, now)
    if context.fraud_screening == "monitor" and verdict.outcome != Outcome.ALLOW:
        verdict = replace(verdict, outcome=Outcome.ALLOW,
                          reasons=(f"monitor only: would {verdict.outcome}", *verdict.reasons))
    return Screening(verdict, order_id, now, payment, flow.payer.id, sender)


def judge(rules: RuleSet, payment: Payment, sender: RecentPayments,
          device: RecentPayments | None, now: datetime) -> Verdict:
    """Every rule's say on a payment, summed into one score and an outcome."""
    tripped: list[tuple[str, int, str]] = []
    starts = {seconds: since(now, seconds) for seconds in rules.window_lengths}
    by_sender = {seconds: sender.in_window(start) for seconds, start in starts.items()}
    recipient = rules.recipient_velocity
    # Only when all of the sender's payments in its window would be too many for one recipient
    # are that recipient's counted (a walk through them, where the others are a subtraction).
    to_recipient = by_sender[recipient.window_seconds]
    if _too_fast(recipient, to_recipient, payment.amount):
        amounts = [a.amount for a in sender.window(starts[recipient.window_seconds])
                   if a.recipient == payment.recipient]
        to_recipient = (len(amounts), sum(amounts))
    from_device = (device.in_window(starts[rules.device_velocity.window_seconds])
                   if device is not None else (0, 0))
    for rule, velocity, paid in (
            ("sender_velocity", rules.sender_velocity,
             by_sender[rules.sender_velocity.window_seconds]),
            ("recipient_velocity", recipient, to_recipient),
            ("device_velocity", rules.device_velocity, from_device)):
        reason = _too_fast(velocity, paid, payment.amount)
        if reason:
            tripped.append((rule, velocity.score, reason))
    if (sender.count >= rules.history_min_payments
            and payment.amount >= rules.history_min_amount
            and payment.amount > rules.history_multiple * sender.average):
        reason = (f"{payment.amount} is over {rules.history_multiple} times the sender's "
                  f"average payment ({sender.average})")
        tripped.append(("history", rules.history_score, reason))
    if (payment.device is not None and sender.devices
            and payment.device not in sender.devices
            and payment.amount >= rules.new_device_amount):
        tripped.append(("new_device", rules.new_device_score,
                        f"{payment.amount} from a device the sender never paid from"))
    if (payment.client_country and payment.account_country
            and payment.client_country != payment.account_country):
        reason = f"paying from {payment.client_country}, the account is in {payment.account_country}"
        tripped.append(("country", rules.country_score, reason))
    blocked = payment.counterparties & rules.blocked
    if blocked:
        tripped.append(("blocked_counterparty", rules.blocked_score,
                        f"the payee is blocked ({', '.join(sorted(blocked))})"))
    tripped = [t for t in tripped if t[1] > 0]
    if not tripped:
        return CLEAN
    score = sum(points for _, points, _ in tripped)
    outcome = (Outcome.REFUSE if score >= rules.refuse_score
               else Outcome.HOLD if score >= rules.hold_score else Outcome.ALLOW)
    return Verdict(outcome, score, tuple(reason for _, _, reason in tripped),
                   tuple(rule for rule, _, _ in tripped))


def is_held_for_review(order: PaymentOrder) -> bool:
    """Whether a payment that moves its money at once is waiting for a reviewer."""
    return order.status == OrderStatus.PENDING and order.order_type in HELD_WHEN_PENDING


def _too_fast(velocity: Velocity, paid: tuple[int, int], amount: int) -> str:
    """Why one more payment of `amount` is too many or too much, beside those `paid` (how
    many, how much) in the velocity's window; empty when it is not."""
    count, total = paid
    if count + 1 > velocity.max_count:
        return (f"{count + 1} payments in {velocity.window_seconds} s "
                f"(at most {velocity.max_count})")
    total += amount
    if total > velocity.max_amount:
        return f"{total} paid in {velocity.window_seconds} s (at most {velocity.max_amount})"
    return ""


@lru_cache(maxsize=256)
def _screened(outcome: str, rule: str) -> Counter:
    """The counter of one outcome and rule (labels looked up once, not at every payment)."""
    return SCREENED.labels(outcome, rule)


def _names_of(command: MoneyCommand, payee: str) -> frozenset[str]:
    named = getattr(command, "recipient", None)  # as a transfer's sender named them
    return frozenset((payee, named.strip().lower()) if isinstance(named, str) else (payee,))


def _account_country(command: MoneyCommand, unit: UnitOfWork) -> str | None:
    """The sender's country, read only when the request's country is known to compare it."""
    if not command.client_country:
        return None
    user = unit.find(command.caller_id, User)
    return user.country.upper() if user is not None and user.country else None


def _activity(unit: UnitOfWork, activity_id: UUID, subject: str) -> Activity:
    activity = unit.find(activity_id, Activity)
    if activity is None:
        activity = Activity(id=activity_id, subject=subject)
        unit.add(activity)
    return activity
