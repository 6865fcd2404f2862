"""Fraud screening on PostgreSQL with two application processes: no race slips a limit through,
and a held payment's money moves once however many reviewers approve it at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from uuid import uuid4

import pytest

from gopay.aggregates.errors import DomainError, InvalidState
from gopay.aggregates.fraud import FraudSuspected, Review, RuleSet, Velocity
from gopay.aggregates.money import Money
from gopay.application import GoPay, application_env
from gopay.commands import Commands
from gopay.commands.fraud_reviews import ApproveReview, ChangeFraudRules
from gopay.commands.transfer import Transfer
from gopay.system import System, command_context
from tests.support import balance, open_wallets

LIMIT = 10


@pytest.fixture
def second_app(system: System, database_url: str) -> Iterator[Commands]:
    """Another process's application over the same database (its own memory, its own pool)."""
    app = GoPay(system.settings.key_ring(), env=application_env(database_url))
    yield Commands(command_context(app, system.settings))
    app.close()


# Who decides: the commands trust the API's role check, so any staff id will do here.
STAFF_ID = uuid4()


def set_rules(commands: Commands, rules: RuleSet) -> None:
    commands.run(ChangeFraudRules(staff_id=STAFF_ID, document=rules.as_document()))


class TestVelocityUnderRace:
    def test_64_concurrent_payments_let_exactly_the_limit_through(
            self, system: System, second_app: Commands) -> None:
        """Sixty-four payments at once, over two processes, against a limit of ten: ten pass,
        the rest are refused, and the sender paid exactly ten."""
        alice, bob = open_wallets(system.commands, 2, 10_000)
        set_rules(system.commands, RuleSet(
            sender_velocity=Velocity(3600, LIMIT, 10**12, 100)))  # 100: refused outright
        apps = [system.commands, second_app]
        start = threading.Barrier(64)

        def pay(n: int) -> str:
            start.wait()
            try:
                return apps[n % 2].run(Transfer(
                    caller_id=alice.id, sender_wallet_id=alice.wallet_id, recipient=bob.email,
                    money=Money(7, "USD"), idempotency_key=f"p{n}", fingerprint="f")).value.status
            except FraudSuspected:
                return "refused"

        with ThreadPoolExecutor(64) as pool:
            outcomes = list(pool.map(pay, range(64)))
        assert outcomes.count("succeeded") == LIMIT
        assert outcomes.count("refused") == 64 - LIMIT
        assert balance(system.app, alice.wallet_id) == 10_000 - 7 * LIMIT
        assert balance(system.app, bob.wallet_id) == 10_000 + 7 * LIMIT


class TestApprovingAtOnce:
    def test_two_approvals_at_once_move_the_money_once(
            self, system: System, second_app: Commands, database_url: str) -> None:
        """Two reviewers (on two processes) approve the same payment together: one wins, the
        other hears 409, and the payee is credited once."""
        alice, bob = open_wallets(system.commands, 2, 10_000)
        set_rules(system.commands, RuleSet(sender_velocity=Velocity(3600, 0, 10**12, 60)))
        order = system.commands.run(Transfer(
            caller_id=alice.id, sender_wallet_id=alice.wallet_id, recipient=bob.email,
            money=Money(1_000, "USD"), fingerprint="f")).value
        review_id = Review.id_for(order.id)
        start = threading.Barrier(2)

        def approve(commands: Commands) -> str:
            start.wait()
            try:
                commands.run(ApproveReview(review_id=review_id, staff_id=STAFF_ID))
            except InvalidState:
                return "conflict"
            except DomainError as error:  # anything else is a bug this test must show
                return repr(error)
            return "approved"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(approve, [system.commands, second_app]))
        assert outcomes == ["approved", "conflict"]
        fresh = GoPay(system.settings.key_ring(), env=application_env(database_url))
        try:
            assert balance(fresh, alice.wallet_id) == 9_000
            assert balance(fresh, bob.wallet_id) == 11_000
        finally:
            fresh.close()
