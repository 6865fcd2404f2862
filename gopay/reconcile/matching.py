"""Matching a settlement file against the ledger: each line, and each order of the file's days.

A line is matched when it agrees with GoPay's payment order in every field: the order it
names exists and is of its type, under the same PSP reference, with the same status, amount,
currency and fee. Anything else is one finding of one kind (the first that applies, in the
order of `finding_for`). Orders of the file's days that the PSP should know and no line named
are `missing_in_psp`.

Each finding says what the difference means in money: how much more (or less) the PSP
holds than GoPay's clearing account says, which is what finance may move to suspense.

`Matcher` applies the rules as lines stream through, looking orders up in batches and keeping
what tells duplicates apart (the references and orders seen): any `Ledger` will do (a fake in
tests). Reconciliation runs use `StagedMatcher` (gopay.reconcile.staged_matching), which
leaves the comparing to PostgreSQL and the explaining to the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from itertools import islice
from typing import Any, NamedTuple, Protocol, TypeVar
from uuid import UUID

from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.payment_order import OrderStatus, order_id_for
from gopay.aggregates.reconciliation import SUMMARY_KEYS, ItemKind
from gopay.commands.psp_outcomes import ChargeBack
from gopay.reconcile.settlement import SettlementLine

T = TypeVar("T")

CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# What a line's status means for GoPay's order, and the other way round.
FINAL_STATUS = {"settled": OrderStatus.SUCCEEDED, "failed": OrderStatus.FAILED}
# The GoPay account each kind of PSP operation moves money through.
CLEARING = {"charge": SystemAccount.PSP_CLEARING, "chargeback": SystemAccount.PSP_CLEARING,
            "refund": SystemAccount.PSP_CLEARING, "payout": SystemAccount.PAYOUT_CLEARING}


class ExpectedOrder(NamedTuple):
    """A payment order as the PSP should report it."""

    order_id: str
    kind: str  # the file's word for it: charge (a top-up), payout, chargeback, refund
    amount: int
    currency: str
    fee: int  # what GoPay booked as the PSP's fee (0 until the order settles)
    status: str  # the order's own: created, pending, succeeded, failed, reversed
    psp_reference: str | None
    # When it was made: read only for an order no line named, whose hour the report counts
    # (matching a line never needs it, and it is the costliest column to read).
    created_at: datetime | None
    topup_id: str | None  # a chargeback's top-up: the PSP names the charge by it


class Ledger(Protocol):
    """What matching reads of the ledger (GoPay's read side, or a fake in tests)."""

    def expected(self, order_ids: Sequence[str], *,
                 created_at: bool = False) -> Mapping[str, ExpectedOrder]:
        """The orders among `order_ids` that the PSP deals with, by id; with when each was
        made only if `created_at`."""
        ...

    def order_ids_of(self, days: Sequence[str]) -> Iterator[str]:
        """Every order made on these UTC days that the PSP should have in its files."""
        ...

    def totals(self, days: Sequence[str]) -> list[dict[str, Any]]:
        """Count, amount and fee of those orders, per kind, status and currency."""
        ...


# The orders of a batch of lines, being looked up; and the batch, its orders' ids and those.
_Found = Future[Mapping[str, ExpectedOrder]]
_Batch = tuple[list[SettlementLine], list[str | None], _Found]


@dataclass(frozen=True, slots=True)
class Finding:
    """One discrepancy: what GoPay's ledger says (`expected`), what the file says (`actual`)."""

    kind: ItemKind
    cause: str
    psp_reference: str | None
    merchant_reference: str | None
    expected: Mapping[str, Any] | None
    actual: Mapping[str, Any] | None
    order_ids: tuple[str, ...]
    line: int | None
    # How much more the PSP holds than the clearing account says, or None when it is not a
    # difference of money finance can settle (the order is still settling, or a file error).
    difference: Mapping[str, Any] | None

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "cause": self.cause, "psp_reference": self.psp_reference,
                "merchant_reference": self.merchant_reference,
                "expected": dict(self.expected) if self.expected is not None else None,
                "actual": dict(self.actual) if self.actual is not None else None,
                "order_ids": list(self.order_ids), "line": self.line,
                "difference": dict(self.difference) if self.difference is not None else None}


