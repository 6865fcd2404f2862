"""What the simulated PSP does with a charge, payout or refund: test cards and accounts, fees, chargebacks.

It also plays the mobile operators' gateway: a recharge tops up a phone number with airtime.

Every operation is answered at once with its final status and booked in one transaction
with its settlement line and its webhook. The same nonce again answers the first
operation; the same nonce with another request is refused. Recharges are announced by
webhook like the rest but have no settlement line: the settlement file is the PSP's, of
charges, payouts, refunds and chargebacks, and an operator settles with GoPay apart.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pycountry
from stdnum import iban, luhn
from stdnum.exceptions import ValidationError

from gopay.psp.port import BankAccount, Card, Destination, DigitalWallet, Source
from gopay.psp.simulator.faults import Dice
from gopay.psp.simulator.fees import FeeRule
from gopay.psp.simulator.store import Event, Operation, SettlementLine, Store

# The test cards of API.md: how a charge to them ends. Other valid cards succeed.
CARD_FAILURES = {"4000000000000002": "card_declined", "4000000000009995": "insufficient_funds"}
DISPUTED_CARD = "4000000000000259"
# A payout to (or a debit of) this account fails: the bank closed it.
CLOSED_ACCOUNT = "GB33BUKB20201555555555"
# Payouts to this card fail as its charges do.
DECLINED_CARD = "4000000000000002"
# A recharge to this number fails: no operator serves it.
UNSERVED_NUMBER = "+15550000000"
PHONE_NUMBER = re.compile(r"\+[1-9][0-9]{6,14}")
# What the payer's bank says when it takes a charge back.
DISPUTE_REASON = "fraudulent"
MAX_AMOUNT = 10**15

SETTLEMENT_HEADER = ["psp_reference", "merchant_reference", "type", "amount", "currency", "fee",
                     "status", "settled_at"]
EVENT_TYPES = {("charge", "succeeded"): "charge.succeeded", ("charge", "failed"): "charge.failed",
               ("payout", "succeeded"): "payout.paid", ("payout", "failed"): "payout.failed",
               ("refund", "succeeded"): "refund.succeeded", ("refund", "failed"): "refund.failed",
               ("recharge", "succeeded"): "recharge.succeeded",
               ("recharge", "failed"): "recharge.failed"}
REFERENCE_PREFIXES = {"charge": "ch", "payout": "po", "refund": "re", "dispute": "dp", "event": "evt",
                      "recharge": "rc"}
# What the PSP's own endpoints show under a nonce; recharges are the operators' gateway's.
PSP_KINDS = frozenset({"charge", "payout", "refund"})


class Refusal(Exception):
    """A request the PSP will not carry out (a 4xx): nothing was done."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Outcome:
    """An operation and whether it was done just now or found under its nonce."""

    operation: Operation
    replayed: bool


