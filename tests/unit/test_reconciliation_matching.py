"""Settlement files read and matched against a ledger: each kind of discrepancy, and only those."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from gopay.aggregates.payment_order import order_id_for
from gopay.reconcile import settlement
from gopay.reconcile.matching import ExpectedOrder, Finding, Matcher
from gopay.reconcile.settlement import HEADER, SettlementFileInvalid

DAY = "2026-03-12"
AT = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)


@dataclass
class Books:
    """A fake of the read side's PSP orders: what the ledger says, in a dict."""

    orders: dict[str, ExpectedOrder] = field(default_factory=dict)
    lookups: int = 0

    def add(self, kind: str = "charge", amount: int = 1_000, fee: int = 59,
            status: str = "succeeded", reference: str | None = "auto", **fields: Any) -> ExpectedOrder:
        order_id = fields.pop("order_id", str(uuid4()))
        if reference == "auto":
            reference = f"{kind[:2]}_{order_id[:8]}"
        order = ExpectedOrder(order_id, kind, amount, fields.pop("currency", "USD"), fee, status,
                              reference, fields.pop("created_at", AT), fields.pop("topup_id", None))
        self.orders[order_id] = order
        return order

    def expected(self, order_ids: Sequence[str], *,
                 created_at: bool = False) -> Mapping[str, ExpectedOrder]:
        self.lookups += 1
        return {order_id: self.orders[order_id] for order_id in order_ids if order_id in self.orders}

    def order_ids_of(self, days: Sequence[str]) -> Iterator[str]:
        return iter([order.order_id for order in self.orders.values()
                     if order.created_at.date().isoformat() in days
                     and not (order.status == "failed" and order.psp_reference is None)])

    def totals(self, days: Sequence[str]) -> list[dict[str, Any]]:
        return []


def line_of(order: ExpectedOrder, **changes: Any) -> dict[str, Any]:
    """The settlement line the PSP writes for `order`, with `changes`."""
    line = {"psp_reference": order.psp_reference, "merchant_reference": order.order_id,
            "type": order.kind, "amount": order.amount, "currency": order.currency,
            "fee": order.fee, "status": "settled" if order.status == "succeeded" else "failed",
            "settled_at": "2026-03-12T09:30:01.000000Z"}
    return {**line, **changes}


def csv_file(*lines: Mapping[str, Any], header: Sequence[str] = HEADER) -> bytes:
    rows = [",".join(header)] + [",".join(str(line[name]) for name in header) for line in lines]
    return ("\n".join(rows) + "\n").encode()


def reconciled(books: Books, data: bytes, period: Sequence[str] = (DAY,)) -> tuple[Matcher, list[Finding]]:
    matcher = Matcher(books, period, batch_size=3)
    findings = list(matcher.compare(settlement.lines(io.BytesIO(data))))
    return matcher, findings + list(matcher.missing_in_psp())


