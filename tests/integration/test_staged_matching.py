"""Matching in PostgreSQL finds what the streaming rules find: the same findings in the same
order, the same counts and report, for files with every kind of discrepancy, several days
and orders of other days; and a bad line deep in a file still refuses it by its number."""

from __future__ import annotations

import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from gopay.aggregates.payment_order import order_id_for
from gopay.commands.psp_outcomes import ChargeBack
from gopay.projections.psp_orders import PspOrderView
from gopay.reconcile import settlement
from gopay.reconcile.matching import Matcher
from gopay.reconcile.settlement import HEADER, SettlementFileInvalid
from gopay.reconcile.staged_matching import StagedMatcher
from gopay.system import System

TODAY = date(2026, 3, 12)
YESTERDAY = TODAY - timedelta(days=1)
LONG_AGO = TODAY - timedelta(days=20)


class Ledger:
    """Rows of the PSP's side of the ledger, written straight into the read model."""

    def __init__(self, view: PspOrderView) -> None:
        self.view = view
        self.rows: list[tuple[Any, ...]] = []

    def order(self, kind: str = "charge", *, day: date = TODAY, amount: int = 1_000,
              fee: int = 59, status: str = "succeeded", reference: str | None = "auto",
              order_id: UUID | None = None, topup_id: UUID | None = None) -> dict[str, Any]:
        order_id = order_id or uuid4()
        if reference == "auto":
            reference = f"{kind[:2]}_{order_id.hex[:16]}"
        created = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
            seconds=random.Random(order_id.int).randrange(86_400))
        self.rows.append((order_id, kind, topup_id, amount, "USD", status, reference, fee, day,
                          created))
        return {"order_id": order_id, "kind": kind, "amount": amount, "fee": fee,
                "status": status, "reference": reference, "topup_id": topup_id, "day": day}

    def write(self) -> None:
        with self.view.datastore.transaction(commit=True) as cursor, cursor.copy(
                "COPY psp_orders (order_id, kind, topup_id, amount, currency, status, "
                "psp_reference, psp_fee, day, created_at) FROM STDIN") as copy:
            for row in self.rows:
                copy.write_row(row)


def line_of(order: dict[str, Any], day: date = TODAY, hour: int = 9, **changes: Any) -> dict[str, Any]:
    """The PSP's line for `order` (settled on `day`), with `changes`."""
    line = {"psp_reference": order["reference"], "merchant_reference": str(order["order_id"]),
            "type": order["kind"], "amount": order["amount"], "currency": "USD",
            "fee": order["fee"], "status": "settled" if order["status"] == "succeeded" else "failed",
            "settled_at": f"{day.isoformat()}T{hour:02d}:15:00.250000Z"}
    return {**line, **changes}


def settlement_file(lines: list[dict[str, Any]]) -> bytes:
    rows = [",".join(HEADER), *(",".join(str(line[name]) for name in HEADER) for line in lines)]
    return ("\n".join(rows) + "\n").encode()


def both_ways(view: PspOrderView, data: bytes, days: tuple[str, ...] = ()) -> tuple[Any, Any]:
    """What each matcher makes of the file: findings, counts, period and report."""
    seen = []
    for matcher in (StagedMatcher(view, days), Matcher(view, days, batch_size=7)):
        findings = [finding.as_record() for finding in matcher.findings(
            settlement.lines(io.BytesIO(data)))]
        seen.append((findings, matcher.summary, matcher.lines, matcher.period, matcher.report()))
    return seen[0], seen[1]


@pytest.fixture
def ledger(system: System) -> Ledger:
    return Ledger(system.read_side.psp_orders)


