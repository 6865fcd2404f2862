"""Fraud screening's write model: its decisions, the rules, and held payments' reviews.

The rules read the sender's payments from their wallet and a device's from its `Activity`:
both are loaded and changed by the very command that moves the money, in the same group
commit, so two payments racing are screened one after the other and cannot both slip under a
limit. `FraudRules` is the one document of thresholds admins change. A `Review` is a payment
held for a person to decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import DomainError, InvalidState, ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.recent_payments import LONGEST_WINDOW, RecentPayments


class FraudSuspected(DomainError):
    """The payment looks like fraud: refused, with the rules' reasons."""

    code = "fraud_suspected"


class Outcome(StrEnum):
    ALLOW = "allow"
    HOLD = "hold"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Velocity:
    """At most `max_count` payments and `max_amount` minor units in `window_seconds`."""

    window_seconds: int
    max_count: int
    max_amount: int
    score: int


@dataclass(frozen=True)
class RuleSet:
    """Every rule's threshold and score, and the scores that hold or refuse a payment."""

    hold_score: int = 50
    refuse_score: int = 100
    # Per sender wallet, per device (every account on it), per recipient (of this sender).
    # The defaults let a busy merchant or a load test through, and sit above the KYC tiers'
    # daily limits (which already bound amounts): admins tighten them to their traffic.
    sender_velocity: Velocity = Velocity(3600, 1000, 10**10, 60)
    device_velocity: Velocity = Velocity(3600, 2000, 10**10, 60)
    recipient_velocity: Velocity = Velocity(3600, 500, 10**10, 60)
    # An amount `history_multiple` times the sender's average, once they have paid
    # `history_min_payments` times, from `history_min_amount` up.
    history_multiple: int = 20
    history_min_payments: int = 3
    history_min_amount: int = 100_000
    # Alone it only flags (a rent payment is large too): with a new device or a foreign
    # country it holds.
    history_score: int = 30
    # A device the sender never paid from (when they have paid from another), from this amount.
    new_device_amount: int = 100_000
    new_device_score: int = 50
    # The client's country (from its address) is not the account's.
    country_score: int = 30
    # Payments to these wallets, e-mails or phones are refused.
    blocked_counterparties: tuple[str, ...] = ()
    blocked_score: int = 100

    def __post_init__(self) -> None:
        scores = [self.hold_score, self.refuse_score, self.history_score, self.new_device_score,
                  self.country_score, self.blocked_score, *(v.score for v in self.velocities)]
        counts = [self.history_multiple, self.history_min_payments, self.history_min_amount,
                  self.new_device_amount,
                  *(n for v in self.velocities for n in (v.window_seconds, v.max_count,
                                                         v.max_amount))]
        if any(n < 0 for n in scores + counts) or self.hold_score < 1 or self.refuse_score < 1:
            raise ValidationFailed("thresholds and scores are whole numbers, not negative; "
                                   "hold and refuse scores at least 1")
        longest = int(LONGEST_WINDOW.total_seconds())  # all that the payments remembered cover
        if any(v.window_seconds > longest or v.window_seconds < 1 for v in self.velocities):
            raise ValidationFailed(f"a velocity window is 1 to {longest} seconds")

    @property
    def velocities(self) -> tuple[Velocity, ...]:
        return (self.sender_velocity, self.device_velocity, self.recipient_velocity)

    # Worked out once per rule set, not at every payment screened (a rule set never changes).

    @cached_property
    def window_lengths(self) -> frozenset[int]:
        """The velocity windows' lengths, in seconds (usually all the same)."""
        return frozenset(v.window_seconds for v in self.velocities)

    @cached_property
    def blocked(self) -> frozenset[str]:
        """The blocked counterparties as payees' names are compared with them."""
        return frozenset(c.strip().lower() for c in self.blocked_counterparties)

    def as_document(self) -> dict[str, Any]:
        document = asdict(self)
        document["blocked_counterparties"] = list(self.blocked_counterparties)
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RuleSet:
        values = dict(document)
        try:
            for name in ("sender_velocity", "device_velocity", "recipient_velocity"):
                if name in values:
                    values[name] = Velocity(**values[name])
            values["blocked_counterparties"] = tuple(values.get("blocked_counterparties", ()))
            return cls(**values)
        except TypeError as error:
            raise ValidationFailed(f"not a fraud rules document: {error}") from None


@dataclass(frozen=True)
class Verdict:
    """What screening decided, with the score and each rule's reason."""

    outcome: Outcome
    score: int
    reasons: tuple[str, ...] = ()
    rules: tuple[str, ...] = field(default=())  # the rules that tripped, for the metrics


