"""Mobile recharges: the money is held, the operator is asked, and its answer pays or gives it back."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from tenacity import stop_after_attempt, wait_none

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeeRule
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.mobile_operators import AddOperator
from gopay.commands.psp_outcomes import ReceiveWebhook, RetryDeadLetter
from gopay.commands.recharges import RequestRecharge
from gopay.commands.staff import SetFrozen
from gopay.processes.psp import Policies, PspProcess
from gopay.psp.port import OperationKind, OperationStatus, PspNoAnswer, PspResult
from gopay.retry import RetryPolicy
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

UNSERVED = "+15550000000"
PHONE = "+14155550100"
FEES = SystemAccount.FEES.account_id("USD")


class FakeOperators:
    """The operators' gateway in miniature: one recharge per nonce; the unserved number fails.

    `answering` off: it does the work but the answer is lost (a dropped response), or, with
    `working` off too, nothing reaches it at all.
    """

    def __init__(self) -> None:
        self.done: dict[str, tuple[str, str, int]] = {}
        self.answering = True
        self.working = True
        self.calls = 0

    def recharge(self, nonce: str, phone_number: str, operator: str, amount: int,
                 currency: str) -> PspResult:
        self.calls += 1
        if self.working:
            self.done.setdefault(nonce, (phone_number, operator, amount))
        if not self.answering:
            raise PspNoAnswer("the gateway hung up")
        return self._result(nonce)

    def status(self, nonce: str) -> PspResult | None:
        if not self.answering:
            raise PspNoAnswer("the gateway hung up")
        return self._result(nonce) if nonce in self.done else None

    def _result(self, nonce: str) -> PspResult:
        phone, _, amount = self.done[nonce]
        served = phone != UNSERVED
        return PspResult(nonce=nonce, kind=OperationKind.RECHARGE,
                         status=OperationStatus.SUCCEEDED if served else OperationStatus.FAILED,
                         psp_reference=f"rc_{nonce[:8]}", amount=amount, currency="USD", fee=0,
                         failure_reason=None if served else "number_not_served")


class NoPsp:
    """Recharges never reach the PSP."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the PSP was asked to {name}")


@pytest.fixture
def gopay() -> InMemoryGoPay:
    """Recharges cost the payer 10."""
    return InMemoryGoPay(settings(fees={TransactionType.RECHARGE: FeeRule(fixed=10)}))


@pytest.fixture
def operators() -> FakeOperators:
    return FakeOperators()


@pytest.fixture
def telco(gopay: InMemoryGoPay) -> MobileOperator:
    return gopay.run(AddOperator(staff_id=gopay.admin.id, name="Telco", country="US"))


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 5_000)
    return ada


def process(gopay: InMemoryGoPay, operators: FakeOperators, attempts: int = 12) -> PspProcess:
    policies = Policies(call=RetryPolicy(wait=wait_none(), stop=stop_after_attempt(attempts)))
    return PspProcess(gopay.commands, NoPsp(), due=lambda limit: [], policies=policies,  # type: ignore[arg-type]  # a PSP recharges never use
                      operators=operators)


def recharge(gopay: InMemoryGoPay, operators: FakeOperators, payer: User, operator_id: UUID,
             amount: int, phone: str = PHONE, key: str | None = None,
             currency: str = "USD") -> PaymentOrder:
    """What `POST /v1/recharges` does: the order and its hold, then the operator asked at once."""
    order = gopay.run(RequestRecharge(caller_id=payer.id, wallet_id=wallet_id(payer),
                                      operator_id=operator_id, phone_number=phone,
                                      money=Money(amount, currency), idempotency_key=key,
                                      fingerprint=f"{amount}/{phone}"))
    if order.status == OrderStatus.PENDING:
        process(gopay, operators).attempt(PspTask.id_for_call(order.id), first=True)
    return gopay.order(order.id)


def payable(gopay: InMemoryGoPay, operator: MobileOperator) -> Wallet:
    return gopay.app.get(operator.wallet_id, Wallet)


