"""What fraud screening remembers of a payer's payments: the last day's, and the totals of all.

A wallet keeps its owner's (from the very events that move the money, so remembering costs no
event of its own) and a device's `Activity` keeps the payments made from it. The rules ask
how many payments, and how much, in a window before now: the payments are in the order they
were made, each with the total paid before it, so that is a binary search and a subtraction,
not a walk through a thousand payments for every payment screened.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

# The longest window a velocity rule may have (`RuleSet` refuses longer ones).
LONGEST_WINDOW = timedelta(days=1)
# The most payments remembered: a velocity limit beyond it cannot be enforced.
MAX_REMEMBERED = 1000
# Payments older than a day are let go of every so many payments, not at each (a window
# never reaches them, so they only take room).
FORGET_EVERY = 32
# The most devices remembered as the payer's own.
MAX_DEVICES = 20

_at = attrgetter("at")


@dataclass(frozen=True)
class Attempt:
    """A payment the rules count: when (ISO 8601, UTC), how much, to whom, from which device."""

    at: str
    amount: int
    recipient: str
    device: str | None
    paid_before: int  # the payer's total before this payment


@dataclass(frozen=True)
class RecentPayments:
    """A payer's payments of the last day (at most `MAX_REMEMBERED`, and a few older ones until
    they are let go of), their devices, and how many payments and how much since the first."""

    attempts: tuple[Attempt, ...] = ()
    count: int = 0
    total: int = 0
    devices: tuple[str, ...] = ()

    def added(self, *, at: str, amount: int, recipient: str,
              device: str | None) -> RecentPayments:
        """These payments and one more, made `at` (after all the others)."""
        start = max(0, len(self.attempts) - MAX_REMEMBERED + 1)
        if self.count % FORGET_EVERY == 0:
            since = (datetime.fromisoformat(at) - LONGEST_WINDOW).isoformat()
            start = max(start, bisect_right(self.attempts, since, key=_at))
        devices = self.devices
        if device is not None and device not in devices:
            devices = (*devices, device)[-MAX_DEVICES:]
        attempt = Attempt(at, amount, recipient, device, self.total)
        return RecentPayments((*self.attempts[start:], attempt), self.count + 1,
                              self.total + amount, devices)

    @property
    def average(self) -> int:
        return self.total // self.count if self.count else 0

    def window(self, since: str) -> tuple[Attempt, ...]:
        """The payments remembered made after `since` (see `since`)."""
        return self.attempts[bisect_right(self.attempts, since, key=_at):]

    def in_window(self, since: str) -> tuple[int, int]:
        """How many payments, and how much, made after `since` (found, not copied out)."""
        first = bisect_right(self.attempts, since, key=_at)
        if first == len(self.attempts):
            return (0, 0)
        return (len(self.attempts) - first, self.total - self.attempts[first].paid_before)

    def summary(self, now: datetime) -> dict[str, int]:
        """The payer's recent activity as a reviewer reads it."""
        hour, hour_amount = self.in_window(since(now, 3600))
        day, day_amount = self.in_window(since(now, 86_400))
        return {"payments_last_hour": hour, "amount_last_hour": hour_amount,
                "payments_last_day": day, "amount_last_day": day_amount,
                "payments_total": self.count, "average_payment": self.average,
                "devices": len(self.devices)}


def since(now: datetime, seconds: int) -> str:
    """The start of the window of `seconds` before `now`, as payments' times are written."""
    return (now - timedelta(seconds=seconds)).isoformat()