class TestEachKindOfDiscrepancy:
    def test_exactly_the_edited_lines_are_flagged(self) -> None:
        """A file of the ledger's own orders, with one edit of each kind: those and nothing else."""
        books = Books()
        agreeing = [books.add(amount=500 + n) for n in range(5)]
        payout = books.add("payout", amount=700, fee=25)
        declined = books.add(status="failed", fee=0)
        topup = books.add(amount=3_000, fee=117)
        chargeback = books.add("chargeback", amount=3_000, fee=1_500, reference=None,
                               order_id=str(order_id_for(UUID(topup.order_id), "chargeback", "dp_1")),
                               topup_id=topup.order_id)
        short, costly, unsettled, missing, doubled = (books.add(amount=2_000) for _ in range(5))
        stranger = {"psp_reference": "ch_unknown", "merchant_reference": str(uuid4()),
                    "type": "charge", "amount": 4_000, "currency": "USD", "fee": 146,
                    "status": "settled", "settled_at": "2026-03-12T10:00:00Z"}
        data = csv_file(
            *(line_of(order) for order in agreeing), line_of(payout), line_of(declined),
            line_of(topup), line_of(chargeback, psp_reference="dp_1",
                                    merchant_reference=topup.order_id),
            line_of(short, amount=1_900), line_of(costly, fee=99), line_of(unsettled, status="failed"),
            stranger, line_of(doubled), line_of(doubled))

        matcher, findings = reconciled(books, data)

        assert matcher.summary == {"matched": 10, "missing_in_ledger": 1, "missing_in_psp": 1,
                                   "amount_mismatch": 1, "status_mismatch": 1,
                                   "fee_mismatch": 1, "duplicates": 1}
        found = {(f.kind.value, f.merchant_reference): f for f in findings}
        assert set(found) == {
            ("amount_mismatch", short.order_id), ("fee_mismatch", costly.order_id),
            ("status_mismatch", unsettled.order_id), ("missing_in_psp", missing.order_id),
            ("missing_in_ledger", stranger["merchant_reference"]),
            ("duplicates", doubled.order_id)}
        amount = found["amount_mismatch", short.order_id]
        assert (amount.expected, amount.actual) == ({"amount": 2_000, "currency": "USD"},
                                                    {"amount": 1_900, "currency": "USD"})
        assert amount.order_ids == (short.order_id,) and amount.line == 11
        fee = found["fee_mismatch", costly.order_id]
        assert (fee.expected, fee.actual) == ({"fee": 59}, {"fee": 99})
        status = found["status_mismatch", unsettled.order_id]
        assert (status.expected, status.actual) == ({"status": "succeeded"}, {"status": "failed"})
        gone = found["missing_in_psp", missing.order_id]
        assert gone.actual is None and gone.expected == {
            "type": "charge", "amount": 2_000, "currency": "USD", "fee": 59, "status": "succeeded"}
        unknown = found["missing_in_ledger", stranger["merchant_reference"]]
        assert unknown.expected is None and unknown.actual == {
            "type": "charge", "amount": 4_000, "currency": "USD", "fee": 146,
            "status": "settled", "settled_at": "2026-03-12T10:00:00Z"}
        assert "again (first on line 15)" in found["duplicates", doubled.order_id].cause

    def test_each_difference_is_what_the_psp_holds_beyond_the_ledger(self) -> None:
        """The amount finance may move to suspense, in the clearing account it belongs to."""
        books = Books()
        short, costly, unsettled, missing, paid = (books.add(amount=2_000, fee=59) for _ in range(5))
        payout = books.add("payout", amount=700, fee=25)
        data = csv_file(line_of(short, amount=1_900), line_of(costly, fee=99),
                        line_of(unsettled, status="failed", fee=0), line_of(paid), line_of(paid),
                        line_of(payout, amount=800),
                        {"psp_reference": "ch_x", "merchant_reference": "not-a-uuid",
                         "type": "charge", "amount": 4_000, "currency": "USD", "fee": 146,
                         "status": "settled", "settled_at": "2026-03-12T10:00:00Z"})
        _, findings = reconciled(books, data)
        differences = {f.merchant_reference: f.difference for f in findings}
        psp = "psp_clearing"
        assert differences == {
            short.order_id: {"account": psp, "amount": -100, "currency": "USD"},
            costly.order_id: {"account": psp, "amount": -40, "currency": "USD"},
            unsettled.order_id: {"account": psp, "amount": -1_941, "currency": "USD"},
            paid.order_id: None,  # the same line twice: a file error, not money
            payout.order_id: {"account": "payout_clearing", "amount": -100, "currency": "USD"},
            "not-a-uuid": {"account": psp, "amount": 3_854, "currency": "USD"},
            missing.order_id: {"account": psp, "amount": -1_941, "currency": "USD"},
        }

    def test_an_order_still_settling_has_no_difference_to_post(self) -> None:
        books = Books()
        pending = books.add(status="pending", fee=0)
        _, [finding] = reconciled(books, csv_file(line_of(pending, status="settled", fee=59)))
        assert finding.kind == "status_mismatch" and finding.difference is None
        assert "still waiting for the PSP's answer" in finding.cause


class TestWhatALineIsAbout:
    def test_a_chargeback_names_the_top_up_and_finds_its_own_order(self) -> None:
        """The PSP names a chargeback by the charge's nonce; GoPay's order derives from its reference."""
        books = Books()
        topup = books.add(amount=3_000)
        chargeback_id = str(order_id_for(UUID(topup.order_id), "chargeback", "dp_9"))
        books.add("chargeback", amount=3_000, fee=1_500, reference=None, order_id=chargeback_id,
                  topup_id=topup.order_id)
        back = {"psp_reference": "dp_9", "merchant_reference": topup.order_id,
                "type": "chargeback", "amount": 3_000, "currency": "USD", "fee": 1_400,
                "status": "settled", "settled_at": "2026-03-12T11:00:00Z"}
        matcher, [finding] = reconciled(books, csv_file(line_of(topup), back))
        assert finding.kind == "fee_mismatch"
        assert finding.order_ids == (chargeback_id, topup.order_id)
        assert matcher.summary["matched"] == 1

    def test_another_psp_reference_is_an_operation_the_ledger_lacks(self) -> None:
        """The order GoPay knows as ch_a is not in the file, and ch_b is not in the ledger."""
        books = Books()
        order = books.add(reference="ch_a")
        _, findings = reconciled(books, csv_file(line_of(order, psp_reference="ch_b")))
        assert [(f.kind.value, f.psp_reference) for f in findings] == [
            ("missing_in_ledger", "ch_b"), ("missing_in_psp", "ch_a")]

    def test_a_second_operation_for_one_order_is_a_duplicate_with_money(self) -> None:
        books = Books()
        order = books.add(reference="ch_a")
        _, [finding] = reconciled(books, csv_file(line_of(order), line_of(order, psp_reference="ch_b")))
        assert finding.kind == "duplicates" and "moved the money twice" in finding.cause
        assert finding.difference == {"account": "psp_clearing", "amount": 941, "currency": "USD"}

    def test_a_line_of_another_type_than_its_order_is_missing_in_the_ledger(self) -> None:
        books = Books()
        order = books.add("payout")
        _, findings = reconciled(books, csv_file(line_of(order, type="charge")))
        assert [f.kind.value for f in findings] == ["missing_in_ledger", "missing_in_psp"]
        assert "is a payout, not a charge" in findings[0].cause

    def test_orders_of_other_days_and_those_the_psp_refused_are_not_missing(self) -> None:
        books = Books()
        books.add(created_at=datetime(2026, 3, 11, 23, 59, tzinfo=UTC))
        books.add(status="failed", reference=None, fee=0)  # the PSP refused it: never booked
        matcher, findings = reconciled(books, csv_file())
        assert findings == [] and matcher.summary["missing_in_psp"] == 0

    def test_orders_are_looked_up_in_batches(self) -> None:
        """Ten lines, batches of three: four lookups, not ten."""
        books = Books()
        orders = [books.add() for _ in range(10)]
        books.lookups = 0
        matcher, findings = reconciled(books, csv_file(*(line_of(order) for order in orders)))
        assert findings == [] and matcher.summary["matched"] == 10
        assert books.lookups == 4