class Matcher:
    """Compares a file's lines with the ledger as they stream by, counting as it goes."""

    def __init__(self, ledger: Ledger, days: Sequence[str] = (), batch_size: int = 10_000) -> None:
        self.ledger = ledger
        self.days = frozenset(days)  # beyond those of the lines
        self.batch_size = batch_size
        self.summary = dict.fromkeys(SUMMARY_KEYS, 0)
        self.lines = 0
        self._references: dict[str, int] = {}  # PSP reference -> the line it was first on
        self._orders: dict[str, int] = {}  # order id -> the line that named it first
        self._hours: dict[date, list[list[int]]] = {}  # day -> per hour [matched, differing]
        self._file_totals: dict[tuple[str, str, str], list[int]] = {}

    def compare(self, lines: Iterable[SettlementLine]) -> Iterator[Finding]:
        """The findings of the file's lines, in the file's order.

        The orders of the next batch are looked up (in a thread: the wait is PostgreSQL's)
        while this one is matched, so the file is read and matched at the speed of Python,
        not of a round trip per batch.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="reconcile-lookups") as lookups:
            ahead: _Batch | None = None
            for batch in _batched(lines, self.batch_size):
                keys = [order_key(line) for line in batch]
                looked_up = lookups.submit(self.ledger.expected, [key for key in keys if key is not None])
                if ahead is not None:
                    yield from self._compare_batch(*ahead)
                ahead = (batch, keys, looked_up)
            if ahead is not None:
                yield from self._compare_batch(*ahead)

    def _compare_batch(self, batch: list[SettlementLine], keys: list[str | None],
                       looked_up: _Found) -> Iterator[Finding]:
        found = looked_up.result()
        for line, key in zip(batch, keys, strict=True):
            finding = self._compare(line, key, found.get(key) if key is not None else None)
            self._count(line, finding)
            if finding is not None:
                yield finding

    def findings(self, lines: Iterable[SettlementLine]) -> Iterator[Finding]:
        """The findings of the file's lines in the file's order, then the orders of its days
        that no line named."""
        yield from self.compare(lines)
        yield from self.missing_in_psp()

    @property
    def period(self) -> tuple[str, ...]:
        """The UTC days compared, whole: those of the lines read so far, and those asked for."""
        return tuple(sorted(self.days | {day.isoformat() for day in self._hours}))

    def missing_in_psp(self) -> Iterator[Finding]:
        """Orders of the file's days that the PSP should know and no line named (once every
        line has been compared)."""
        unseen = [order_id for order_id in self.ledger.order_ids_of(self.period)
                  if order_id not in self._orders]
        for batch in _batched(unseen, self.batch_size):
            found = self.ledger.expected(batch, created_at=True)
            for order_id in batch:
                order = found[order_id]
                assert order.created_at is not None, "asked for"
                self.summary[ItemKind.MISSING_IN_PSP] += 1
                self._hour(order.created_at)[1] += 1
                yield order_missing_in_psp(order)

    def report(self) -> dict[str, Any]:
        """What the report shows beside the findings: totals of both sides, and the day by hour."""
        return {
            "hours": {day.isoformat(): hours for day, hours in sorted(self._hours.items())},
            "file_totals": [{"type": kind, "status": status, "currency": currency, "count": count,
                             "amount": amount, "fee": fee}
                            for (kind, status, currency), (count, amount, fee)
                            in sorted(self._file_totals.items())],
            "ledger_totals": self.ledger.totals(self.period),
        }

    def _compare(self, line: SettlementLine, key: str | None,
                 order: ExpectedOrder | None) -> Finding | None:
        first_reference = self._references.setdefault(line.psp_reference, line.number)
        first_order = None
        if first_reference == line.number and order is not None and order.kind == line.type:
            first_order = self._orders.get(order.order_id)
            if first_order is None and names(line, order):
                first_order = self._orders[order.order_id] = line.number
        return finding_for(line, order, first_reference, first_order)

    def _count(self, line: SettlementLine, finding: Finding | None) -> None:
        self.lines += 1
        self.summary[finding.kind if finding is not None else "matched"] += 1
        self._hour(line.settled_at)[0 if finding is None else 1] += 1
        totals = self._file_totals.get((line.type, line.status, line.currency))
        if totals is None:
            totals = self._file_totals[line.type, line.status, line.currency] = [0, 0, 0]
        totals[0] += 1
        totals[1] += line.amount
        totals[2] += line.fee

    def _hour(self, moment: datetime) -> list[int]:
        """[matched, differing] of the moment's hour."""
        return self._day(moment.date())[moment.hour]

    def _day(self, day: date) -> list[list[int]]:
        hours = self._hours.get(day)
        if hours is None:
            hours = self._hours[day] = [[0, 0] for _ in range(24)]
        return hours