class TestRecharging:
    def test_the_operator_s_success_pays_it_from_the_held_money(
            self, gopay: InMemoryGoPay, operators: FakeOperators, telco: MobileOperator,
            ada: User) -> None:
        """One entry: the payer pays airtime and fee, the operator's payable account gets the airtime."""
        order = recharge(gopay, operators, ada, telco.id, 1_000)
        assert (order.status, order.order_type, order.note, order.psp_reference) == (
            OrderStatus.SUCCEEDED, TransactionType.RECHARGE, PHONE, f"rc_{str(order.id)[:8]}")
        assert operators.done == {str(order.id): (PHONE, "Telco", 1_000)}
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held) == (5_000 - 1_010, 0)
        assert payable(gopay, telco).balance == 1_000
        assert {(p.account_id, p.amount) for p in order.postings} == {
            (wallet_id(ada), -1_010), (telco.wallet_id, 1_000), (FEES, 10)}
        [airtime] = [e for e in gopay.events(wallet_id(ada))
                     if isinstance(e, Wallet.Captured) and e.entry_type == TransactionType.RECHARGE]
        assert (airtime.counterparty, airtime.reference) == (str(telco.wallet_id), PHONE)
        gopay.check_books()

    def test_a_number_the_operator_does_not_serve_gives_the_money_back(
            self, gopay: InMemoryGoPay, operators: FakeOperators, telco: MobileOperator,
            ada: User) -> None:
        order = recharge(gopay, operators, ada, telco.id, 1_000, phone=UNSERVED)
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "number_not_served")
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held, wallet.spent_today) == (5_000, 0, 0)
        assert payable(gopay, telco).balance == 0
        gopay.check_books()

    def test_refusals_hold_nothing(self, gopay: InMemoryGoPay, operators: FakeOperators,
                                   telco: MobileOperator, ada: User) -> None:
        """Not enough money, over the limit, an unknown operator, another currency, a bad number:
        refused before any call, nothing held."""
        for amount, operator_id, error in [
                (4_995, telco.id, InsufficientFunds), (10_001, telco.id, LimitExceeded),
                (100, uuid4(), NotFound), (100, telco.wallet_id, NotFound)]:
            with pytest.raises(error):
                recharge(gopay, operators, ada, operator_id, amount)
        with pytest.raises(CurrencyMismatch):
            recharge(gopay, operators, ada, telco.id, 100, currency="EUR")
        with pytest.raises(ValidationFailed):
            recharge(gopay, operators, ada, telco.id, 100, phone="0044 20 7123 4567")
        assert (gopay.wallet(ada).held, operators.calls) == (0, 0)

    def test_a_frozen_wallet_buys_no_airtime(self, gopay: InMemoryGoPay,
                                             operators: FakeOperators, telco: MobileOperator,
                                             ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="x"))
        with pytest.raises(AccountFrozen):
            recharge(gopay, operators, ada, telco.id, 100)
        assert operators.calls == 0

    def test_a_repeated_key_recharges_once(self, gopay: InMemoryGoPay, operators: FakeOperators,
                                           telco: MobileOperator, ada: User) -> None:
        first = recharge(gopay, operators, ada, telco.id, 700, key="top-up-mum")
        again = recharge(gopay, operators, ada, telco.id, 700, key="top-up-mum")
        assert again.id == first.id and again.status == OrderStatus.SUCCEEDED
        assert len(operators.done) == 1
        assert gopay.balance(ada) == 5_000 - 710


