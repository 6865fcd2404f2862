"""Reconciling a settlement file: read it once for its digest (the run's identity), then
check it in one streaming pass into PostgreSQL, which matches it against the ledger; the run
and its findings (in chunks) recorded as they come; and the daily run of the PSP's file of
the day before.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, BinaryIO
from uuid import UUID, uuid4

from prometheus_client import Counter

from gopay.aggregates.reconciliation import RunStatus, run_id_for
from gopay.commands.reconciliation import (
    AbandonReconciliation,
    FinishReconciliation,
    RecordFindings,
    StartReconciliation,
)
from gopay.reconcile import settlement
from gopay.reconcile.settlement import SettlementFileInvalid
from gopay.reconcile.staged_matching import StagedMatcher
from gopay.system import System

log = logging.getLogger(__name__)

FINDINGS = Counter("gopay_reconciliation_findings_total",
                   "Lines and orders reconciled, by what was found (matched or a discrepancy)",
                   ["kind"])

# Findings recorded per event: a file with many differences is never held whole.
CHUNK = 500
# The PSP closes a day's file a while after midnight (UTC); the daily run waits this long.
DAY_CLOSES_AFTER = timedelta(minutes=30)

# Told which pass over the file is under way ("reading", "matching") and how many bytes it read.
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class RunOutcome:
    run_id: UUID
    repeated: bool  # the file had been reconciled before: this is that run


class FileChanged(SettlementFileInvalid):
    """The bytes matched are not those the digest was taken of (a file still being written)."""


def reconcile(system: System, source: BinaryIO, *, file_name: str, origin: str,
              started_by: UUID | None, days: Sequence[date] = (),
              progress: Progress | None = None) -> RunOutcome:
    """Reconcile the settlement file `source` (seekable) as a run, or find the run it was.

    `days` are UTC days the file is for beyond those its lines fall on (a day with no
    operation has an empty file, and its orders are still missing at the PSP). The file is
    read twice: once for its digest (the run's identity), once to check and match its lines.
    Raises `SettlementFileInvalid` for a file that is no settlement file (and for the same
    bytes again).
    """
    sha256 = settlement.sha256_of(source, _phase(progress, "reading"))
    requested = tuple(sorted({day.isoformat() for day in days}))
    run_id = run_id_for(sha256, requested)
    attempt = uuid4()
    started = system.commands.run(StartReconciliation(
        run_id=run_id, file_sha256=sha256, file_name=file_name[:255], requested_days=requested,
        source=origin, started_by=started_by, attempt=attempt))
    run = started.value
    if run.status == RunStatus.ABANDONED:
        raise SettlementFileInvalid(run.abandoned_because)
    if run.attempt != attempt:  # reconciled before: the same file is the same run
        system.show(started.position)
        return RunOutcome(run_id, repeated=True)
    system.catch_up_reads()  # the ledger as it is now, every order committed before included
    digest = hashlib.sha256()  # of the bytes matched, which must be those the run is for
    try:
        finished = _match(system, source, run_id, attempt, digest, sha256, requested, progress)
    except FileChanged:
        raise  # the bytes the digest named may be sound: the run is left to be taken over
    except SettlementFileInvalid as invalid:
        while rest := source.read(1 << 20):  # only the bytes the run is for earn its refusal
            digest.update(rest)
        if digest.hexdigest() != sha256:
            raise FileChanged(f"the file changed while it was being read ({invalid}): send it "
                              "again once it is complete") from invalid
        system.commands.run(AbandonReconciliation(run_id=run_id, attempt=attempt,
                                                  reason=str(invalid)))
        raise
    system.show(finished)
    return RunOutcome(run_id, repeated=False)


def _match(system: System, source: BinaryIO, run_id: UUID, attempt: UUID, digest: Any,
           sha256: str, requested: tuple[str, ...], progress: Progress | None) -> int:
    """Check and match every line, recording the findings as they come; the log position
    of the run's end."""
    matcher = StagedMatcher(system.read_side.psp_orders, requested)
    source.seek(0)
    lines = settlement.lines(source, _phase(progress, "matching"), digest)
    recorded = 0
    chunk: list[dict[str, Any]] = []
    for finding in matcher.findings(lines):
        chunk.append(finding.as_record())
        if len(chunk) == CHUNK:
            recorded = _record(system, run_id, attempt, recorded, chunk)
            chunk = []
    if digest.hexdigest() != sha256:
        raise FileChanged("the file changed while it was being read: send it again once "
                          "it is complete")
    if not matcher.period:
        raise SettlementFileInvalid("the file has no lines: say which day it is for")
    if chunk:
        _record(system, run_id, attempt, recorded, chunk)
    finished = system.commands.run(FinishReconciliation(
        run_id=run_id, attempt=attempt, period=matcher.period, lines=matcher.lines,
        summary=matcher.summary, report=matcher.report()))
    for kind, count in matcher.summary.items():
        FINDINGS.labels(kind).inc(count)
    return finished.position


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
