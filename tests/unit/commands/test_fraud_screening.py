"""Fraud screening: each rule allows below its threshold and holds or refuses above it;
held payments wait with the money held until a reviewer approves (once) or rejects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gopay.aggregates.errors import InvalidState
from gopay.aggregates.fraud import Activity, FraudRules, FraudSuspected, Review, RuleSet, Velocity
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.fraud_reviews import ApproveReview, ChangeFraudRules, RejectReview
from gopay.commands.screening import is_held_for_review
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id
from tests.unit.commands.test_payment_requests import ask, pay, request_now

# Generous everywhere: each test tightens the one rule it is about.
RELAXED = RuleSet(sender_velocity=Velocity(3600, 1000, 10**12, 60),
                  device_velocity=Velocity(3600, 1000, 10**12, 60),
                  recipient_velocity=Velocity(3600, 1000, 10**12, 60))


def use_rules(gopay: InMemoryGoPay, **changes: Any) -> None:
    rules = replace(RELAXED, **changes)
    gopay.run(ChangeFraudRules(staff_id=gopay.admin.id, document=rules.as_document()))


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com", country="US")
    gopay.fund(ada, 9_000)
    return ada


@pytest.fixture
def grace(gopay: InMemoryGoPay) -> User:
    return gopay.register("grace@example.com")


def held(order: PaymentOrder) -> bool:
    return is_held_for_review(order)


class TestRules:
    def test_sender_velocity(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Two payments an hour pass; the third is held; an hour later payments pass again."""
        use_rules(gopay, sender_velocity=Velocity(3600, 2, 10**12, 60))
        assert [held(gopay.transfer(ada, grace.email, 10)) for _ in range(2)] == [False, False]
        assert held(gopay.transfer(ada, grace.email, 10))
        gopay.clock.advance(hours=1, seconds=1)
        assert gopay.transfer(ada, grace.email, 10).status == OrderStatus.SUCCEEDED

    def test_sender_amount_velocity(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Up to the amount per window passes; a payment over it is held."""
        use_rules(gopay, sender_velocity=Velocity(3600, 100, 500, 60))
        assert gopay.transfer(ada, grace.email, 300).status == OrderStatus.SUCCEEDED
        assert gopay.transfer(ada, grace.email, 200).status == OrderStatus.SUCCEEDED
        assert held(gopay.transfer(ada, grace.email, 1))

    def test_recipient_velocity(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Only payments to the same recipient count towards its limit."""
        other = gopay.register("alan@example.com")
        use_rules(gopay, recipient_velocity=Velocity(3600, 1, 10**12, 60))
        assert gopay.transfer(ada, grace.email, 10).status == OrderStatus.SUCCEEDED
        assert gopay.transfer(ada, other.email, 10).status == OrderStatus.SUCCEEDED
        assert held(gopay.transfer(ada, grace.email, 10))

    def test_device_velocity(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Every account paying from one device counts towards the device's limit."""
        mule = gopay.register("mule@example.com")
        gopay.fund(mule, 1_000)
        use_rules(gopay, device_velocity=Velocity(3600, 2, 10**12, 60))
        assert gopay.transfer(ada, grace.email, 10, device_id="phone-1").status == "succeeded"
        assert gopay.transfer(mule, grace.email, 10, device_id="phone-1").status == "succeeded"
        assert gopay.transfer(mule, grace.email, 10, device_id="phone-2").status == "succeeded"
        assert held(gopay.transfer(ada, grace.email, 10, device_id="phone-1"))

    def test_amount_far_above_history(self, gopay: InMemoryGoPay, ada: User,
                                      grace: User) -> None:
        """Up to five times the sender's average passes, above it is held."""
        use_rules(gopay, history_multiple=5, history_min_payments=3, history_min_amount=0,
                  history_score=50)
        for _ in range(3):
            gopay.transfer(ada, grace.email, 100)
        assert gopay.transfer(ada, grace.email, 500).status == OrderStatus.SUCCEEDED
        # The average is 200, then 360: 2001 is over five times it.
        assert gopay.transfer(ada, grace.email, 1_000).status == OrderStatus.SUCCEEDED
        assert held(gopay.transfer(ada, grace.email, 2_001))

    def test_new_device_with_a_large_amount(self, gopay: InMemoryGoPay, ada: User,
                                            grace: User) -> None:
        """A new device may pay small amounts; a large one from it is held, not from a known one."""
        use_rules(gopay, new_device_amount=1_000)
        gopay.transfer(ada, grace.email, 10, device_id="old-phone")
        assert gopay.transfer(ada, grace.email, 1_000, device_id="old-phone").status == "succeeded"
        assert gopay.transfer(ada, grace.email, 999, device_id="new-phone").status == "succeeded"
        # Paying once made it known: a stranger's phone is held.
        assert held(gopay.transfer(ada, grace.email, 1_000, device_id="stolen-phone"))

    def test_country_of_the_client(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Paying from the account's country passes; from another it is held."""
        use_rules(gopay, country_score=50)
        assert gopay.transfer(ada, grace.email, 10, client_country="US").status == "succeeded"
        assert held(gopay.transfer(ada, grace.email, 10, client_country="KP"))

    def test_blocked_counterparty(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """A payment to a blocked payee is refused and recorded; nothing moves; others pass."""
        use_rules(gopay, blocked_counterparties=("Grace@Example.com",))
        other = gopay.register("alan@example.com")
        with pytest.raises(FraudSuspected, match="blocked"):
            gopay.transfer(ada, grace.email, 10)
        assert gopay.balance(ada) == 9_000
        assert gopay.transfer(ada, other.email, 10).status == OrderStatus.SUCCEEDED
        refused = [o for o in gopay.orders() if o.failure_reason == "fraud_suspected"]
        assert len(refused) == 1 and "blocked" in refused[0].failure_detail
        gopay.check_books()

    def test_monitor_mode_records_but_never_holds(self) -> None:
        """With screening on `monitor`, a payment over a limit passes and the event says why."""
        gopay = InMemoryGoPay(settings(fraud_screening="monitor"))
        ada = gopay.register("ada@example.com")
        grace = gopay.register("grace@example.com")
        gopay.fund(ada, 100)
        use_rules(gopay, sender_velocity=Velocity(3600, 1, 10**12, 60))
        orders = [gopay.transfer(ada, grace.email, 10) for _ in range(2)]
        assert [o.status for o in orders] == ["succeeded", "succeeded"]
        screened = [e for e in gopay.events(Activity.id_for_sender(wallet_id(ada)))
                    if isinstance(e, Activity.Screened)]
        assert screened[-1].reasons[0] == "monitor only: would hold"

    def test_screening_off_loads_nothing(self) -> None:
        """With screening off no activity is kept."""
        gopay = InMemoryGoPay(settings(fraud_screening="off"))
        ada = gopay.register("ada@example.com")
        grace = gopay.register("grace@example.com")
        gopay.fund(ada, 100)
        gopay.transfer(ada, grace.email, 10)
        assert gopay.events(Activity.id_for_sender(wallet_id(ada))) == []
        assert gopay.wallet(ada).payments.count == 0

    def test_a_clean_payment_is_on_record_as_its_wallet_line_only(
            self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """A payment no rule says anything about writes no screening event: the payer's line
        says when it was made and from which device, and the wallet rebuilt from its events
        counts it; a payment with reasons is an event on the sender's activity too."""
        gopay.transfer(ada, grace.email, 10, device_id="phone-1")
        gopay.transfer(ada, grace.email, 20, client_country="US")
        assert gopay.events(Activity.id_for_sender(wallet_id(ada))) == []
        debited = [e for e in gopay.events(wallet_id(ada)) if isinstance(e, Wallet.Debited)]
        assert [(e.amount, e.device, e.made_at is not None) for e in debited] == [
            (10, "phone-1", True), (20, None, True)]
        rebuilt = None
        for stored in gopay.events(wallet_id(ada)):
            rebuilt = stored.mutate(rebuilt)
        assert rebuilt is not None and rebuilt.payments == gopay.wallet(ada).payments
        assert (rebuilt.payments.count, rebuilt.payments.total) == (2, 30)
        assert rebuilt.payments.devices == ("phone-1",)
        assert [e.amount for e in gopay.events(Activity.id_for_device("phone-1"))
                if isinstance(e, Activity.Screened)] == [10]

        gopay.transfer(ada, grace.email, 30, client_country="FR")  # flagged, not held
        flagged = [e for e in gopay.events(Activity.id_for_sender(wallet_id(ada)))
                   if isinstance(e, Activity.Screened)]
        assert [(e.amount, e.outcome, e.score) for e in flagged] == [(30, "allow", 30)]
        assert gopay.wallet(ada).payments.count == 3


    def test_a_payment_that_cannot_wait_is_refused_not_held(
            self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Paying a request settles it in the same batch, which a rejection could not undo: where a
        transfer would be held, it is refused, and the request stays open."""
        use_rules(gopay, sender_velocity=Velocity(3600, 0, 10**12, 60))
        request = ask(gopay, grace, ada.email, 100)
        with pytest.raises(FraudSuspected, match="cannot wait"):
            pay(gopay, ada, request)
        assert request_now(gopay, request).status == "open"
        assert (gopay.balance(ada), gopay.wallet(ada).held) == (9_000, 0)


class TestReview:
    @pytest.fixture
    def held_order(self, gopay: InMemoryGoPay, ada: User, grace: User) -> PaymentOrder:
        use_rules(gopay, sender_velocity=Velocity(3600, 0, 10**12, 60))
        order = gopay.transfer(ada, grace.email, 1_000)
        assert held(order)
        return order

    def test_a_held_payment_holds_the_money(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                            held_order: PaymentOrder) -> None:
        """The sender cannot spend it; the payee has nothing yet; the review says why."""
        assert gopay.wallet(ada).held == 1_000 and gopay.balance(ada) == 9_000
        assert gopay.balance(grace) == 0
        review = gopay.app.get(Review.id_for(held_order.id), Review)
        assert review.status == "open" and "payments in 3600 s" in review.reasons[0]

    def test_approve_moves_the_money_once(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                          held_order: PaymentOrder) -> None:
        """Approved, the payee is credited; a second approval is refused and moves nothing."""
        review_id = Review.id_for(held_order.id)
        gopay.run(ApproveReview(review_id=review_id, staff_id=gopay.admin.id))
        with pytest.raises(InvalidState):
            gopay.run(ApproveReview(review_id=review_id, staff_id=gopay.admin.id))
        assert (gopay.balance(ada), gopay.wallet(ada).held, gopay.balance(grace)) == (8_000, 0, 1_000)
        assert gopay.order(held_order.id).status == OrderStatus.SUCCEEDED
        gopay.check_books()

    def test_reject_releases_the_hold(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                      held_order: PaymentOrder) -> None:
        """Rejected, the sender has the money back and the order failed; no approval after."""
        review_id = Review.id_for(held_order.id)
        gopay.run(RejectReview(review_id=review_id, staff_id=gopay.admin.id, note="mule"))
        assert (gopay.balance(ada), gopay.wallet(ada).held, gopay.balance(grace)) == (9_000, 0, 0)
        assert gopay.order(held_order.id).status == OrderStatus.FAILED
        with pytest.raises(InvalidState):
            gopay.run(ApproveReview(review_id=review_id, staff_id=gopay.admin.id))
        gopay.check_books()

    def test_rules_changes_are_events(self, gopay: InMemoryGoPay) -> None:
        """Each change of the rules is an event with who made it; a bad document changes nothing."""
        use_rules(gopay, hold_score=70)
        with pytest.raises(Exception, match="not negative"):
            gopay.run(ChangeFraudRules(staff_id=gopay.admin.id,
                                       document={**RELAXED.as_document(), "hold_score": -1}))
        changes = [e for e in gopay.events(FraudRules.ID) if isinstance(e, FraudRules.Changed)]
        assert [(c.document["hold_score"], c.by) for c in changes] == [(70, gopay.admin.id)]