class TestLearningLater:
    def test_a_lost_answer_keeps_the_money_held_until_a_status_query_tells(
            self, gopay: InMemoryGoPay, operators: FakeOperators, telco: MobileOperator,
            ada: User) -> None:
        """The operator recharged but its answer was lost: pending and held; the retry asks
        `status(nonce)` first and completes it, without recharging twice."""
        operators.answering = False
        order = recharge(gopay, operators, ada, telco.id, 1_000)
        assert order.status == OrderStatus.PENDING
        assert gopay.wallet(ada).held == 1_010
        operators.answering = True
        process(gopay, operators).attempt(PspTask.id_for_call(order.id))
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert operators.calls == 1
        assert (gopay.balance(ada), gopay.wallet(ada).held) == (5_000 - 1_010, 0)

    def test_a_failure_learnt_later_gives_the_money_back(
            self, gopay: InMemoryGoPay, operators: FakeOperators, telco: MobileOperator,
            ada: User) -> None:
        """The unserved number, answer lost: the later status query says failed; the hold goes."""
        operators.answering = False
        order = recharge(gopay, operators, ada, telco.id, 1_000, phone=UNSERVED)
        assert gopay.wallet(ada).held == 1_010
        operators.answering = True
        process(gopay, operators).attempt(PspTask.id_for_call(order.id))
        assert (gopay.order(order.id).status, gopay.order(order.id).failure_reason) == (
            OrderStatus.FAILED, "number_not_served")
        assert (gopay.balance(ada), gopay.wallet(ada).held) == (5_000, 0)
        gopay.check_books()

    def test_a_webhook_settles_it_as_well(self, gopay: InMemoryGoPay, operators: FakeOperators,
                                          telco: MobileOperator, ada: User) -> None:
        """The gateway's `recharge.failed` webhook releases the hold; the call task is done too."""
        operators.answering = False
        order = recharge(gopay, operators, ada, telco.id, 400, phone=UNSERVED)
        task = gopay.run(ReceiveWebhook(event_id="evt_1", event_type="recharge.failed",
                                        order_id=order.id, data={
                                            "psp_reference": "rc_1", "fee": 0,
                                            "failure_reason": "number_not_served"}))
        assert task is not None
        process(gopay, operators).attempt(task.id)
        assert gopay.order(order.id).status == OrderStatus.FAILED
        assert gopay.wallet(ada).held == 0
        assert gopay.app.get(PspTask.id_for_call(order.id), PspTask).done

    def test_a_gateway_that_never_answers_dead_letters_the_call_with_the_money_held(
            self, gopay: InMemoryGoPay, operators: FakeOperators, telco: MobileOperator,
            ada: User) -> None:
        """After its last attempt the call is dead-lettered; the money stays held (the outcome is
        unknown), and once staff send it round again and the gateway answers, it is settled."""
        operators.answering = operators.working = False
        order = recharge(gopay, operators, ada, telco.id, 300)
        task_id = PspTask.id_for_call(order.id)
        impatient = process(gopay, operators, attempts=2)
        impatient.attempt(task_id)
        task = gopay.app.get(task_id, PspTask)
        assert (task.dead, task.attempts, task.operation) == (True, 2, "recharge")
        assert gopay.wallet(ada).held == 310
        operators.answering = operators.working = True
        gopay.run(RetryDeadLetter(staff_id=gopay.admin.id, task_id=task_id))
        impatient.attempt(task_id)
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert (gopay.wallet(ada).held, payable(gopay, telco).balance) == (0, 300)


class TestOperators:
    def test_an_operator_has_an_empty_payable_account_of_its_own(
            self, gopay: InMemoryGoPay, telco: MobileOperator) -> None:
        account = payable(gopay, telco)
        assert (account.owner_id, account.currency, account.balance) == (telco.id, "USD", 0)

    def test_a_bad_country_or_currency_adds_nothing(self, gopay: InMemoryGoPay) -> None:
        for fields in ({"country": "XX"}, {"country": "US", "currency": "ZZZ"},
                       {"country": "US", "name": " "}):
            with pytest.raises(ValidationFailed):
                gopay.run(AddOperator(staff_id=uuid4(), **{"name": "Telco", **fields}))

    def test_a_repeated_key_adds_one_operator(self, gopay: InMemoryGoPay) -> None:
        def add() -> MobileOperator:
            return gopay.run(AddOperator(staff_id=gopay.admin.id, name="Telco", country="GB",
                                         idempotency_key="k", fingerprint="f"))

        assert add().id == add().id
