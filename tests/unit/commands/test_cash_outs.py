"""Cash-outs: money held for one agent, paid against a one-time code that expires and survives few guesses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from gopay.aggregates.cash_out import CashOut, CashOutSlot, CashOutStatus, WrongCode
from gopay.aggregates.errors import (
    AccountFrozen,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeeRule, Rate
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands import cash_outs
from gopay.commands.cash_outs import CancelCashOut, ConfirmCashOut, ExpireCashOut
from gopay.commands.staff import SetFrozen
from tests.unit.commands.counter import ask_cash_out, cash_out_of, confirm, wrong
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

FEES = SystemAccount.FEES.account_id("USD")


@pytest.fixture
def agent(gopay: InMemoryGoPay) -> User:
    return gopay.register("corner-agent@example.com", kind="agent")


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 10_000)
    return ada


def held(gopay: InMemoryGoPay, user: User) -> int:
    return gopay.wallet(user).held


class TestAskingForACashOut:
    def test_the_money_is_held_and_a_ten_digit_code_given(self, gopay: InMemoryGoPay,
                                                         agent: User, ada: User) -> None:
        """Nothing moves yet: the customer's money is reserved for this agent."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        assert (order.status, order.order_type) == (OrderStatus.PENDING, TransactionType.CASH_OUT)
        assert (order.payer_wallet_id, order.payee_wallet_id) == (wallet_id(ada), wallet_id(agent))
        assert (gopay.balance(ada), held(gopay, ada), gopay.balance(agent)) == (10_000, 4_000, 0)
        assert len(code) == 10 and code.isdigit()
        cash_out = cash_out_of(gopay, order)
        assert (cash_out.status, cash_out.attempts_left) == (CashOutStatus.PENDING, 3)
        assert cash_out.expires_at == (gopay.clock() + timedelta(minutes=15)).isoformat()
        gopay.check_books()

    def test_the_code_is_kept_only_as_a_keyed_digest(self, gopay: InMemoryGoPay, agent: User,
                                                     ada: User) -> None:
        """No stored event holds the code, and the digest is not a plain hash of it."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        stored = [n.state for n in gopay.app.recorder.select_notifications(start=1, limit=10**6)]
        assert not [state for state in stored if code.encode() in state]
        cash_out = cash_out_of(gopay, order)
        assert code[4:] not in vars(cash_out).values()
        assert cash_out.code_digest not in (code, code[4:])
        assert len(cash_out.code_digest) == 43  # base64url of an HMAC-SHA256

    def test_each_cash_out_has_its_own_code(self, gopay: InMemoryGoPay, agent: User,
                                            ada: User) -> None:
        codes = {ask_cash_out(gopay, ada, agent, 100)[1] for _ in range(20)}
        assert len(codes) == 20
        assert len({code[:4] for code in codes}) == 20  # no two pending ones share a slot

    def test_only_an_agent_can_be_asked(self, gopay: InMemoryGoPay, ada: User) -> None:
        grace = gopay.register("grace@example.com")
        with pytest.raises(NotFound, match="no agent"):
            ask_cash_out(gopay, ada, grace, 100)
        assert held(gopay, ada) == 0

    def test_not_enough_money_holds_nothing(self, gopay: InMemoryGoPay, agent: User,
                                            ada: User) -> None:
        ask_cash_out(gopay, ada, agent, 6_000)
        with pytest.raises(InsufficientFunds):
            ask_cash_out(gopay, ada, agent, 4_001)
        assert held(gopay, ada) == 6_000
        assert len(list(cash_outs_asked(gopay))) == 1

    def test_a_frozen_customer_cannot_cash_out(self, gopay: InMemoryGoPay, agent: User,
                                               ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="fraud"))
        with pytest.raises(AccountFrozen):
            ask_cash_out(gopay, ada, agent, 100)

    def test_the_tier_s_limits_apply(self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        """Cash taken out is spending: 10,000 a payment on the unverified tier."""
        gopay.fund(ada, 5_000)
        with pytest.raises(LimitExceeded):
            ask_cash_out(gopay, ada, agent, 10_001)
        ask_cash_out(gopay, ada, agent, 10_000)

    def test_a_busy_agent_s_slots_are_not_shared(self, gopay: InMemoryGoPay, agent: User,
                                                 ada: User, monkeypatch: pytest.MonkeyPatch) -> None:
        """The dice land on a slot whose cash-out is pending: the next free one is taken;
        a slot whose cash-out has ended is given to the next one."""
        rolls = iter([7, 7, 8, 7])
        monkeypatch.setattr(cash_outs.secrets, "randbelow", lambda _: next(rolls))
        first, first_code = ask_cash_out(gopay, ada, agent, 100)
        _, second_code = ask_cash_out(gopay, ada, agent, 100)
        assert (first_code[:4], second_code[:4]) == ("0007", "0008")
        gopay.run(CancelCashOut(customer_wallet_id=wallet_id(ada), order_id=first.id))
        third, third_code = ask_cash_out(gopay, ada, agent, 100)
        assert third_code[:4] == "0007" != third_code
        assert gopay.app.get(CashOutSlot.id_for(wallet_id(agent), 7), CashOutSlot).order_id == third.id


class TestConfirming:
    def test_the_right_code_pays_the_agent(self, gopay: InMemoryGoPay, agent: User,
                                           ada: User) -> None:
        """The hold is captured and the agent's float credited, in one entry."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        answer = confirm(gopay, agent, code)
        assert answer.cash_out.status == CashOutStatus.SUCCEEDED
        assert gopay.order(order.id).postings == (Posting(wallet_id(ada), -4_000, "USD"),
                                                  Posting(wallet_id(agent), 4_000, "USD"))
        assert (gopay.balance(ada), held(gopay, ada), gopay.balance(agent)) == (6_000, 0, 4_000)
        gopay.check_books()

    def test_both_sides_see_a_cash_out_line_naming_the_other(self, gopay: InMemoryGoPay,
                                                             agent: User, ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        confirm(gopay, agent, code)
        paid = gopay.events(wallet_id(ada))[-1]
        received = gopay.events(wallet_id(agent))[-1]
        assert isinstance(paid, Wallet.Captured) and isinstance(received, Wallet.Credited)
        assert (paid.entry_type, paid.counterparty, paid.reference) == (
            "cash_out", str(agent.wallet_id), f"agent {agent.id}")
        assert (received.entry_type, received.entry_id, received.counterparty, received.reference) == (
            "cash_out", order.id, str(ada.wallet_id), f"agent {agent.id}")

    def test_a_code_works_once(self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        _, code = ask_cash_out(gopay, ada, agent, 4_000)
        confirm(gopay, agent, code)
        with pytest.raises(InvalidState, match="used already"):
            confirm(gopay, agent, code)
        assert gopay.balance(agent) == 4_000

    def test_only_the_agent_the_customer_chose_can_use_the_code(self, gopay: InMemoryGoPay,
                                                                agent: User, ada: User) -> None:
        """At another agent the code names nothing, and costs the cash-out no guess."""
        rival = gopay.register("rival-agent@example.com", kind="agent")
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        with pytest.raises(NotFound):
            confirm(gopay, rival, code)
        assert cash_out_of(gopay, order).attempts_left == 3
        confirm(gopay, agent, code)

    @pytest.mark.parametrize("code", ["123", "12345678901", "abcdefghij",
                                      "\uff11" * 10])  # fullwidth digits are digits to str.isdigit
    def test_a_malformed_code_is_refused_as_such(self, gopay: InMemoryGoPay, agent: User,
                                                 code: str) -> None:
        with pytest.raises(ValidationFailed, match="10 digits"):
            confirm(gopay, agent, code)

    def test_a_frozen_customer_s_cash_out_is_not_paid(self, gopay: InMemoryGoPay, agent: User,
                                                      ada: User) -> None:
        """Frozen after asking (a stolen phone, say): the agent must not hand the cash over."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="stolen"))
        with pytest.raises(AccountFrozen):
            confirm(gopay, agent, code)
        assert (cash_out_of(gopay, order).status, gopay.balance(agent)) == (CashOutStatus.PENDING, 0)

    def test_the_customer_pays_a_fee_and_the_agent_earns_a_commission(self) -> None:
        """1 % fee held with the amount and paid to GoPay; GoPay pays the agent 0.5 %."""
        gopay = InMemoryGoPay(settings(fees={TransactionType.CASH_OUT: FeeRule(
            bps=100, commission=Rate(bps=50))}))
        agent = gopay.register("agent@example.com", kind="agent")
        ada = gopay.register("ada@example.com")
        gopay.fund(ada, 10_000)
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        assert held(gopay, ada) == 4_040
        confirm(gopay, agent, code)
        assert gopay.order(order.id).postings == (Posting(wallet_id(ada), -4_040, "USD"),
                                                  Posting(wallet_id(agent), 4_020, "USD"),
                                                  Posting(FEES, 20, "USD"))
        assert (gopay.balance(ada), held(gopay, ada), gopay.balance(agent)) == (5_960, 0, 4_020)
        agent_lines = [(e.entry_type, e.amount, e.counterparty)
                       for e in gopay.events(wallet_id(agent)) if isinstance(e, Wallet.Credited)]
        assert agent_lines == [("cash_out", 4_000, str(ada.wallet_id)), ("commission", 20, "fees")]
        assert gopay.check_books().accounts[FEES] == 20


class TestWrongCodes:
    def test_a_wrong_code_is_counted_even_though_refused(self, gopay: InMemoryGoPay,
                                                         agent: User, ada: User) -> None:
        """The guess is saved before the refusal is answered: it cannot be retried for free."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        with pytest.raises(WrongCode, match="2 tries left") as refused:
            confirm(gopay, agent, wrong(code))
        assert refused.value.details == {"attempts_left": 2}
        assert "WrongCodeEntered" in gopay.event_types(cash_out_of(gopay, order).id)
        with pytest.raises(WrongCode, match="1 try left"):
            confirm(gopay, agent, wrong(wrong(code)))
        confirm(gopay, agent, code)
        assert gopay.balance(agent) == 4_000

    def test_the_last_wrong_code_cancels_the_cash_out_and_releases_the_money(
            self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        for _ in range(2):
            with pytest.raises(WrongCode):
                confirm(gopay, agent, wrong(code))
        with pytest.raises(WrongCode, match="last try") as last:
            confirm(gopay, agent, wrong(code))
        assert last.value.details == {"attempts_left": 0}
        cash_out = cash_out_of(gopay, order)
        assert (cash_out.status, cash_out.reason) == (CashOutStatus.CANCELLED, "too_many_wrong_codes")
        assert (gopay.order(order.id).status, held(gopay, ada), gopay.balance(ada)) == (
            OrderStatus.FAILED, 0, 10_000)
        with pytest.raises(InvalidState, match="no longer works"):
            confirm(gopay, agent, code)
        assert gopay.balance(agent) == 0
        gopay.check_books()

    def test_the_number_of_tries_is_configured(self, gopay: InMemoryGoPay, agent: User,
                                               ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000, attempts=1)
        with pytest.raises(WrongCode, match="last try"):
            confirm(gopay, agent, wrong(code))
        assert cash_out_of(gopay, order).status == CashOutStatus.CANCELLED

    def test_a_code_of_an_empty_slot_is_not_found(self, gopay: InMemoryGoPay, agent: User,
                                                  ada: User) -> None:
        _, code = ask_cash_out(gopay, ada, agent, 4_000)
        other_slot = f"{(int(code[:4]) + 1) % 10_000:04d}" + code[4:]
        with pytest.raises(NotFound):
            confirm(gopay, agent, other_slot)


class TestExpiry:
    def test_an_expired_code_is_refused_and_its_money_released_at_once(
            self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        """The agent who enters it late finds it expired, and the customer has the money back."""
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        gopay.clock.advance(minutes=15)
        with pytest.raises(InvalidState, match="expired"):
            confirm(gopay, agent, code)
        assert (cash_out_of(gopay, order).status, held(gopay, ada)) == (CashOutStatus.EXPIRED, 0)
        assert gopay.balance(agent) == 0

    def test_the_scheduler_s_command_releases_what_expired_and_nothing_else(
            self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        late, _ = ask_cash_out(gopay, ada, agent, 1_000)
        gopay.clock.advance(minutes=10)
        fresh, fresh_code = ask_cash_out(gopay, ada, agent, 2_000)
        gopay.clock.advance(minutes=5)
        for order in (late, fresh):
            gopay.run(ExpireCashOut(order_id=order.id))
        assert cash_out_of(gopay, late).status == CashOutStatus.EXPIRED
        assert (gopay.order(late.id).status, gopay.order(late.id).failure_reason) == (
            OrderStatus.FAILED, "expired")
        assert cash_out_of(gopay, fresh).status == CashOutStatus.PENDING
        assert held(gopay, ada) == 2_000
        confirm(gopay, agent, fresh_code)
        gopay.run(ExpireCashOut(order_id=late.id))  # again: nothing more happens
        assert (gopay.balance(ada), held(gopay, ada), gopay.balance(agent)) == (8_000, 0, 2_000)
        gopay.check_books()

    def test_the_lifetime_is_configured(self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 1_000, valid_for=timedelta(seconds=30))
        gopay.clock.advance(seconds=29)
        confirm(gopay, agent, code)
        assert cash_out_of(gopay, order).status == CashOutStatus.SUCCEEDED


class TestCancelling:
    def test_the_customer_calls_it_off_and_has_the_money_back(self, gopay: InMemoryGoPay,
                                                              agent: User, ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        cancel = CancelCashOut(customer_wallet_id=wallet_id(ada), order_id=order.id)
        assert gopay.run(cancel).status == CashOutStatus.CANCELLED
        assert gopay.run(cancel).reason == "cancelled_by_customer"  # again: the same answer
        assert held(gopay, ada) == 0
        with pytest.raises(InvalidState):
            confirm(gopay, agent, code)

    def test_nobody_else_can_call_it_off(self, gopay: InMemoryGoPay, agent: User,
                                         ada: User) -> None:
        order, _ = ask_cash_out(gopay, ada, agent, 4_000)
        for wallet in (wallet_id(agent), wallet_id(gopay.register("mallory@example.com"))):
            with pytest.raises(NotFound):
                gopay.run(CancelCashOut(customer_wallet_id=wallet, order_id=order.id))
        assert held(gopay, ada) == 4_000

    def test_a_paid_cash_out_cannot_be_called_off(self, gopay: InMemoryGoPay, agent: User,
                                                  ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        confirm(gopay, agent, code)
        with pytest.raises(InvalidState):
            gopay.run(CancelCashOut(customer_wallet_id=wallet_id(ada), order_id=order.id))
        assert gopay.balance(agent) == 4_000


class TestRepeatedRequests:
    def test_a_repeated_request_answers_the_same_cash_out_and_code(self, gopay: InMemoryGoPay,
                                                                   agent: User, ada: User) -> None:
        """The first answer was lost: the retry shows the code the first one made."""
        first, code = ask_cash_out(gopay, ada, agent, 4_000, idempotency_key="k", fingerprint="f")
        again, same = ask_cash_out(gopay, ada, agent, 4_000, idempotency_key="k", fingerprint="f")
        assert (again.id, same) == (first.id, code)
        assert held(gopay, ada) == 4_000
        with pytest.raises(IdempotencyConflict):
            ask_cash_out(gopay, ada, agent, 3_000, idempotency_key="k", fingerprint="g")

    def test_a_repeated_entry_gets_the_same_answer_and_no_second_guess(
            self, gopay: InMemoryGoPay, agent: User, ada: User) -> None:
        order, code = ask_cash_out(gopay, ada, agent, 4_000)
        for _ in range(3):
            with pytest.raises(WrongCode, match="2 tries left"):
                confirm(gopay, agent, wrong(code), idempotency_key="e1")
        assert cash_out_of(gopay, order).attempts_left == 2
        for _ in range(2):
            answer = confirm(gopay, agent, code, idempotency_key="e2")
            assert answer.cash_out.status == CashOutStatus.SUCCEEDED
        assert gopay.balance(agent) == 4_000

    def test_a_key_used_for_another_code_is_a_conflict(self, gopay: InMemoryGoPay, agent: User,
                                                       ada: User) -> None:
        _, code = ask_cash_out(gopay, ada, agent, 4_000)
        with pytest.raises(WrongCode):
            confirm(gopay, agent, wrong(code), idempotency_key="e1")
        with pytest.raises(IdempotencyConflict):
            confirm(gopay, agent, code, idempotency_key="e1")


class TestRacingAgents:
    def test_two_entries_of_one_code_at_once_pay_once(self, gopay: InMemoryGoPay, agent: User,
                                                      ada: User) -> None:
        """Two tills of one agent enter the code in the same batch: one pays, one is told it is used."""
        _, code = ask_cash_out(gopay, ada, agent, 4_000)

        async def both() -> list[Any]:
            return await asyncio.gather(*(gopay.commands.run_async(
                ConfirmCashOut(agent_id=agent.id, code=code)) for _ in range(2)),
                return_exceptions=True)

        answers = asyncio.run(both())
        assert sorted(type(a).__name__ for a in answers) == ["InvalidState", "Outcome"]
        assert (gopay.balance(agent), gopay.balance(ada)) == (4_000, 6_000)
        gopay.check_books()


def cash_outs_asked(gopay: InMemoryGoPay) -> Iterator[CashOut]:
    for event in gopay.all_events():
        if isinstance(event, CashOut.Created):
            yield gopay.app.get(event.originator_id, CashOut)


def test_money_in_another_currency_is_refused(gopay: InMemoryGoPay, agent: User,
                                              ada: User) -> None:
    with pytest.raises(Exception, match="EUR"):
        gopay.run(cash_outs.RequestCashOut(caller_id=ada.id, wallet_id=wallet_id(ada),
                                           agent_id=agent.id, money=Money(100, "EUR")))
    assert list(cash_outs_asked(gopay)) == []
