"""Reconciliation on PostgreSQL: the PSP's side of the ledger as projected, a file of real
orders reconciled, and the daily job that fetches yesterday's file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pytest

from gopay.aggregates.instruments import bank_account, card
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.commands.payment_methods import AddPaymentMethod
from gopay.commands.payouts import RequestPayout
from gopay.commands.psp_outcomes import ChargeBack, SettleWithPsp
from gopay.commands.registration import Register
from gopay.commands.topups import RequestTopUp
from gopay.psp.port import OperationStatus
from gopay.reconcile.runs import FileChanged, reconcile, reconcile_yesterday
from gopay.reconcile.settlement import HEADER, SettlementFileInvalid
from gopay.system import System


@pytest.fixture
def running(system: System) -> Iterator[System]:
    """The system with its projection runner going, as a server runs it."""
    system.read_side.start()
    return system


@dataclass
class Customer:
    """A customer with a card and a bank account, making orders the PSP settles at once."""

    system: System
    user: Any = None
    card_id: UUID | None = None
    account_id: UUID | None = None
    settled: dict[UUID, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run = self.system.commands.run
        self.user = run(Register(email="ada@example.com", password="x" * 12, kind="person",
                                 full_name="Ada", country="GB")).value
        today = datetime.now(UTC).date()
        self.card_id = run(AddPaymentMethod(owner_id=self.user.id, instrument=card(
            "4242424242424242", 12, today.year + 2, "123", "Ada", today=today))).value.id
        self.account_id = run(AddPaymentMethod(owner_id=self.user.id, instrument=bank_account(
            "DE89370400440532013000", "Ada"))).value.id

    def top_up(self, amount: int, *, fee: int = 0, fails: bool = False) -> PaymentOrder:
        order = self.system.commands.run(RequestTopUp(
            caller_id=self.user.id, wallet_id=self.user.wallet_id, payment_method_id=self.card_id,
            money=Money(amount, "USD"))).value
        return self._settle(order, "charge", "ch", fee, fails)

    def pay_out(self, amount: int, *, fee: int = 25) -> PaymentOrder:
        order = self.system.commands.run(RequestPayout(
            caller_id=self.user.id, wallet_id=self.user.wallet_id,
            payment_method_id=self.account_id, money=Money(amount, "USD"))).value
        return self._settle(order, "payout", "po", fee, False)

    def charge_back(self, topup: PaymentOrder, fee: int = 1_500) -> PaymentOrder:
        reference = f"dp_{topup.id.hex[:12]}"
        order = self.system.commands.run(ChargeBack(
            caller_id=topup.id, topup_id=topup.id, idempotency_key=reference,
            fingerprint="charge.disputed", money=Money(topup.amount, "USD"), psp_fee=fee)).value
        self.settled[order.id] = line(reference, topup.id, "chargeback", topup.amount, fee, "settled")
        return order

    def _settle(self, order: PaymentOrder, kind: str, prefix: str, fee: int,
                fails: bool) -> PaymentOrder:
        reference = f"{prefix}_{order.id.hex[:12]}"
        self.system.commands.run(SettleWithPsp(
            order_id=order.id, psp_reference=reference, fee=0 if fails else fee,
            status=OperationStatus.FAILED if fails else OperationStatus.SUCCEEDED,
            failure_reason="card_declined" if fails else None))
        self.settled[order.id] = line(reference, order.id, kind, order.amount,
                                      0 if fails else fee, "failed" if fails else "settled")
        return order


def line(reference: str, merchant_reference: UUID, kind: str, amount: int, fee: int,
         status: str, at: datetime | None = None) -> dict[str, Any]:
    moment = (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return {"psp_reference": reference, "merchant_reference": str(merchant_reference),
            "type": kind, "amount": amount, "currency": "USD", "fee": fee, "status": status,
            "settled_at": moment}


def settlement_file(*lines: dict[str, Any]) -> bytes:
    rows = [",".join(HEADER), *(",".join(str(line[name]) for name in HEADER) for line in lines)]
    return ("\n".join(rows) + "\n").encode()


class TestThePspSideOfTheLedger:
    def test_each_order_as_the_psp_should_report_it(self, running: System) -> None:
        """Kind, status, reference, and the PSP's fee as booked (out of a planned entry or not)."""
        ada = Customer(running)
        topup = ada.top_up(10_000, fee=320)
        declined = ada.top_up(500, fails=True)
        payout = ada.pay_out(2_000, fee=25)
        chargeback = ada.charge_back(topup, fee=1_500)
        running.catch_up_reads()
        found = running.read_side.psp_orders.expected(
            [str(order.id) for order in (topup, declined, payout, chargeback)])
        shown = {UUID(k): (v.kind, v.status, v.amount, v.fee, v.psp_reference, v.topup_id)
                 for k, v in found.items()}
        assert shown == {
            topup.id: ("charge", "succeeded", 10_000, 320, ada.settled[topup.id]["psp_reference"], None),
            declined.id: ("charge", "failed", 500, 0, ada.settled[declined.id]["psp_reference"], None),
            payout.id: ("payout", "succeeded", 2_000, 25, ada.settled[payout.id]["psp_reference"], None),
            chargeback.id: ("chargeback", "succeeded", 10_000, 1_500, None, str(topup.id))}