def names(line: SettlementLine, order: ExpectedOrder) -> bool:
    """Whether a line of the order's type is about that order at the PSP: GoPay knows no
    other reference for it (the line must also be the first of its reference)."""
    return not order.psp_reference or order.psp_reference == line.psp_reference


def finding_for(line: SettlementLine,  # noqa: PLR0911 - one answer per kind
                order: ExpectedOrder | None, first_reference: int,
                first_order: int | None) -> Finding | None:
    """What is wrong with a line, if anything (the first that applies): the rules of matching.

    `order` is the ledger's order the line names (None if there is none),
    `first_reference` the file's first line with the line's PSP reference, and `first_order`
    the file's first line that names the order (the first of its reference, of the order's
    type, under no other reference GoPay knows), if any.
    """
    if first_reference != line.number:
        return _finding(ItemKind.DUPLICATES, line, order, None, f"the PSP lists operation "
                        f"{line.psp_reference} again (first on line {first_reference}): a file "
                        "error, the money moved once", difference=False)
    if order is None:
        return _finding(ItemKind.MISSING_IN_LEDGER, line, None, None,
                        f"GoPay has no {line.type} under {line.merchant_reference}")
    if order.kind != line.type:
        return _finding(ItemKind.MISSING_IN_LEDGER, line, order, None,
                        f"GoPay's order {order.order_id} is a {order.kind}, not a {line.type}")
    if first_order is not None and first_order < line.number:
        return _finding(ItemKind.DUPLICATES, line, order, None,
                        f"a second {line.type} for GoPay's order {order.order_id} (the "
                        f"first on line {first_order}): the PSP may have moved the money twice")
    if not names(line, order):
        return _finding(ItemKind.MISSING_IN_LEDGER, line, order, None,
                        f"GoPay knows its order {order.order_id} at the PSP as "
                        f"{order.psp_reference}, not as {line.psp_reference}")
    if FINAL_STATUS[line.status] != order.status:
        waiting = (" and is still waiting for the PSP's answer"
                   if order.status in (OrderStatus.CREATED, OrderStatus.PENDING) else "")
        return _finding(ItemKind.STATUS_MISMATCH, line, order, {"status": order.status},
                        f"the PSP {line.status} it; GoPay's order is {order.status}{waiting}")
    if (line.amount, line.currency) != (order.amount, order.currency):
        return _finding(ItemKind.AMOUNT_MISMATCH, line, order,
                        {"amount": order.amount, "currency": order.currency},
                        f"the PSP moved {line.amount} {line.currency}; GoPay booked "
                        f"{order.amount} {order.currency}")
    if line.fee != order.fee:
        return _finding(ItemKind.FEE_MISMATCH, line, order, {"fee": order.fee},
                        f"the PSP kept a fee of {line.fee} {line.currency}; GoPay booked "
                        f"{order.fee}")
    return None


