"""The scheduled integrity check: the read models recomputed from the events, any drift alerted."""

from __future__ import annotations

import logging
from typing import LiteralString

from prometheus_client import Counter, Gauge

from gopay.reconcile import audit
from gopay.system import System

log = logging.getLogger(__name__)

DRIFT = Gauge("gopay_read_model_drift",
              "Differences between the read models and the events the last integrity check "
              "found (0: they agree)")
CHECKS = Counter("gopay_integrity_checks_total", "Integrity checks of the read models, by outcome",
                 ["outcome"])
# Who is told by e-mail when a read model drifts: the staff who can act on it.
ALERTED_ROLES = ["admin", "auditor"]
ALERTED_STAFF: LiteralString = ("SELECT id, email FROM users WHERE kind = 'staff' "
                                "AND role = ANY(%s) ORDER BY id")


class IntegrityCheck:
    """Compares every read model with the events, each run; alerts on drift (staff are
    e-mailed when what drifts changes, not again every run while it stays the same)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self._last: list[str] = []

    def __call__(self) -> list[str]:
        """What drifted (nothing when every read model says what the events say)."""
        problems = audit.drift(self.system.app, self.system.read_side)
        DRIFT.set(len(problems))
        CHECKS.labels("drift" if problems else "clean").inc()
        for problem in problems:
            log.error("integrity check: read model drift: %s", problem)
        if not problems:
            log.info("integrity check: every read model agrees with the events")
        elif problems != self._last:
            self._alert_staff(problems)
        self._last = problems
        return problems

    def _alert_staff(self, problems: list[str]) -> None:
        body = ("GoPay's integrity check found read models that differ from the events:\n\n"
                + "\n".join(f"- {problem}" for problem in problems)
                + "\n\nRun `gopay audit verify` for the whole check, and `gopay projections "
                  "rebuild` (servers stopped) to rebuild the read models from the events.\n")
        for staff in self.system.read_side.directory.query(ALERTED_STAFF, (ALERTED_ROLES,)):
            self.system.outbox.put(staff["id"], staff["email"], "GoPay: read model drift", body)
