"""Reconciliation runs as commands: one run per file, findings in chunks, and a finding's
difference moved to suspense by finance, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from gopay.aggregates.errors import InvalidState, ValidationFailed
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.reconciliation import (
    SUMMARY_KEYS,
    ReconciliationRun,
    RunInProgress,
    RunStatus,
    run_id_for,
)
from gopay.aggregates.user import User
from gopay.commands.reconciliation import (
    AbandonReconciliation,
    FinishReconciliation,
    PostFindingToSuspense,
    RecordFindings,
    StartReconciliation,
)
from tests.unit.commands.in_memory import InMemoryGoPay

SHA = "5e" * 32
DAYS = ("2026-03-12",)
PSP_CLEARING = SystemAccount.PSP_CLEARING.account_id("USD")
SUSPENSE = SystemAccount.SUSPENSE.account_id("USD")


def start(gopay: InMemoryGoPay, attempt: UUID | None = None, **fields: Any) -> ReconciliationRun:
    values: dict[str, Any] = {
        "run_id": run_id_for(SHA, ()), "file_sha256": SHA, "file_name": "2026-03-12.csv",
        "requested_days": (), "source": "upload",
        "started_by": None, "attempt": attempt or uuid4(), **fields}
    return gopay.run(StartReconciliation(**values))


def finding(kind: str = "missing_in_ledger", amount: int = 941) -> dict[str, Any]:
    return {"kind": kind, "cause": "GoPay has no charge under it", "psp_reference": "ch_1",
            "merchant_reference": str(uuid4()), "expected": None, "actual": {"amount": 1_000},
            "order_ids": [], "line": 2,
            "difference": {"account": "psp_clearing", "amount": amount, "currency": "USD"}}


def summary(matched: int = 0, **kinds: int) -> dict[str, int]:
    return {key: kinds.get(key, 0) for key in SUMMARY_KEYS} | {"matched": matched}


def complete_run(gopay: InMemoryGoPay, *items: dict[str, Any]) -> ReconciliationRun:
    run = start(gopay)
    gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=items))
    counts: dict[str, int] = {}
    for item in items:
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return gopay.run(FinishReconciliation(run_id=run.id, attempt=run.attempt, period=DAYS,
                                          lines=len(items) + 3, summary=summary(3, **counts),
                                          report={}))


@pytest.fixture
def finance(gopay: InMemoryGoPay) -> User:
    return gopay.register("finance@gopay.example", kind="staff", role="finance")


class TestOneRunPerFile:
    def test_a_run_records_its_findings_in_chunks_then_its_summary(self, gopay: InMemoryGoPay) -> None:
        run = start(gopay)
        for first in (0, 2):
            gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=first,
                                     items=(finding(), finding("missing_in_psp"))))
        done = gopay.run(FinishReconciliation(
            run_id=run.id, attempt=run.attempt, period=DAYS, lines=10,
            summary=summary(8, missing_in_ledger=2, missing_in_psp=2), report={"hours": {}}))
        assert (done.status, done.items_found, done.lines, done.summary["matched"]) == (
            RunStatus.COMPLETED, 4, 10, 8)
        assert gopay.event_types(run.id) == ["Started", "ItemsFound", "ItemsFound", "Finished"]

    def test_the_same_file_again_is_the_same_run(self, gopay: InMemoryGoPay) -> None:
        """A completed run answers a second start as it is: no new event, its own attempt."""
        first = complete_run(gopay, finding())
        head = gopay.head()
        again = start(gopay)
        assert (again.id, again.attempt, gopay.head()) == (first.id, first.attempt, head)

    def test_a_file_being_reconciled_is_not_started_twice(self, gopay: InMemoryGoPay) -> None:
        start(gopay)
        gopay.clock.advance(minutes=9)
        with pytest.raises(RunInProgress):
            start(gopay)

    def test_a_run_whose_process_died_is_begun_again_and_its_findings_discarded(
            self, gopay: InMemoryGoPay) -> None:
        first = start(gopay)
        gopay.run(RecordFindings(run_id=first.id, attempt=first.attempt, first=0, items=(finding(),)))
        gopay.clock.advance(minutes=11)
        second = start(gopay)
        assert (second.items_found, second.attempt != first.attempt) == (0, True)
        with pytest.raises(RunInProgress):  # the dead attempt, should it wake, records nothing
            gopay.run(RecordFindings(run_id=first.id, attempt=first.attempt, first=0,
                                     items=(finding(),)))

    def test_an_unreadable_file_abandons_its_run_and_its_findings(self, gopay: InMemoryGoPay) -> None:
        """The same bytes again find the refusal; nothing of the run can go to suspense."""
        run = start(gopay)
        gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=(finding(),)))
        gopay.run(AbandonReconciliation(run_id=run.id, attempt=run.attempt,
                                        reason="line 9: amount must be an integer"))
        again = start(gopay)
        assert (again.status, again.abandoned_because, again.items_found) == (
            RunStatus.ABANDONED, "line 9: amount must be an integer", 0)
        with pytest.raises(InvalidState):
            gopay.run(PostFindingToSuspense(caller_id=uuid4(), run_id=run.id, seq=0,
                                            account="psp_clearing", amount=941, currency="USD"))

    def test_findings_come_in_order_and_the_summary_counts_them(self, gopay: InMemoryGoPay) -> None:
        run = start(gopay)
        with pytest.raises(InvalidState, match="from 0 are expected, not from 5"):
            gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=5, items=(finding(),)))
        gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=(finding(),)))
        with pytest.raises(InvalidState, match="does not count the findings"):
            gopay.run(FinishReconciliation(run_id=run.id, attempt=run.attempt, period=DAYS,
                                           lines=1, summary=summary(1), report={}))

    def test_the_run_id_is_the_file_s_digest_and_the_days_asked_for(self) -> None:
        assert run_id_for(SHA, ["2026-03-12"]) == run_id_for(SHA, ["2026-03-12"])
        assert len({run_id_for(SHA, ()), run_id_for(SHA, ["2026-03-12"]),
                    run_id_for("00" * 32, ())}) == 3


class TestSuspense:
    def test_a_finding_s_difference_moves_between_clearing_and_suspense(
            self, gopay: InMemoryGoPay, finance: User) -> None:
        """More at the PSP than booked: out of psp_clearing, into suspense; less: the other way."""
        run = complete_run(gopay, finding(amount=941), finding("amount_mismatch", amount=-100))
        more = gopay.run(PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=0,
                                               account="psp_clearing", amount=941, currency="USD"))
        less = gopay.run(PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=1,
                                               account="psp_clearing", amount=-100, currency="USD"))
        books = gopay.check_books()
        assert (books.accounts[PSP_CLEARING], books.accounts[SUSPENSE]) == (-841, 841)
        assert (more.order_type, more.initiated_by, more.note) == (
            TransactionType.ADJUSTMENT, finance.id, f"reconciliation {run.id}, finding 0")
        assert less.payer_wallet_id is None and less.payee_wallet_id is None
        assert dict(gopay.app.get(run.id, ReconciliationRun).posted_to_suspense) == {
            0: more.id, 1: less.id}

    def test_a_finding_goes_to_suspense_once(self, gopay: InMemoryGoPay, finance: User) -> None:
        run = complete_run(gopay, finding())
        post = PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=0,
                                     account="psp_clearing", amount=941, currency="USD")
        gopay.run(post)
        with pytest.raises(InvalidState, match="already in suspense"):
            gopay.run(PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=0,
                                            account="psp_clearing", amount=941, currency="USD"))
        assert gopay.check_books().accounts[SUSPENSE] == 941

    def test_a_keyed_repeat_answers_the_first_posting(self, gopay: InMemoryGoPay,
                                                      finance: User) -> None:
        run = complete_run(gopay, finding())
        orders = [gopay.run(PostFindingToSuspense(
            caller_id=finance.id, run_id=run.id, seq=0, account="psp_clearing", amount=941,
            currency="USD", idempotency_key="k", fingerprint="f")) for _ in range(2)]
        assert orders[0].id == orders[1].id and gopay.check_books().accounts[SUSPENSE] == 941

    @pytest.mark.parametrize(("seq", "account", "amount", "refusal"), [
        (1, "psp_clearing", 10, InvalidState),  # no such finding
        (0, "fees", 10, ValidationFailed),  # fees is no clearing account
        (0, "psp_clearing", 0, ValidationFailed),
    ])
    def test_only_a_run_s_findings_in_clearing_accounts(self, gopay: InMemoryGoPay,
                                                        finance: User, seq: int, account: str,
                                                        amount: int, refusal: type[Exception]) -> None:
        run = complete_run(gopay, finding())
        with pytest.raises(refusal):
            gopay.run(PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=seq,
                                            account=account, amount=amount, currency="USD"))
        assert gopay.check_books().accounts.get(SUSPENSE, 0) == 0

    def test_nothing_goes_to_suspense_before_the_run_is_complete(self, gopay: InMemoryGoPay,
                                                                 finance: User) -> None:
        run = start(gopay)
        gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=(finding(),)))
        with pytest.raises(InvalidState, match="not complete"):
            gopay.run(PostFindingToSuspense(caller_id=finance.id, run_id=run.id, seq=0,
                                            account="psp_clearing", amount=941, currency="USD"))


def test_a_stale_attempt_is_ten_minutes_without_progress(gopay: InMemoryGoPay) -> None:
    """Progress (a chunk of findings) renews the attempt's claim on the run."""
    run = start(gopay)
    gopay.clock.advance(minutes=8)
    gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=(finding(),)))
    gopay.clock.advance(minutes=8)
    with pytest.raises(RunInProgress):
        start(gopay, stale_after=timedelta(minutes=10))