class TestTheSameAsTheStreamingRules:
    def test_every_kind_of_line_across_days(self, system: System, ledger: Ledger) -> None:
        """Each case the rules tell apart, once; the findings, counts and report agree."""
        fine = [ledger.order(amount=1_000 + n) for n in range(5)]
        late = ledger.order(day=YESTERDAY)  # settled today, made yesterday: not missing
        old_payout = ledger.order("payout", day=LONG_AGO, fee=25)  # outside the period
        pending = ledger.order(status="pending", fee=0)
        declined = ledger.order(status="failed", fee=0)
        refused = ledger.order(status="failed", reference=None, fee=0)  # never at the PSP
        topup = ledger.order(amount=3_000)
        chargeback = ledger.order(
            "chargeback", amount=3_000, fee=1_500, reference=None, topup_id=topup["order_id"],
            order_id=order_id_for(topup["order_id"], ChargeBack.operation, "dp_7"))
        short, costly, unsettled, doubled, twice, renamed, retyped, gone = (
            ledger.order(amount=2_000) for _ in range(8))
        gone_yesterday = ledger.order(day=YESTERDAY)
        shared = ledger.order()  # its reference is first used by another order's line
        unnamed = ledger.order(reference=None)  # GoPay never heard the PSP's name for it
        ledger.write()
        stranger = {**line_of(fine[0]), "psp_reference": "ch_stranger",
                    "merchant_reference": str(uuid4())}
        not_a_uuid = {**stranger, "psp_reference": "ch_text", "merchant_reference": "order-42"}
        lines = [
            *(line_of(order) for order in fine), line_of(late, hour=0),
            line_of(old_payout, day=YESTERDAY, hour=23), line_of(pending), line_of(declined),
            line_of(topup), line_of(chargeback, psp_reference="dp_7",
                                    merchant_reference=str(topup["order_id"])),
            line_of(short, amount=1_990), line_of(costly, fee=99),
            line_of(unsettled, status="failed", fee=0), stranger, not_a_uuid,
            line_of(doubled), line_of(doubled, day=YESTERDAY),  # the same reference again
            line_of(renamed, psp_reference="ch_other"),  # GoPay knows it by another name
            line_of(twice), line_of(twice, psp_reference="ch_twice_again"),
            line_of(retyped, type="payout"),
            {**line_of(shared), "merchant_reference": str(fine[1]["order_id"])},
            line_of(shared),  # its reference was first on another order's line
            line_of(renamed),  # after its wrong name: the first line to name it
            line_of(unnamed, psp_reference="ch_u1"), line_of(unnamed, psp_reference="ch_u2"),
        ]
        staged, streamed = both_ways(system.read_side.psp_orders, settlement_file(lines))

        assert staged == streamed
        findings, summary, count, period, report = staged
        assert (count, period) == (len(lines), (YESTERDAY.isoformat(), TODAY.isoformat()))
        missing = {item["merchant_reference"] for item in findings
                   if item["kind"] == "missing_in_psp"}
        assert missing == {str(order["order_id"]) for order in (
            gone, gone_yesterday, retyped, shared)}
        assert str(refused["order_id"]) not in missing
        assert summary["duplicates"] == 5 and summary["missing_in_ledger"] == 4
        assert sum(hour[0] + hour[1] for hours in report["hours"].values() for hour in hours) == (
            len(lines) + summary["missing_in_psp"])

    def test_a_random_file_of_thousands_of_lines(self, system: System, ledger: Ledger) -> None:
        """Lines drawn at random from every edit, repeated references and orders included."""
        rng = random.Random(13)
        orders = [ledger.order(rng.choice(("charge", "payout")),
                               day=rng.choice((TODAY, YESTERDAY, LONG_AGO)),
                               amount=rng.randint(100, 9_999),
                               status=rng.choice(("succeeded",) * 8 + ("failed", "pending")),
                               reference=rng.choice(("auto",) * 9 + (None,)))
                  for _ in range(1_500)]
        ledger.write()
        lines = []
        for _ in range(3_000):
            order = rng.choice(orders)
            edit = rng.choice(("none",) * 6 + ("amount", "fee", "status", "reference", "type",
                                                "stranger", "again"))
            line = line_of(order, day=rng.choice((TODAY, YESTERDAY)), hour=rng.randrange(24))
            if order["reference"] is None:
                line["psp_reference"] = f"ch_{rng.randrange(10**6)}"
            if edit == "amount":
                line["amount"] += 1
            elif edit == "fee":
                line["fee"] += 1
            elif edit == "status":
                line["status"] = "failed" if line["status"] == "settled" else "settled"
            elif edit == "reference":
                line["psp_reference"] = f"ch_{rng.randrange(50)}"  # some collide
            elif edit == "type":
                line["type"] = "payout" if order["kind"] == "charge" else "charge"
            elif edit == "stranger":
                line["merchant_reference"] = str(uuid4())
            elif edit == "again" and lines:
                line = dict(rng.choice(lines))
            lines.append(line)
        staged, streamed = both_ways(system.read_side.psp_orders, settlement_file(lines),
                                     (LONG_AGO.isoformat(),))

        assert staged == streamed
        summary = staged[1]
        assert all(summary[kind] > 0 for kind in summary), summary  # every kind was tried


class TestAFileThatCannotBeRead:
    def test_a_bad_line_deep_in_a_large_file_is_named(self, system: System, ledger: Ledger) -> None:
        """The copy stops at it, the file is refused by its line number, and nothing is left
        behind: the next file is matched on the same connections."""
        order = ledger.order()
        ledger.write()
        good = line_of(order)
        data = settlement_file([good] * 12_344 + [{**good, "amount": "12.5"}] + [good] * 50)
        view = system.read_side.psp_orders
        with pytest.raises(SettlementFileInvalid, match="line 12346: amount must be an integer"):
            list(StagedMatcher(view).findings(settlement.lines(io.BytesIO(data))))
        for _ in range(view.datastore.pool.max_size + 1):  # every connection of the pool, say
            matcher = StagedMatcher(view)
            assert list(matcher.findings(settlement.lines(io.BytesIO(settlement_file([good]))))) == []
            assert matcher.summary["matched"] == 1