class TestReconcilingAFile:
    def test_a_file_of_real_orders_with_one_edit_of_each_kind(self, running: System) -> None:
        """Exactly the edited lines (and the removed one) are flagged, each with the orders involved."""
        ada = Customer(running)
        fine = [ada.top_up(1_000 + n, fee=59) for n in range(3)]
        declined = ada.top_up(500, fails=True)
        chargeback = ada.charge_back(fine[0])
        payout = ada.pay_out(700)
        short, costly, unsettled, missing, doubled = (ada.top_up(2_000, fee=88) for _ in range(5))
        stranger = line("ch_stranger", UUID(int=7), "charge", 4_000, 146, "settled")
        lines = [ada.settled[o.id] for o in (*fine, declined, chargeback, payout, doubled)]
        lines += [{**ada.settled[short.id], "amount": 1_990}, {**ada.settled[costly.id], "fee": 99},
                  {**ada.settled[unsettled.id], "status": "failed", "fee": 0}, stranger,
                  ada.settled[doubled.id]]
        outcome = reconcile(running, io.BytesIO(settlement_file(*lines)), file_name="today.csv",
                            origin="upload", started_by=None)

        run = running.read_side.reconciliation.run(outcome.run_id)
        assert run is not None and run["status"] == "completed" and run["lines"] == 12
        assert run["summary"] == {"matched": 7, "missing_in_ledger": 1, "missing_in_psp": 1,
                                  "amount_mismatch": 1, "status_mismatch": 1, "fee_mismatch": 1,
                                  "duplicates": 1}
        items = running.read_side.reconciliation.items(outcome.run_id, limit=100)
        assert {(i["kind"], i["merchant_reference"]) for i in items} == {
            ("amount_mismatch", str(short.id)), ("fee_mismatch", str(costly.id)),
            ("status_mismatch", str(unsettled.id)), ("missing_in_ledger", str(UUID(int=7))),
            ("duplicates", str(doubled.id)), ("missing_in_psp", str(missing.id))}
        by_kind = {i["kind"]: i for i in items}
        assert (by_kind["amount_mismatch"]["expected"], by_kind["amount_mismatch"]["actual"]) == (
            {"amount": 2_000, "currency": "USD"}, {"amount": 1_990, "currency": "USD"})
        assert by_kind["missing_in_psp"]["order_ids"] == [str(missing.id)]
        assert by_kind["missing_in_psp"]["difference"] == {
            "account": "psp_clearing", "amount": -(2_000 - 88), "currency": "USD"}

        again = reconcile(running, io.BytesIO(settlement_file(*lines)), file_name="again.csv",
                          origin="upload", started_by=None)
        assert (again.run_id, again.repeated) == (outcome.run_id, True)
        assert len(running.read_side.reconciliation.runs(limit=10)) == 1

    def test_an_empty_file_for_a_day_finds_the_day_s_orders_missing(self, running: System) -> None:
        """A day without lines still has its orders compared, when the day is named."""
        ada = Customer(running)
        order = ada.top_up(1_000, fee=59)
        today = datetime.now(UTC).date()
        outcome = reconcile(running, io.BytesIO(settlement_file()), file_name="empty.csv",
                            origin="upload", started_by=None, days=[today])
        run = running.read_side.reconciliation.run(outcome.run_id)
        assert run is not None and run["period"] == [today.isoformat()]
        [item] = running.read_side.reconciliation.items(outcome.run_id, limit=10)
        assert (item["kind"], item["order_ids"]) == ("missing_in_psp", [str(order.id)])
        other_day = reconcile(running, io.BytesIO(settlement_file()), file_name="empty.csv",
                              origin="upload", started_by=None, days=[today - timedelta(days=1)])
        assert other_day.run_id != outcome.run_id  # the same bytes, for another day


