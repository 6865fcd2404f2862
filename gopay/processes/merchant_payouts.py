"""The automated merchant payouts job: every schedule due now gets its period's payout.

The read side names the candidates (an active schedule whose wallet is not frozen and has
its minimum available); the command decides on the aggregates themselves, so a candidate
the read side shows a moment late is no risk: a period already paid out finds its order
and changes nothing, and one not due, frozen or under the minimum is left for next time.
"""

from __future__ import annotations

import logging
from uuid import UUID

from prometheus_client import Counter

from gopay.aggregates.errors import DomainError
from gopay.aggregates.payout_schedule import Frequency, period_due
from gopay.commands import Commands
from gopay.commands.merchant_payouts import PayOutMerchant
from gopay.projections.read_side import ReadSide

log = logging.getLogger(__name__)

STARTED = Counter("gopay_scheduled_payouts_total", "Scheduled merchant payouts the job asked for, "
                  "by outcome", ["outcome"])
PAGE = 500


def pay_out_due(commands: Commands, read_side: ReadSide) -> int:
    """Ask for the payout of every schedule due today (UTC); how many were asked for."""
    today = commands.context.today()
    asked = 0
    after: UUID | None = None
    while rows := read_side.payout_schedules.payable_schedules(PAGE, after):
        for row in rows:
            period = period_due(Frequency(row["frequency"]), row["weekday"], row["starts_on"],
                                today)
            if period is None or period == row["last_period"]:
                continue
            asked += 1
            try:
                order = commands.run(PayOutMerchant.for_period(row["merchant_id"], period)).value
                STARTED.labels(order.status).inc()
            except DomainError as refusal:  # not due after all, frozen, under the minimum...
                STARTED.labels(refusal.code).inc()
                log.info("no payout for merchant %s (%s): %s", row["merchant_id"], period, refusal)
            except Exception:  # one merchant's failure must not stop the others: next run
                STARTED.labels("error").inc()
                log.exception("the payout of merchant %s for %s failed", row["merchant_id"], period)
        after = rows[-1]["merchant_id"]
    return asked