class Activity(Aggregate):
    """Screening's decisions about a device (each payment from it) or a sender (those with
    reasons: a sender's payments are counted on their wallet); a device's payments are what
    its velocity rule reads."""

    # Asked for many payments (from a device, or with reasons): remembered, not hashed again.
    @staticmethod
    @lru_cache(maxsize=100_000)
    def id_for_sender(wallet_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"activity/wallet/{wallet_id}")

    @staticmethod
    @lru_cache(maxsize=100_000)
    def id_for_device(device_id: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"activity/device/{device_id}")

    @event("Started")
    def __init__(self, id: UUID, subject: str) -> None:
        self.subject = subject
        self.payments = RecentPayments()

    def screened(self, *, order_id: UUID, at: datetime, amount: int, recipient: str,
                 device: str | None, verdict: Verdict) -> None:
        """Record screening's decision; a payment not refused counts from now on."""
        self._screened(order_id=order_id, at=at.isoformat(), amount=amount, recipient=recipient,
                       device=device, outcome=verdict.outcome.value, score=verdict.score,
                       reasons=list(verdict.reasons), keep_since="")

    class Screened(Aggregate.Event):
        order_id: UUID
        at: str
        amount: int
        recipient: str
        device: str | None
        outcome: str
        score: int
        reasons: list[str]
        keep_since: str  # no longer used: the payments remembered keep the last day's

    @event(Screened)
    def _screened(self, order_id: UUID, at: str, amount: int, recipient: str,
                  device: str | None, outcome: str, score: int, reasons: list[str],
                  keep_since: str) -> None:
        if outcome != Outcome.REFUSE:
            self.payments = self.payments.added(at=at, amount=amount, recipient=recipient,
                                                device=device)


class FraudRules(Aggregate):
    """The thresholds in force: one document, each change an event with who made it."""

    ID = uuid5(LEDGER_NAMESPACE, "fraud-rules")

    @event("Created")
    def __init__(self, id: UUID) -> None:
        self.document: Mapping[str, Any] = _frozen(RuleSet().as_document())
        self.rules = RuleSet()  # the document read once, not for every payment screened

    def change(self, rules: RuleSet, *, by: UUID) -> None:
        self._changed(document=rules.as_document(), by=by)

    class Changed(Aggregate.Event):
        document: dict[str, Any]
        by: UUID

    @event(Changed)
    def _changed(self, document: dict[str, Any], by: UUID) -> None:
        self.document = _frozen(document)
        self.rules = RuleSet.from_document(document)


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class Review(Aggregate):
    """A payment held for review: who sent how much to whom, why it was held, and the decision."""

    @staticmethod
    def id_for(order_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"review/{order_id}")

    class Opened(Aggregate.Created):
        order_id: UUID
        sender_wallet_id: UUID
        amount: int
        currency: str
        score: int
        reasons: tuple[str, ...]
        sender_activity: Mapping[str, int]

    @event(Opened)
    def __init__(self, id: UUID, order_id: UUID, sender_wallet_id: UUID, amount: int,
                 currency: str, score: int, reasons: tuple[str, ...],
                 sender_activity: Mapping[str, int]) -> None:
        self.order_id = order_id
        # What the sender had done when the payment was held, for the reviewer.
        self.sender_activity = MappingProxyType(dict(sender_activity))
        self.sender_wallet_id = sender_wallet_id
        self.amount = amount
        self.currency = currency
        self.score = score
        self.reasons = tuple(reasons)
        self.status = ReviewStatus.OPEN
        self.decided_by: UUID | None = None
        self.note = ""

    def approve(self, *, by: UUID, note: str = "") -> None:
        self._check_open()
        self._approved(by=by, note=note)

    def reject(self, *, by: UUID, note: str = "") -> None:
        self._check_open()
        self._rejected(by=by, note=note)

    def _check_open(self) -> None:
        if self.status != ReviewStatus.OPEN:
            raise InvalidState(f"this review is {self.status} already")

    class Approved(Aggregate.Event):
        by: UUID
        note: str

    @event(Approved)
    def _approved(self, by: UUID, note: str) -> None:
        self.status = ReviewStatus.APPROVED
        self.decided_by = by
        self.note = note

    class Rejected(Aggregate.Event):
        by: UUID
        note: str

    @event(Rejected)
    def _rejected(self, by: UUID, note: str) -> None:
        self.status = ReviewStatus.REJECTED
        self.decided_by = by
        self.note = note


def _frozen(value: Any) -> Any:
    """A JSON document as immutable values: mappings become proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value