class Rewritten(io.BytesIO):
    """A file that is rewritten between the two readings (one still being downloaded)."""

    def __init__(self, first: bytes, then: bytes) -> None:
        super().__init__(first)
        self.then = then

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) == (0, 0) and self.tell():  # the second reading begins
            self.truncate(0)
            super().seek(0)
            self.write(self.then)
        return super().seek(offset, whence)


class TestAFileThatCannotBeRead:
    def test_a_bad_line_abandons_the_run_and_the_same_bytes_are_refused_alike(
            self, running: System) -> None:
        stranger = line("ch_stranger", UUID(int=7), "charge", 4_000, 146, "settled")
        broken = settlement_file(stranger) + b"ch_x,y,charge,ten,USD,0,settled,now\n"
        with pytest.raises(SettlementFileInvalid, match="line 3") as refused:
            reconcile(running, io.BytesIO(broken), file_name="bad.csv", origin="upload",
                      started_by=None)
        with pytest.raises(SettlementFileInvalid) as again:
            reconcile(running, io.BytesIO(broken), file_name="bad.csv", origin="upload",
                      started_by=None)
        assert str(again.value) == str(refused.value)
        running.catch_up_reads()
        [run] = running.read_side.reconciliation.runs(limit=10)
        assert (run["status"], run["abandoned_because"]) == ("abandoned", str(refused.value))

    def test_a_file_rewritten_while_it_is_read_does_not_condemn_the_bytes_first_read(
            self, running: System) -> None:
        """The run is named by the first reading's digest; a bad line in other bytes is no
        reason to refuse those bytes for good, so the run is not abandoned."""
        for n, broken in enumerate((b"ch_x,y,charge,ten,USD,0,settled,now\n", b"")):
            sound = settlement_file(line(f"ch_{n}", UUID(int=n), "charge", 4_000, 146, "settled"))
            then = sound.replace(b"4000", b"4001") + broken
            with pytest.raises(FileChanged):
                reconcile(running, Rewritten(sound, then), file_name="partial.csv",
                          origin="upload", started_by=None)
        running.catch_up_reads()
        assert [run["status"] for run in running.read_side.reconciliation.runs(limit=10)] == [
            "running", "running"]


@dataclass
class FakePsp:
    """The PSP's settlement files, as a dict of day to text; it counts what it is asked."""

    files: dict[date, str]
    asked: list[date] = field(default_factory=list)

    def settlement_file(self, day: date) -> str:
        self.asked.append(day)
        return self.files.get(day, ",".join(HEADER) + "\n")

    def close(self) -> None:
        """Nothing to close."""


def use_psp(system: System, psp: FakePsp) -> None:
    system.psp.close()
    system.psp = psp  # type: ignore[assignment]  # a fake of the PSP's port


class TestTheDailyJob:
    def test_yesterday_s_file_is_reconciled_once(self, running: System) -> None:
        """After the PSP has closed the day; a second try finds it done and asks nothing."""
        noon = datetime.combine(datetime.now(UTC).date(), time(12), UTC)
        running.commands.context = replace(running.commands.context, clock=lambda: noon)
        yesterday = noon.date() - timedelta(days=1)
        stranger = line("ch_late", UUID(int=9), "charge", 1_000, 59, "settled",
                        at=datetime.combine(yesterday, datetime.min.time(), UTC))
        psp = FakePsp({yesterday: settlement_file(stranger).decode()})
        use_psp(running, psp)
        run_id = reconcile_yesterday(running)
        assert run_id is not None and reconcile_yesterday(running) is None
        assert psp.asked == [yesterday]
        run = running.read_side.reconciliation.run(run_id)
        assert run is not None
        assert (run["source"], run["period"], run["summary"]["missing_in_ledger"]) == (
            "scheduled", [yesterday.isoformat()], 1)

    def test_nothing_is_fetched_before_the_psp_closes_the_day(self, running: System) -> None:
        early = datetime.combine(datetime.now(UTC).date(), time(0, 10), UTC)
        running.commands.context = replace(running.commands.context, clock=lambda: early)
        psp = FakePsp({})
        use_psp(running, psp)
        assert reconcile_yesterday(running) is None and psp.asked == []
