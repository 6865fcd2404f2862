"""Whatever agents, customers and payment requests do, the books balance and no wallet goes negative.

A hypothesis state machine on the in-memory GoPay: cash-ins, cash-outs asked for and then
confirmed, guessed at, cancelled or left to expire, payment requests paid, declined or left
open, transfers, and freezes, with fees and commissions on, in two currencies. Refusals are
part of the story. After every step no wallet is below zero or holds more than it has; at
the end every journal entry balances per currency, every wallet equals its postings and its
lines, all accounts sum to zero per currency, and every cash-out and request agrees with its
order and its hold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gopay.aggregates.cash_out import CashOut, CashOutStatus
from gopay.aggregates.errors import DomainError
from gopay.aggregates.fees import FeePayer, FeeRule, Rate
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus
from gopay.aggregates.payment_request import PaymentRequest, RequestStatus
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.cash_outs import CancelCashOut, ExpireCashOut
from gopay.commands.payment_requests import (
    DeclinePaymentRequest,
    ExpirePaymentRequest,
    PayPaymentRequest,
    RequestPayment,
)
from gopay.commands.staff import SetFrozen
from gopay.commands.transfer import Transfer
from tests.unit.commands.counter import ask_cash_out, cash_in, confirm, wrong
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id
from tests.unit.commands.in_memory import settings as gopay_settings

# Two agents and three people in USD, one of each in EUR: pairs across currencies are refused.
AGENTS = (("agent-1", "USD"), ("agent-2", "USD"), ("agent-3", "EUR"))
PEOPLE = (("ada", "USD"), ("bob", "USD"), ("cy", "USD"), ("dee", "EUR"))
AMOUNTS = st.integers(1, 12_000)
KEYS = st.sampled_from([None, None, None, "k1", "k2"])
# Mostly people and agents of one currency; now and then across currencies (refused).
AGENT_FOR = {0: (0, 1), 1: (1, 0), 2: (0, 1), 3: (2,)}


@dataclass
class AskedCashOut:
    order_id: UUID
    code: str
    customer: User
    agent: User


class AgentsAndRequests(RuleBasedStateMachine):
    """The story; see the module docstring."""

    @initialize(commission_bps=st.integers(0, 200), fee_bps=st.integers(0, 300),
                payer_pays=st.booleans())
    def open_the_counters(self, commission_bps: int, fee_bps: int, payer_pays: bool) -> None:
        paid_by = FeePayer.PAYER if payer_pays else FeePayer.PAYEE
        fees = {TransactionType.CASH_IN: FeeRule(commission=Rate(fixed=5, bps=commission_bps)),
                TransactionType.CASH_OUT: FeeRule(bps=fee_bps, paid_by=paid_by,
                                                  commission=Rate(bps=commission_bps)),
                TransactionType.TRANSFER: FeeRule(fixed=3, paid_by=paid_by)}
        self.gopay = InMemoryGoPay(gopay_settings(fees=fees))
        self.agents = [self._open(name, "agent", currency, 40_000) for name, currency in AGENTS]
        self.people = [self._open(name, "person", currency, 15_000) for name, currency in PEOPLE]
        self.cash_outs: list[AskedCashOut] = []
        self.requests: list[PaymentRequest] = []

    def _open(self, name: str, kind: str, currency: str, funds: int) -> User:
        user = self.gopay.register(f"{name}@example.com", kind=kind, currency=currency)
        self.gopay.fund(user, funds, currency)
        return user

    def _try(self, step: str, action: Callable[[], Any]) -> Any:
        """Run a step; a refusal is part of the story (`--hypothesis-show-statistics` counts them)."""
        try:
            done = action()
        except DomainError as refusal:
            event(f"{step}: {refusal.code}")
            return None
        event(f"{step}: done")
        return done

    @rule(person=st.integers(0, 3), pick=st.integers(0, 15), amount=AMOUNTS, key=KEYS)
    def cash_in(self, person: int, pick: int, amount: int, key: str | None) -> None:
        agent = _agent_for(person, pick)
        self._try("cash-in", lambda: cash_in(self.gopay, self.agents[agent], self.people[person].email,
                                  amount, AGENTS[agent][1], idempotency_key=key,
                                  fingerprint=f"{person}/{amount}"))

    @rule(person=st.integers(0, 3), pick=st.integers(0, 15), amount=AMOUNTS, key=KEYS)
    def ask_for_a_cash_out(self, person: int, pick: int, amount: int, key: str | None) -> None:
        agent = _agent_for(person, pick)
        customer, at = self.people[person], self.agents[agent]
        asked = self._try("cash-out asked", lambda: ask_cash_out(self.gopay, customer, at, amount,
                                               PEOPLE[person][1], idempotency_key=key,
                                               fingerprint=f"{agent}/{amount}"))
        if asked is not None:
            order, code = asked
            self.cash_outs.append(AskedCashOut(order.id, code, customer, at))

    def _pending(self, which: int) -> AskedCashOut | None:
        """One of the cash-outs still waiting, mostly (an ended one now and then)."""
        waiting = [asked for asked in self.cash_outs if self.gopay.app.get(
            CashOut.id_for(asked.order_id), CashOut).status == CashOutStatus.PENDING]
        pool = waiting if waiting and which % 5 else self.cash_outs
        return pool[which % len(pool)] if pool else None

    @rule(which=st.integers(0, 10**6), entry=st.sampled_from(["right"] * 3 + ["wrong", "rival"]))
    def enter_a_code(self, which: int, entry: str) -> None:
        """The right code, a wrong guess, or the right code at another agent."""
        asked = self._pending(which)
        if asked is None:
            return
        agent = asked.agent if entry != "rival" else next(
            a for a in self.agents if a is not asked.agent)
        code = wrong(asked.code) if entry == "wrong" else asked.code
        self._try(f"code entered ({entry})", lambda: confirm(self.gopay, agent, code))

    @rule(which=st.integers(0, 10**6))
    def call_a_cash_out_off(self, which: int) -> None:
        asked = self._pending(which)
        if asked is not None and which % 3 == 0:  # now and then: most are paid or expire
            self._try("cash-out called off", lambda: self.gopay.run(CancelCashOut(
                customer_wallet_id=wallet_id(asked.customer), order_id=asked.order_id)))

    @rule(minutes=st.sampled_from([1, 2, 4, 16]))
    def time_passes(self, minutes: int) -> None:
        """The clock moves on and the scheduler ends whatever expired."""
        self.gopay.clock.advance(minutes=minutes)
        for asked in self.cash_outs:
            self.gopay.run(ExpireCashOut(order_id=asked.order_id))
        for request in self.requests:
            self.gopay.run(ExpirePaymentRequest(request_id=request.id))

    @rule(requester=st.integers(0, 3), payer=st.integers(0, 6), amount=AMOUNTS,
          minutes=st.integers(5, 60))
    def ask_for_money(self, requester: int, payer: int, amount: int, minutes: int) -> None:
        asker = self.people[requester]
        asked = (self.people + self.agents)[payer]
        request = self._try("money asked for", lambda: self.gopay.run(RequestPayment(
            requester_id=asker.id, requester_wallet_id=wallet_id(asker), payer=asked.email,
            money=Money(amount, PEOPLE[requester][1]), valid_for=timedelta(minutes=minutes))))
        if request is not None:
            self.requests.append(request)

    @rule(which=st.integers(0, 10**6), key=KEYS, decline=st.booleans())
    def answer_a_request(self, which: int, key: str | None, decline: bool) -> None:
        if not self.requests:
            return
        request = self.requests[which % len(self.requests)]
        payer = self.gopay.app.get(request.payer_wallet_id, Wallet).owner_id
        if decline:
            self._try("request declined", lambda: self.gopay.run(DeclinePaymentRequest(
                request_id=request.id, payer_wallet_id=request.payer_wallet_id)))
        else:
            self._try("request paid", lambda: self.gopay.run(PayPaymentRequest(
                caller_id=payer, request_id=request.id, payer_wallet_id=request.payer_wallet_id,
                idempotency_key=key, fingerprint=str(request.id))))

    @rule(sender=st.integers(0, 3), recipient=st.integers(0, 6), amount=AMOUNTS)
    def transfer(self, sender: int, recipient: int, amount: int) -> None:
        person = self.people[sender]
        self._try("transfer", lambda: self.gopay.run(Transfer(
            caller_id=person.id, sender_wallet_id=wallet_id(person),
            recipient=(self.people + self.agents)[recipient].email,
            money=Money(amount, PEOPLE[sender][1]))))

    @rule(who=st.integers(0, 6), freeze=st.integers(0, 3))
    def freeze_or_unfreeze(self, who: int, freeze: int) -> None:
        """Freeze someone now and then; mostly unfreeze (a no-op for the unfrozen)."""
        user = (self.people + self.agents)[who]
        self.gopay.run(SetFrozen(staff_id=self.gopay.admin.id, user_id=user.id,
                                 frozen=freeze == 0, reason="story"))

    @invariant()
    def no_wallet_is_below_zero_or_holds_more_than_it_has(self) -> None:
        for user in getattr(self, "people", []) + getattr(self, "agents", []):
            wallet = self.gopay.wallet(user)
            assert 0 <= wallet.held <= wallet.balance, (user.email, wallet.balance, wallet.held)

    def teardown(self) -> None:
        if not hasattr(self, "gopay"):
            return
        books = self.gopay.check_books()
        totals: dict[str, int] = defaultdict(int)
        currency_of = {wallet_id(u): self.gopay.wallet(u).currency
                       for u in self.people + self.agents}
        for account, balance in books.accounts.items():
            totals[currency_of.get(account) or _system_currency(account)] += balance
        assert not any(totals.values()), f"the books do not sum to zero: {dict(totals)}"
        for asked in self.cash_outs:
            self._agrees(asked)
        for request in self.requests:
            now = self.gopay.app.get(request.id, PaymentRequest)
            paid = now.order_id and self.gopay.order(now.order_id)
            assert (now.status == RequestStatus.PAID) == bool(
                paid and paid.status == OrderStatus.SUCCEEDED), now.status

    def _agrees(self, asked: AskedCashOut) -> None:
        """A cash-out and its order and hold tell one story."""
        cash_out = self.gopay.app.get(CashOut.id_for(asked.order_id), CashOut)
        order = self.gopay.order(asked.order_id)
        holds = self.gopay.wallet(asked.customer).holds
        expected = {CashOutStatus.PENDING: OrderStatus.PENDING,
                    CashOutStatus.SUCCEEDED: OrderStatus.SUCCEEDED,
                    CashOutStatus.EXPIRED: OrderStatus.FAILED,
                    CashOutStatus.CANCELLED: OrderStatus.FAILED}[cash_out.status]
        assert order.status == expected, (cash_out.status, order.status)
        assert (str(order.id) in holds) == (cash_out.status == CashOutStatus.PENDING)


def _agent_for(person: int, pick: int) -> int:
    """An agent of the person's currency, or one in sixteen times any agent."""
    return pick % len(AGENTS) if pick == 0 else AGENT_FOR[person][pick % len(AGENT_FOR[person])]


def _system_currency(account: UUID) -> str:
    for system in SystemAccount:
        for currency in ("USD", "EUR"):
            if system.account_id(currency) == account:
                return currency
    raise AssertionError(f"an account of no known currency: {account}")


AgentsAndRequests.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestAgentsAndRequestsKeepTheBooks = AgentsAndRequests.TestCase