class TestTheReport:
    def test_the_day_by_hour_and_the_file_s_totals(self) -> None:
        books = Books()
        late, early = books.add(amount=100, fee=1), books.add(amount=200, fee=2)
        data = csv_file(line_of(late, settled_at="2026-03-12T23:59:59Z"),
                        line_of(early, settled_at="2026-03-12T00:00:00Z", fee=3))
        matcher, _ = reconciled(books, data)
        report = matcher.report()
        hours = report["hours"][DAY]
        assert (hours[23], hours[0], sum(h[0] + h[1] for h in hours)) == ([1, 0], [0, 1], 2)
        assert report["file_totals"] == [{"type": "charge", "status": "settled", "currency": "USD",
                                          "count": 2, "amount": 300, "fee": 4}]


class TestReadingAFile:
    def test_the_digest_is_of_the_bytes_and_the_days_those_of_the_lines(self) -> None:
        data = csv_file(
            line_of(Books().add(), settled_at="2026-03-12T23:59:59+00:00"),
            line_of(Books().add(), settled_at="2026-03-13T01:00:00+02:00"),  # 2026-03-12 in UTC
            line_of(Books().add(), settled_at="2026-03-13T00:00:00Z"))
        read: list[int] = []
        assert settlement.sha256_of(io.BytesIO(data), read.append) == hashlib.sha256(data).hexdigest()
        assert read == [len(data)]
        matcher, _ = reconciled(Books(), data, period=())
        assert (matcher.lines, matcher.period) == (3, ("2026-03-12", "2026-03-13"))

    def test_columns_in_another_order_a_bom_and_blank_lines_are_read(self) -> None:
        order = Books().add()
        header = [*list(reversed(HEADER)), "note"]
        line = {**line_of(order), "note": "extra"}
        data = b"\xef\xbb\xbf" + csv_file(line, header=header) + b"\n\n"
        [read] = list(settlement.lines(io.BytesIO(data)))
        assert (read.number, read.merchant_reference, read.amount, read.fee) == (
            2, order.order_id, order.amount, order.fee)

    @pytest.mark.parametrize(("change", "problem"), [
        ({"amount": "10.50"}, "line 3: amount must be an integer"),
        ({"amount": "0"}, "line 3: amount must be from 1"),
        ({"fee": "-1"}, "line 3: fee must be an integer"),
        ({"type": "transfer"}, "line 3: type must be one of"),
        ({"status": "pending"}, "line 3: status must be one of"),
        ({"currency": "usd"}, "line 3: currency must be an ISO 4217 code"),
        ({"settled_at": "yesterday"}, "line 3: settled_at must be an RFC 3339"),
        ({"settled_at": "2026-03-12T10:00:00"}, "line 3: settled_at must say its offset"),
        ({"psp_reference": ""}, "line 3: psp_reference must be"),
    ])
    def test_a_bad_line_refuses_the_whole_file_naming_it(self, change: dict[str, str],
                                                         problem: str) -> None:
        order = Books().add()
        data = csv_file(line_of(order), line_of(order, **change))
        with pytest.raises(SettlementFileInvalid, match=problem) as refused:
            list(settlement.lines(io.BytesIO(data)))
        assert refused.value.details["line"] == 3

    @pytest.mark.parametrize(("data", "problem"), [
        (b"", "the file is empty"),
        (b"psp_reference,amount\n", "the header row lacks merchant_reference"),
        (csv_file() + b"a,b\n", "line 2: it has 2 fields, the header 8"),
        (b"\xff\xfe" + csv_file(), "not UTF-8"),
        (csv_file() + b'"unterminated,b,c,d,e,f,g,h\n', "it is not CSV"),
    ])
    def test_what_is_no_settlement_file_is_refused(self, data: bytes, problem: str) -> None:
        with pytest.raises(SettlementFileInvalid, match=problem):
            list(settlement.lines(io.BytesIO(data)))
