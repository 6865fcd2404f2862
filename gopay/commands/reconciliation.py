"""Reconciliation runs: started once per file, findings recorded in chunks, then the summary;
and a finding's difference moved to suspense by finance, once.

Why a staff action and not automatic: most differences explain themselves within days (the
PSP books a late operation on the next day's file, a webhook arrives late and the order
settles), and booking those would need undoing. Finance looks at a run's findings and moves
to suspense the ones it cannot explain. The amount is the finding's own, worked out when the
file was matched, never typed by hand; and it moves money only between two GoPay accounts
(the clearing account the PSP's money passes through, and suspense), so one person may do
it. Money leaves suspense only by an adjustment two people agree on
(`gopay.commands.adjustment_proposals`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.reconciliation import ReconciliationRun, RunInProgress, RunStatus
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.money_flow import MoneyCommand, MoneyFlow, money_flow
from gopay.group_commit import UnitOfWork

# An attempt that has recorded nothing for this long died with its process: another may
# start the run again. (A million-line file records its findings every few seconds.)
STALE_AFTER = timedelta(minutes=10)
# The accounts a finding's difference can be in: where the PSP's money passes through.
CLEARING_ACCOUNTS = (SystemAccount.PSP_CLEARING, SystemAccount.PAYOUT_CLEARING)


@dataclass(frozen=True, kw_only=True)
class StartReconciliation(Command[ReconciliationRun]):
    """Begin reconciling a file: the run it names, new, already complete, or begun again."""

    run_id: UUID
    file_sha256: str
    file_name: str
    requested_days: tuple[str, ...]
    source: str  # upload, cli or scheduled
    started_by: UUID | None
    attempt: UUID
    stale_after: timedelta = STALE_AFTER


@dataclass(frozen=True, kw_only=True)
class RecordFindings(Command[ReconciliationRun]):
    run_id: UUID
    attempt: UUID
    first: int
    items: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class FinishReconciliation(Command[ReconciliationRun]):
    run_id: UUID
    attempt: UUID
    period: tuple[str, ...]
    lines: int
    summary: Mapping[str, int]
    report: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class AbandonReconciliation(Command[ReconciliationRun]):
    """The file is not a settlement file GoPay can read: `reason` says where it is not."""

    run_id: UUID
    attempt: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class PostFindingToSuspense(MoneyCommand):
    """Book finding `seq`'s difference between its clearing account and suspense.

    `amount` is how much more the PSP holds than the clearing account says (less, when
    negative): the clearing account is corrected by it, and suspense holds it until finance
    finds whose it is.
    """

    operation = "reconciliation_suspense"
    run_id: UUID
    seq: int
    account: str
    amount: int
    currency: str


@in_batch(StartReconciliation, probes=lambda command: (command.run_id,))
def start_reconciliation(command: StartReconciliation, unit: UnitOfWork,
                         context: Context) -> ReconciliationRun:
    now = context.clock()
    run = unit.find(command.run_id, ReconciliationRun)
    if run is None:
        run = ReconciliationRun(id=command.run_id, file_sha256=command.file_sha256,
                                file_name=command.file_name, requested_days=command.requested_days,
                                source=command.source,
                                started_by=command.started_by, attempt=command.attempt,
                                at=now.isoformat())
        unit.add(run)
        return run
    if run.status != RunStatus.RUNNING:  # the same file again: the same run (or refusal)
        return run
    if now - datetime.fromisoformat(run.last_progress_at) < command.stale_after:
        raise RunInProgress("this file is being reconciled right now: ask again in a moment")
    run.restart(attempt=command.attempt, by=command.started_by, at=now.isoformat())
    return run


@in_batch(RecordFindings)
def record_findings(command: RecordFindings, unit: UnitOfWork, context: Context) -> ReconciliationRun:
    run = unit.get(command.run_id, ReconciliationRun)
    run.record_items(attempt=command.attempt, first=command.first, items=command.items,
                     at=context.clock().isoformat())
    return run


@in_batch(FinishReconciliation)
def finish_reconciliation(command: FinishReconciliation, unit: UnitOfWork,
                          context: Context) -> ReconciliationRun:
    run = unit.get(command.run_id, ReconciliationRun)
    run.finish(attempt=command.attempt, period=command.period, lines=command.lines,
               summary=command.summary, report=command.report, at=context.clock().isoformat())
    return run


@in_batch(AbandonReconciliation)
def abandon_reconciliation(command: AbandonReconciliation, unit: UnitOfWork,
                           context: Context) -> ReconciliationRun:
    run = unit.get(command.run_id, ReconciliationRun)
    run.abandon(attempt=command.attempt, reason=command.reason, at=context.clock().isoformat())
    return run


@money_flow(PostFindingToSuspense)
def post_finding_to_suspense(command: PostFindingToSuspense, unit: UnitOfWork,
                             context: Context) -> MoneyFlow:
    if command.account not in CLEARING_ACCOUNTS or not command.amount:
        raise ValidationFailed("a finding's difference is a non-zero amount in a clearing account")
    run = unit.get(command.run_id, ReconciliationRun)
    run.post_to_suspense(seq=command.seq, order_id=command.order_id, by=command.caller_id)
    clearing, suspense = SystemAccount(command.account), SystemAccount.SUSPENSE
    # More at the PSP than booked: the clearing account owes it to suspense; less: the other way.
    payer, payee = (clearing, suspense) if command.amount > 0 else (suspense, clearing)
    return MoneyFlow(TransactionType.ADJUSTMENT, Money(abs(command.amount), command.currency),
                     payer=payer, payee=payee,
                     reference=f"reconciliation {command.run_id}, finding {command.seq}",
                     limits=False, charges_fee=False)