def order_key(line: SettlementLine) -> str | None:
    """The id of GoPay's order a line is about, as PostgreSQL writes a uuid (a chargeback's
    is derived from its reference)."""
    reference = line.merchant_reference
    if line.type != "chargeback" and CANONICAL_UUID.fullmatch(reference):
        return reference  # GoPay's own ids come back as it wrote them: no need to parse
    try:
        named = UUID(reference)
    except ValueError:
        return None
    if line.type == "chargeback":
        return str(order_id_for(named, ChargeBack.operation, line.psp_reference))
    return str(named)


def _finding(kind: ItemKind, line: SettlementLine, order: ExpectedOrder | None,
             expected: Mapping[str, Any] | None, cause: str, *,
             difference: bool = True) -> Finding:
    """A finding about a line; `expected` is the ledger's side of the fields that differ."""
    actual: dict[str, Any]
    if expected is None:  # the ledger has nothing to set against this line
        actual = {"type": line.type, "amount": line.amount, "currency": line.currency,
                  "fee": line.fee, "status": line.status,
                  "settled_at": line.settled_at.isoformat().replace("+00:00", "Z")}
    else:
        actual = {field: getattr(line, field) for field in expected}
    counted = order if expected is not None else None  # the order this line should agree with
    return Finding(kind, cause, line.psp_reference, line.merchant_reference, expected, actual,
                   _order_ids(order), line.number,
                   _difference(line, counted) if difference else None)


def order_missing_in_psp(order: ExpectedOrder) -> Finding:
    """The finding of an order of the file's days that no line named."""
    cause = {OrderStatus.SUCCEEDED: f"GoPay booked this {order.kind} but the file has no line for it",
             OrderStatus.FAILED: f"GoPay recorded the PSP's failure of this {order.kind} but the "
                                 "file has no line for it"}.get(
        OrderStatus(order.status),
        f"GoPay's order is {order.status}, waiting for the PSP's answer, and the file has no line for it")
    effect = _ledger_effect(order)
    difference = ({"account": CLEARING[order.kind].value, "amount": -effect,
                   "currency": order.currency} if effect else None)
    return Finding(ItemKind.MISSING_IN_PSP, cause, order.psp_reference,
                   order.topup_id or order.order_id,
                   {"type": order.kind, "amount": order.amount, "currency": order.currency,
                    "fee": order.fee, "status": order.status}, None, _order_ids(order), None,
                   difference)


def _order_ids(order: ExpectedOrder | None) -> tuple[str, ...]:
    if order is None:
        return ()
    return (order.order_id, order.topup_id) if order.topup_id else (order.order_id,)


def _difference(line: SettlementLine, order: ExpectedOrder | None) -> Mapping[str, Any] | None:
    """What the PSP holds beyond what the ledger says, for the line's order (or for none)."""
    ledger = _ledger_effect(order) if order is not None else 0
    if ledger is None or (order is not None and order.currency != line.currency):
        return None  # still settling, or in two currencies: nothing one entry could settle
    amount = _line_effect(line) - ledger
    if not amount:
        return None
    return {"account": CLEARING[line.type].value, "amount": amount, "currency": line.currency}


def _line_effect(line: SettlementLine) -> int:
    """How the line changes what the PSP holds for GoPay: a charge brings money in, every
    other kind takes money out, and the PSP's fee is always a cost."""
    moved = 0 if line.status != "settled" else (line.amount if line.type == "charge" else -line.amount)
    return moved - line.fee


def _ledger_effect(order: ExpectedOrder) -> int | None:
    """The same, as GoPay booked it; None while the order has not settled."""
    if order.status in (OrderStatus.CREATED, OrderStatus.PENDING):
        return None
    moved = 0
    if order.status == OrderStatus.SUCCEEDED:
        moved = order.amount if order.kind == "charge" else -order.amount
    return moved - order.fee


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
