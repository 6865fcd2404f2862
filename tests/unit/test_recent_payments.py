"""What screening remembers of a payer's payments answers as a walk through all of them would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates.recent_payments import (
    FORGET_EVERY,
    MAX_DEVICES,
    MAX_REMEMBERED,
    RecentPayments,
    since,
)

START = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)

# Microseconds after the one before: times with and without a fraction of a second compare.
payments = st.lists(st.tuples(st.integers(0, 40_000 * 10**6),
                              st.integers(1, 10**9),
                              st.sampled_from(["ada", "grace", "alan"]),
                              st.sampled_from([None, "phone", "tablet"])), max_size=80)


History = list[tuple[int, int, str, str | None]]


def made(history: History) -> tuple[RecentPayments, list[tuple[datetime, int]]]:
    remembered, at, every = RecentPayments(), START, []
    for gap, amount, recipient, device in history:
        at += timedelta(microseconds=gap)
        remembered = remembered.added(at=at.isoformat(), amount=amount, recipient=recipient,
                                      device=device)
        every.append((at, amount))
    return remembered, every


@given(payments, st.integers(0, 100_000 * 10**6), st.integers(1, 86_400))
def test_a_window_counts_what_was_paid_in_it(history: History, later: int, seconds: int) -> None:
    remembered, every = made(history)
    now = (every[-1][0] if every else START) + timedelta(microseconds=later)
    paid = [amount for at, amount in every if at > now - timedelta(seconds=seconds)]
    assert remembered.in_window(since(now, seconds)) == (len(paid), sum(paid))
    assert remembered.count == len(every)
    assert remembered.total == sum(amount for _, amount in every)
    assert remembered.average == (remembered.total // len(every) if every else 0)


@given(payments)
def test_older_than_a_day_is_let_go_of(history: History) -> None:
    """The last day's are all there; older ones are gone after every `FORGET_EVERY`th."""
    remembered, every = made(history)
    if every:
        day_before = every[-1][0] - timedelta(days=1)
        kept = [a.at for a in remembered.attempts]
        last_day = [at.isoformat() for at, _ in every if at > day_before]
        assert kept[len(kept) - len(last_day):] == last_day
        if len(every) % FORGET_EVERY == 1:
            assert kept == last_day


def test_at_most_so_many_are_remembered_and_the_window_counts_only_those() -> None:
    remembered, _ = made([(10**6, 10, "ada", f"device-{n}") for n in range(MAX_REMEMBERED + 5)])
    assert len(remembered.attempts) == MAX_REMEMBERED
    assert remembered.in_window(since(START + timedelta(hours=1), 3600)) == (MAX_REMEMBERED,
                                                                       10 * MAX_REMEMBERED)
    assert remembered.count == MAX_REMEMBERED + 5
    assert remembered.devices == tuple(f"device-{n}" for n in range(MAX_REMEMBERED + 5))[
        -MAX_DEVICES:]


def test_a_reviewer_sees_the_last_hour_and_day() -> None:
    remembered, _ = made([(0, 100, "ada", "phone"), (7200 * 10**6, 50, "grace", "phone"),
                          (60 * 10**6, 25, "ada", None)])
    now = START + timedelta(seconds=7300)
    assert remembered.summary(now) == {
        "payments_last_hour": 2, "amount_last_hour": 75, "payments_last_day": 3,
        "amount_last_day": 175, "payments_total": 3, "average_payment": 58, "devices": 1}