class SimulatedPsp:
    """The PSP's business: decides, books and announces each operation."""

    def __init__(self, store: Store, dice: Dice, fees: dict[str, FeeRule], dispute_delay: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.dice = dice
        self.fees = fees
        self.dispute_delay = dispute_delay
        self.clock = clock

    def charge(self, nonce: str, amount: int, currency: str, source: Source) -> Outcome:
        _check_money(amount, currency)
        instrument, secret = _instrument(source)
        request_hash = _request_hash("charge", amount, currency, secret)
        if found := self._replay(nonce, request_hash):
            return found
        failure = None
        if isinstance(source, Card):
            failure = CARD_FAILURES.get(source.number)
        elif isinstance(source, BankAccount) and secret == CLOSED_ACCOUNT:
            failure = "account_closed"
        disputed = isinstance(source, Card) and source.number == DISPUTED_CARD and not failure
        return self._book("charge", nonce, request_hash, amount, currency, instrument, failure,
                          fee_rule=f"charge.{instrument['type']}",
                          dispute_due_at=self.clock() + self.dispute_delay if disputed else None)

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> Outcome:
        _check_money(amount, currency)
        if not isinstance(destination, BankAccount | Card):
            raise Refusal(422, "invalid_destination", "payouts go to a bank account or a card")
        instrument, secret = _instrument(destination)
        request_hash = _request_hash("payout", amount, currency, secret)
        if found := self._replay(nonce, request_hash):
            return found
        failure = {CLOSED_ACCOUNT: "account_closed", DECLINED_CARD: "card_declined"}.get(secret)
        return self._book("payout", nonce, request_hash, amount, currency, instrument, failure,
                          fee_rule=f"payout.{instrument['type']}")

    def refund(self, nonce: str, charge_reference: str, amount: int) -> Outcome:
        _check_amount(amount)
        request_hash = _request_hash("refund", amount, "", charge_reference)
        if found := self._replay(nonce, request_hash):
            return found
        charge = self.store.charge(charge_reference)
        if charge is None:
            raise Refusal(404, "no_such_charge", "no charge has this psp_reference")
        if charge.status != "succeeded":
            raise Refusal(409, "charge_not_refundable", "only a succeeded charge can be refunded")
        if charge.disputed_at:
            raise Refusal(409, "charge_disputed", "the charge was taken back by a chargeback")
        left = charge.amount - self.store.refunded(charge_reference)
        if amount > left:
            raise Refusal(422, "amount_too_large", f"at most {left} of the charge is left to refund")
        return self._book("refund", nonce, request_hash, amount, charge.currency,
                          json.loads(charge.instrument), None, fee_rule="refund",
                          charge_reference=charge_reference)

    def recharge(self, nonce: str, phone_number: str, operator: str, amount: int,
                 currency: str) -> Outcome:
        """Top a phone number up with airtime: succeeds, unless no operator serves the number."""
        _check_money(amount, currency)
        if not PHONE_NUMBER.fullmatch(phone_number):
            raise Refusal(422, "invalid_phone_number", "phone_number is an E.164 number, +CC...")
        request_hash = _request_hash("recharge", amount, currency, f"{operator}:{phone_number}")
        if found := self._replay(nonce, request_hash):
            return found
        failure = "number_not_served" if phone_number == UNSERVED_NUMBER else None
        return self._book("recharge", nonce, request_hash, amount, currency,
                          {"type": "phone", "operator": operator, "last4": phone_number[-4:]},
                          failure, fee_rule=None)

    def status(self, nonce: str) -> Operation | None:
        return self.store.operation(nonce)

    def open_due_disputes(self) -> int:
        """Take back the disputed test card's charges whose time has come; answers how many."""
        now = self.clock()
        due = self.store.disputes_due(now)
        for charge in due:
            left = charge.amount - self.store.refunded(charge.psp_reference)
            if left <= 0:  # refunded in full meanwhile: nothing to dispute
                self.store.record_dispute(charge, None, None, [], now)
                continue
            created_at = timestamp(now)
            reference = _reference("dispute")
            fee = self.fees["chargeback"].fee(left)
            line = SettlementLine(reference, charge.nonce, "chargeback", left, charge.currency, fee,
                                  "settled", created_at)
            event = _event("charge.disputed", charge.nonce, created_at, {
                "object": "dispute", "psp_reference": reference, "merchant_reference": charge.nonce,
                "charge_reference": charge.psp_reference, "amount": left,
                "currency": charge.currency, "fee": fee, "status": "lost", "failure_reason": None,
                "reason": DISPUTE_REASON})
            self.store.record_dispute(charge, line, event, self._deliveries(now), now)
        return len(due)

    def settlement_file(self, day: str) -> str:
        """The day's settlement file: every line booked that UTC day, in booking order."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(SETTLEMENT_HEADER)
        for line in self.store.settlement_lines(day):
            writer.writerow([getattr(line, name) for name in SETTLEMENT_HEADER])
        return text.getvalue()

    def _replay(self, nonce: str, request_hash: str) -> Outcome | None:
        found = self.store.operation(nonce)
        if found is None:
            return None
        if found.request_hash != request_hash:
            raise Refusal(409, "idempotency_conflict",
                          "this nonce names another operation; it stands as it was")
        return Outcome(found, replayed=True)

    def _book(self, kind: str, nonce: str, request_hash: str, amount: int, currency: str,
              instrument: dict[str, str], failure: str | None, *, fee_rule: str | None,
              charge_reference: str | None = None, dispute_due_at: float | None = None) -> Outcome:
        now = self.clock()
        created_at = timestamp(now)
        status = "failed" if failure else "succeeded"
        fee = 0 if failure or fee_rule is None else self.fees[fee_rule].fee(amount)
        operation = Operation(
            nonce=nonce, kind=kind, psp_reference=_reference(kind), request_hash=request_hash,
            amount=amount, currency=currency, fee=fee, status=status, failure_reason=failure,
            instrument=json.dumps(instrument), charge_reference=charge_reference,
            created_at=created_at, dispute_due_at=dispute_due_at)
        line = SettlementLine(operation.psp_reference, nonce, kind, amount, currency, fee,
                              "settled" if status == "succeeded" else "failed",
                              created_at) if kind in PSP_KINDS else None
        event = _event(EVENT_TYPES[kind, status], nonce, created_at, {
            "object": kind, "psp_reference": operation.psp_reference, "merchant_reference": nonce,
            "charge_reference": charge_reference, "amount": amount, "currency": currency,
            "fee": fee, "status": status, "failure_reason": failure})
        self.store.record(operation, line, event, self._deliveries(now), now)
        return Outcome(operation, replayed=False)

    def _deliveries(self, now: float) -> list[float]:
        return [now + delay for delay in self.dice.webhook_delays()]


def operation_json(operation: Operation) -> dict[str, object]:
    """An operation as the PSP's API shows it."""
    dispute = None
    if operation.disputed_at:
        dispute = {"psp_reference": operation.dispute_reference, "amount": operation.dispute_amount,
                   "fee": operation.dispute_fee, "created_at": operation.disputed_at,
                   "reason": DISPUTE_REASON}
    return {"object": operation.kind, "nonce": operation.nonce,
            "psp_reference": operation.psp_reference, "status": operation.status,
            "amount": operation.amount, "currency": operation.currency, "fee": operation.fee,
            "failure_reason": operation.failure_reason,
            "charge_reference": operation.charge_reference,
            "instrument": json.loads(operation.instrument), "created_at": operation.created_at,
            "disputed": dispute is not None, "dispute": dispute}


def _check_money(amount: int, currency: str) -> None:
    _check_amount(amount)
    if not (currency.isascii() and currency.isupper() and pycountry.currencies.get(alpha_3=currency)):
        raise Refusal(422, "invalid_currency", "currency is an ISO 4217 code")


def _check_amount(amount: int) -> None:
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise Refusal(422, "invalid_amount", f"amount is an integer of minor units, 1 to {MAX_AMOUNT}")


def _instrument(source: Source) -> tuple[dict[str, str], str]:
    """What may be shown of a card, account or wallet, and the whole of it (never stored)."""
    if isinstance(source, Card):
        if not (source.number.isascii() and source.number.isdigit()
                and 12 <= len(source.number) <= 19 and luhn.is_valid(source.number)):
            raise Refusal(422, "invalid_card_number", "the card number fails the Luhn check")
        return {"type": "card", "last4": source.number[-4:]}, source.number
    if isinstance(source, BankAccount):
        try:
            number = iban.validate(source.iban)
        except ValidationError:
            raise Refusal(422, "invalid_iban", "the IBAN is not valid") from None
        return {"type": "bank_account", "country": number[:2], "last4": number[-4:]}, number
    if isinstance(source, DigitalWallet):
        if not (source.provider and source.account):
            raise Refusal(422, "invalid_wallet", "a digital wallet needs a provider and an account")
        return ({"type": "digital_wallet", "provider": source.provider,
                 "last4": source.account[-4:]}, f"{source.provider}:{source.account}")
    raise Refusal(422, "invalid_source", "a charge takes a card, a bank account or a digital wallet")


def _request_hash(kind: str, amount: int, currency: str, instrument: str) -> str:
    """What tells a repeated request from another one under the same nonce.

    A plain digest: good enough for a simulator, but a real PSP would key it, since card
    numbers are few enough to guess from their digest.
    """
    canonical = json.dumps([kind, amount, currency, instrument], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event(event_type: str, nonce: str, created_at: str, data: dict[str, object]) -> Event:
    event_id = _reference("event")
    body = json.dumps({"id": event_id, "type": event_type, "created_at": created_at, "data": data},
                      separators=(",", ":"))
    return Event(event_id, event_type, nonce, created_at, body)


def _reference(kind: str) -> str:
    return f"{REFERENCE_PREFIXES[kind]}_{uuid.uuid4().hex[:24]}"


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
