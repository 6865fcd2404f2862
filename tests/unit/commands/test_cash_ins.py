"""Cash-ins: an agent's float to a customer's wallet, in one entry with the agent's commission."""

from __future__ import annotations

from typing import Any

import pytest

from gopay.aggregates.errors import (
    AccountFrozen,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeePayer, FeeRule, Rate
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.payment_order import OrderStatus, order_id_for
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.staff import SetFrozen
from tests.unit.commands.counter import cash_in
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

FEES = SystemAccount.FEES.account_id("USD")


@pytest.fixture
def agent(gopay: InMemoryGoPay) -> User:
    agent = gopay.register("corner-agent@example.com", kind="agent")
    gopay.fund(agent, 50_000)
    return agent


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com", phone="+442071234567")


def lines(gopay: InMemoryGoPay, user: User) -> list[tuple[str, str, int, str, str]]:
    """The wallet's lines after its opening: (event, type, amount, counterparty, reference)."""
    return [(type(e).__name__, e.entry_type, e.amount, e.counterparty, e.reference)
            for e in gopay.events(wallet_id(user)) if isinstance(e, Wallet.Debited | Wallet.Credited)]


class TestCashIn:
    def test_the_agent_s_float_goes_to_the_customer_s_wallet(self, gopay: InMemoryGoPay,
                                                             agent: User, ada: User) -> None:
        """One balanced entry: the agent's float down, the customer's wallet up."""
        order = cash_in(gopay, agent, "ada@example.com", 2_000)
        assert (order.status, order.order_type) == (OrderStatus.SUCCEEDED, TransactionType.CASH_IN)
        assert order.postings == (Posting(wallet_id(agent), -2_000, "USD"),
                                  Posting(wallet_id(ada), 2_000, "USD"))
        assert (gopay.balance(agent), gopay.balance(ada)) == (48_000, 2_000)
        gopay.check_books()

    def test_both_sides_see_a_cash_in_line_naming_the_other_and_the_agent(
            self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        cash_in(gopay, agent, "ada@example.com", 2_000)
        reference = f"agent {agent.id}"
        assert lines(gopay, agent)[-1] == ("Debited", "cash_in", 2_000, str(ada.wallet_id),
                                           reference)
        assert lines(gopay, ada) == [("Credited", "cash_in", 2_000, str(agent.wallet_id),
                                      reference)]

    @pytest.mark.parametrize("customer", ["ada@example.com", "+442071234567", "wallet id"])
    def test_the_customer_is_named_by_email_phone_or_wallet_id(self, gopay: InMemoryGoPay,
                                                               agent: User, ada: User,
                                                               customer: str) -> None:
        cash_in(gopay, agent, str(ada.wallet_id) if customer == "wallet id" else customer, 700)
        assert gopay.balance(ada) == 700

    def test_only_an_agent_cashes_in(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A person with money is still no agent."""
        grace = gopay.register("grace@example.com")
        gopay.fund(grace, 5_000)
        with pytest.raises(Forbidden):
            cash_in(gopay, grace, "ada@example.com", 100)
        assert gopay.balance(ada) == 0

    def test_an_agent_does_not_cash_in_to_itself(self, gopay: InMemoryGoPay, agent: User) -> None:
        with pytest.raises(ValidationFailed, match="its own wallet"):
            cash_in(gopay, agent, "corner-agent@example.com", 100)

    def test_an_unknown_customer_is_not_found(self, gopay: InMemoryGoPay, agent: User) -> None:
        with pytest.raises(NotFound):
            cash_in(gopay, agent, "nobody@example.com", 100)


class TestRefusals:
    def test_a_float_too_small_moves_nothing(self, gopay: InMemoryGoPay, agent: User,
                                             ada: User) -> None:
        with pytest.raises(InsufficientFunds):
            cash_in(gopay, agent, "ada@example.com", 50_001)
        assert (gopay.balance(agent), gopay.balance(ada)) == (50_000, 0)

    def test_a_frozen_agent_cannot_cash_in(self, gopay: InMemoryGoPay, agent: User,
                                           ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=agent.id, frozen=True, reason="audit"))
        with pytest.raises(AccountFrozen):
            cash_in(gopay, agent, "ada@example.com", 100)
        assert gopay.balance(ada) == 0

    def test_a_frozen_customer_still_receives(self, gopay: InMemoryGoPay, agent: User,
                                              ada: User) -> None:
        """A frozen wallet receives but does not send, as for transfers."""
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="audit"))
        cash_in(gopay, agent, "ada@example.com", 100)
        assert gopay.balance(ada) == 100

    def test_the_customer_s_balance_limit_applies(self, gopay: InMemoryGoPay, agent: User,
                                                  ada: User) -> None:
        """An unverified wallet holds at most 100,000."""
        gopay.fund(ada, 99_000)
        with pytest.raises(LimitExceeded, match="cannot hold that much"):
            cash_in(gopay, agent, "ada@example.com", 1_001)
        cash_in(gopay, agent, "ada@example.com", 1_000)

    def test_the_float_is_not_the_agent_s_spending(self, gopay: InMemoryGoPay, agent: User,
                                                   ada: User) -> None:
        """An unverified agent's float may pass the tier's 10,000 a payment and 30,000 a day:
        handing out float is its trade, not its spending."""
        for _ in range(4):
            cash_in(gopay, agent, "ada@example.com", 12_000)
        assert gopay.balance(agent) == 2_000

    def test_a_keyed_refusal_is_recorded_and_repeated(self, gopay: InMemoryGoPay, agent: User,
                                                      ada: User) -> None:
        with pytest.raises(InsufficientFunds):
            cash_in(gopay, agent, "ada@example.com", 60_000, idempotency_key="k", fingerprint="f")
        order = gopay.order(order_id_for(agent.id, "cash-in", "k"))
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "insufficient_funds")
        gopay.fund(agent, 50_000)
        with pytest.raises(InsufficientFunds):
            cash_in(gopay, agent, "ada@example.com", 60_000, idempotency_key="k", fingerprint="f")
        assert gopay.balance(ada) == 0


class TestRepeatedRequests:
    def test_a_repeated_key_moves_the_money_once(self, gopay: InMemoryGoPay, agent: User,
                                                 ada: User) -> None:
        first = cash_in(gopay, agent, "ada@example.com", 900, idempotency_key="k", fingerprint="f")
        again = cash_in(gopay, agent, "ada@example.com", 900, idempotency_key="k", fingerprint="f")
        assert again.id == first.id and gopay.balance(ada) == 900

    def test_the_same_key_for_another_cash_in_is_a_conflict(self, gopay: InMemoryGoPay,
                                                            agent: User, ada: User) -> None:
        cash_in(gopay, agent, "ada@example.com", 900, idempotency_key="k", fingerprint="f")
        with pytest.raises(IdempotencyConflict):
            cash_in(gopay, agent, "ada@example.com", 901, idempotency_key="k", fingerprint="g")


class TestCommission:
    def with_schedule(self, **rule: Any) -> tuple[InMemoryGoPay, User, User]:
        gopay = InMemoryGoPay(settings(fees={TransactionType.CASH_IN: FeeRule(**rule)}))
        agent = gopay.register("agent@example.com", kind="agent")
        gopay.fund(agent, 50_000)
        return gopay, agent, gopay.register("ada@example.com")

    def test_the_agent_earns_its_commission_from_gopay_s_fees_in_the_same_entry(self) -> None:
        """0.5 % of 10,000: the fees account pays the agent 50 within the cash-in's entry."""
        gopay, agent, ada = self.with_schedule(commission=Rate(bps=50))
        order = cash_in(gopay, agent, "ada@example.com", 10_000)
        assert order.postings == (Posting(wallet_id(agent), -9_950, "USD"),
                                  Posting(wallet_id(ada), 10_000, "USD"),
                                  Posting(FEES, -50, "USD"))
        assert (gopay.balance(agent), gopay.balance(ada)) == (40_050, 10_000)
        assert lines(gopay, agent)[-2:] == [
            ("Debited", "cash_in", 10_000, str(ada.wallet_id), f"agent {agent.id}"),
            ("Credited", "commission", 50, "fees", f"agent {agent.id}")]
        assert gopay.check_books().accounts[FEES] == -50

    def test_a_fee_and_a_commission_share_the_entry(self) -> None:
        """The customer pays a fee of 1 % out of what arrives; GoPay pays the agent 0.5 % + 10."""
        gopay, agent, ada = self.with_schedule(bps=100, paid_by=FeePayer.PAYEE,
                                               commission=Rate(fixed=10, bps=50))
        order = cash_in(gopay, agent, "ada@example.com", 10_000)
        assert sorted(order.postings, key=lambda p: p.amount) == sorted([
            Posting(wallet_id(agent), -9_940, "USD"), Posting(wallet_id(ada), 9_900, "USD"),
            Posting(FEES, 40, "USD")], key=lambda p: p.amount)
        assert (gopay.balance(agent), gopay.balance(ada)) == (40_060, 9_900)
        gopay.check_books()

    def test_a_commission_has_its_bounds(self) -> None:
        """Basis points within a minimum and a maximum, as fees have."""
        gopay, agent, _ = self.with_schedule(commission=Rate(bps=100, minimum=25, maximum=60))
        earned = []
        for amount in (1_000, 4_000, 20_000):
            before = gopay.balance(agent)
            cash_in(gopay, agent, "ada@example.com", amount)
            earned.append(gopay.balance(agent) - before + amount)
        assert earned == [25, 40, 60]

    def test_no_schedule_no_commission(self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        """The default schedule pays nothing: the entry has the two legs only."""
        order = cash_in(gopay, agent, "ada@example.com", 1_000)
        assert len(order.postings) == 2
        assert not [e for e in gopay.events(wallet_id(agent))
                    if getattr(e, "entry_type", None) == TransactionType.COMMISSION]

    def test_the_commission_is_booked_once_per_order(self) -> None:
        """A repeat with the same key pays no second commission."""
        gopay, agent, _ = self.with_schedule(commission=Rate(fixed=30))
        for _ in range(3):
            cash_in(gopay, agent, "ada@example.com", 1_000, idempotency_key="k", fingerprint="f")
        assert gopay.balance(agent) == 49_030
        assert len(gopay.orders()) == 2  # the funding and the cash-in
