"""Reconciling a settlement file: read it once to know it, then match it against the ledger,
recording the run (and its findings, in chunks) as it goes; and the daily run of the
PSP's file of the day before.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import chain
from typing import Any, BinaryIO
from uuid import UUID, uuid4

from prometheus_client import Counter

from gopay.aggregates.reconciliation import run_id_for
from gopay.commands.reconciliation import FinishReconciliation, RecordFindings, StartReconciliation
from gopay.reconcile import settlement
from gopay.reconcile.matching import Matcher
from gopay.reconcile.settlement import SettlementFileInvalid
from gopay.system import System

log = logging.getLogger(__name__)

FINDINGS = Counter("gopay_reconciliation_findings_total",
                   "Lines and orders reconciled, by what was found (matched or a discrepancy)",
                   ["kind"])

# Findings recorded per event: a file with many differences is never held whole.
CHUNK = 500
# The PSP closes a day's file a while after midnight (UTC); the daily run waits this long.
DAY_CLOSES_AFTER = timedelta(minutes=30)

# Told which pass over the file is under way ("checking", "matching") and how many bytes it read.
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class RunOutcome:
    run_id: UUID
    repeated: bool  # the file had been reconciled before: this is that run


def reconcile(system: System, source: BinaryIO, *, file_name: str, origin: str,
              started_by: UUID | None, days: Sequence[date] = (),
              progress: Progress | None = None) -> RunOutcome:
    """Reconcile the settlement file `source` (seekable) as a run, or find the run it was.

    `days` are UTC days the file is for beyond those its lines fall on (a day with no
    operation has an empty file, and its orders are still missing at the PSP).
    """
    facts = settlement.check(source, _phase(progress, "checking"))
    requested = tuple(sorted({day.isoformat() for day in days}))
    period = tuple(sorted({*facts.days, *requested}))
    if not period:
        raise SettlementFileInvalid("the file has no lines: say which day it is for")
    run_id = run_id_for(facts.sha256, requested)
    attempt = uuid4()
    started = system.commands.run(StartReconciliation(
        run_id=run_id, file_sha256=facts.sha256, file_name=file_name[:255],
        requested_days=requested, period=period, source=origin, started_by=started_by,
        attempt=attempt))
    if started.value.attempt != attempt:  # reconciled before: the same file is the same run
        system.show(started.position)
        return RunOutcome(run_id, repeated=True)
    system.catch_up_reads()  # the ledger as it is now, every order committed before included
    matcher = Matcher(system.read_side.psp_orders, period)
    source.seek(0)
    digest = hashlib.sha256()
    lines = settlement.lines(source, _phase(progress, "matching"), digest)
    recorded = 0
    chunk: list[dict[str, Any]] = []
    for finding in chain(matcher.compare(lines), matcher.missing_in_psp()):
        chunk.append(finding.as_record())
        if len(chunk) == CHUNK:
            recorded = _record(system, run_id, attempt, recorded, chunk)
            chunk = []
    if digest.hexdigest() != facts.sha256:
        raise SettlementFileInvalid("the file changed while it was being read")
    if chunk:
        _record(system, run_id, attempt, recorded, chunk)
    finished = system.commands.run(FinishReconciliation(
        run_id=run_id, attempt=attempt, lines=matcher.lines, summary=matcher.summary,
        report=matcher.report()))
    for kind, count in matcher.summary.items():
        FINDINGS.labels(kind).inc(count)
    system.show(finished.position)
    return RunOutcome(run_id, repeated=False)


def reconcile_yesterday(system: System) -> UUID | None:
    """The daily job: reconcile the PSP's file of yesterday (UTC), once; the run's id, if it ran."""
    now = system.commands.context.clock()
    if now - now.replace(hour=0, minute=0, second=0, microsecond=0) < DAY_CLOSES_AFTER:
        return None
    day = now.date() - timedelta(days=1)
    if system.read_side.reconciliation.scheduled_run_done(day):
        return None
    text = system.psp.settlement_file(day)
    outcome = reconcile(system, io.BytesIO(text.encode()), file_name=f"{day.isoformat()}.csv",
                        origin="scheduled", started_by=None, days=[day])
    log.info("reconciled the PSP's settlement file of %s: run %s", day, outcome.run_id)
    return outcome.run_id


def _record(system: System, run_id: UUID, attempt: UUID, first: int,
            items: list[dict[str, Any]]) -> int:
    system.commands.run(RecordFindings(run_id=run_id, attempt=attempt, first=first,
                                       items=tuple(items)))
    return first + len(items)


def _phase(progress: Progress | None, phase: str) -> settlement.Progress | None:
    if progress is None:
        return None
    return lambda read: progress(phase, read)
