"""Expiry: cash-outs and payment requests that nobody finished in time end by themselves, by the clock.

The commands refuse an expired code or request at once, whatever is recorded; this job, run
by the scheduler, records the ending and gives a cash-out's held money back to the customer
without anyone asking.
"""

from __future__ import annotations

import logging
from typing import Any

from gopay.commands import Command, Commands
from gopay.commands.cash_outs import ExpireCashOut
from gopay.commands.payment_requests import ExpirePaymentRequest
from gopay.projections.read_side import ReadSide

log = logging.getLogger(__name__)


def expire_due(commands: Commands, read_side: ReadSide, limit: int = 200) -> int:
    """End what the read side shows as due now; how many were tried (an ended one is left as it is)."""
    now = commands.context.clock()
    due: list[Command[Any]] = [
        *(ExpireCashOut(order_id=order_id) for order_id in read_side.cash_outs.expired(now, limit)),
        *(ExpirePaymentRequest(request_id=request_id)
          for request_id in read_side.payment_requests.due(now, limit))]
    for command in due:
        try:
            commands.run(command)
        except Exception:  # one item's failure must not stop the others; it is due again next time
            log.exception("could not expire %s", command)
    return len(due)
