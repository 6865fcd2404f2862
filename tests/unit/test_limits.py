"""KYC tier limits, enforced by the wallet: per payment, per day, and on the balance."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates.errors import InsufficientFunds
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.limits import DEFAULT_LIMITS, SPENDING_TYPES, LimitExceeded, TierLimits
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet

LIMITS = TierLimits(per_payment=100, per_day=300, max_balance=1_000)
DAY = date(2026, 11, 22)


def funded(balance: int) -> Wallet:
    wallet = Wallet(owner_id=uuid4(), currency="USD")
    wallet.credit(Money(balance, "USD"), entry_id=uuid4(), entry_type="adjustment",
                  counterparty="adjustments", reference="funding")
    return wallet


def pay(wallet: Wallet, amount: int, day: date = DAY, entry_type: str = "transfer") -> None:
    wallet.debit(Money(amount, "USD"), entry_id=uuid4(), entry_type=entry_type,
                 counterparty="someone", reference="", limits=LIMITS, on=day)


class TestPerPaymentAndPerDay:
    def test_one_payment_over_the_limit_is_refused(self) -> None:
        """A single payment above the tier's per-payment limit fails and moves nothing."""
        wallet = funded(1_000)
        with pytest.raises(LimitExceeded):
            pay(wallet, 101)
        assert wallet.balance == 1_000

    def test_the_day_adds_up_and_a_new_day_starts_afresh(self) -> None:
        """Three payments of 100 fill a 300 day; the next day has the whole limit again."""
        wallet = funded(1_000)
        for _ in range(3):
            pay(wallet, 100)
        with pytest.raises(LimitExceeded):
            pay(wallet, 1)
        pay(wallet, 100, DAY + timedelta(days=1))
        assert wallet.spent_on(DAY + timedelta(days=1)) == 100

    def test_corrections_do_not_count_towards_the_limits(self) -> None:
        """Adjustments are not the owner's spending: no limit applies or accrues."""
        wallet = funded(1_000)
        pay(wallet, 500, entry_type="adjustment")
        assert wallet.spent_on(DAY) == 0

    @given(st.lists(st.tuples(st.integers(1, 150), st.integers(0, 2),
                              st.sampled_from([*sorted(SPENDING_TYPES), "adjustment"])),
                    max_size=30))
    def test_no_sequence_of_payments_passes_a_limit(self, payments) -> None:  # type: ignore[no-untyped-def]
        """Whatever is tried, each day's spending stays within the tier and replay agrees."""
        wallet = funded(1_000)
        spent: dict[date, int] = {}
        latest = DAY
        for amount, day_offset, entry_type in payments:
            day = DAY + timedelta(days=day_offset)
            try:
                pay(wallet, amount, day, entry_type)
            except (LimitExceeded, InsufficientFunds):
                continue
            assert entry_type not in SPENDING_TYPES or amount <= LIMITS.per_payment
            if entry_type in SPENDING_TYPES:
                latest = max(latest, day)  # a clock that steps back counts on the later day
                spent[latest] = spent.get(latest, 0) + amount
        assert all(total <= LIMITS.per_day for total in spent.values())
        replayed = None
        for event in wallet.collect_events():
            replayed = event.mutate(replayed)
        assert replayed is not None
        assert (replayed.spent_day, replayed.spent_today) == (wallet.spent_day, wallet.spent_today)


class TestBalanceLimit:
    def test_a_credit_that_would_pass_the_balance_limit_is_refused(self) -> None:
        wallet = funded(950)
        with pytest.raises(LimitExceeded):
            wallet.credit(Money(51, "USD"), entry_id=uuid4(), entry_type="transfer",
                          counterparty="x", reference="", limits=LIMITS)
        wallet.credit(Money(50, "USD"), entry_id=uuid4(), entry_type="transfer",
                      counterparty="x", reference="", limits=LIMITS)
        assert wallet.balance == 1_000


class TestTiers:
    def test_defaults_are_the_issues_figures_and_verified_is_far_higher(self) -> None:
        unverified, verified = DEFAULT_LIMITS["unverified"], DEFAULT_LIMITS["verified"]
        assert unverified == TierLimits(per_payment=10_000, per_day=30_000, max_balance=100_000)
        assert verified.per_payment >= 100 * unverified.per_payment
        assert verified.max_balance >= 100 * unverified.max_balance

    def test_the_tier_follows_kyc_and_is_replayed(self) -> None:
        wallet = funded(10)
        wallet.change_tier("verified", by=uuid4())
        replayed = None
        for event in wallet.collect_events():
            replayed = event.mutate(replayed)
        assert replayed is not None and replayed.tier == "verified"


def test_debits_stored_before_version_2_still_replay() -> None:
    """A Debited event stored without `day` (version 1) is upcast, not lost."""
    app = Application[object]()
    wallet = funded(100)
    wallet.debit(Money(40, "USD"), entry_id=uuid4(), entry_type=TransactionType.TRANSFER,
                 counterparty="x", reference="", on=DAY)
    events = wallet.collect_events()
    stored = [app.mapper.to_stored_event(e) for e in events]
    old = stored[-1]
    state = app.mapper.transcoder.decode(old.state)
    del state["day"], state["class_version"]
    stored[-1] = StoredEvent(originator_id=old.originator_id, originator_version=old.originator_version,
                             topic=old.topic, state=app.mapper.transcoder.encode(state))
    replayed = None
    for stored_event in stored:
        replayed = app.mapper.to_domain_event(stored_event).mutate(replayed)
    assert replayed is not None and replayed.balance == 60 and replayed.spent_day is None
