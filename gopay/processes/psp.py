"""Work with the PSP: calling it for top-ups and payouts, applying its webhooks.

Recharges are the same kind of work with another counterpart: a call to the mobile
operators' gateway (`gopay.operators.port`) under the order's nonce, retried, asked after and
dead-lettered the same way, and settled by the same command.

Each piece of work is a `PspTask` saved with what caused it, so nothing is lost to a crash:
the request that created it tries it at once, and a scheduled job tries whatever is due (a
first attempt the request never made, a retry after a failed one). A call that got no answer
asks the PSP what it did under the order's nonce before calling again, so a repeated attempt
never charges or pays twice. Every outcome is recorded by a command whose effect happens
once (`gopay.commands.psp_outcomes`). When a task's retry policy gives up, the task is
dead-lettered, for staff to list and send round again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cachetools import LRUCache
from prometheus_client import Counter, Histogram
from tenacity import stop_after_attempt, stop_after_delay, wait_exponential_jitter, wait_fixed

from gopay.aggregates.errors import DomainError
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.commands import Command, Commands
from gopay.commands.payment_methods import reveal_method
from gopay.commands.psp_outcomes import (
    ChargeBack,
    CompleteTask,
    FailAttempt,
    ReceiveWebhook,
    SettleWithPsp,
)
from gopay.operators.port import Operators
from gopay.psp.port import (
    AwaitedPsp,
    BankAccount,
    Card,
    DigitalWallet,
    NonceReused,
    OperationKind,
    OperationStatus,
    Psp,
    PspBusy,
    PspError,
    PspNoAnswer,
    PspRefused,
    PspResult,
    Source,
)
from gopay.retry import RetryPolicy

log = logging.getLogger(__name__)

PSP_CALLS = Counter("gopay_psp_calls_total", "Calls to the PSP, by operation and outcome",
                    ["operation", "outcome"])
RETRIES = Counter("gopay_psp_retries_total", "PSP tasks tried again after a failed attempt",
                  ["operation"])
DEAD_LETTERS = Counter("gopay_psp_dead_letters_total", "PSP tasks given up on (dead-lettered)",
                       ["operation"])
WEBHOOK_LAG = Histogram("gopay_psp_webhook_lag_seconds",
                        "From the PSP's event to GoPay applying it",
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


# A call that got no answer: soon, then less often, for about twenty minutes.
CALL_RETRIES = RetryPolicy(wait=wait_exponential_jitter(multiplier=1, max=120),
                           stop=stop_after_attempt(12))
# A webhook that could not be applied yet (its order not settled, the store away).
WEBHOOK_RETRIES = RetryPolicy(wait=wait_exponential_jitter(multiplier=1, max=60),
                              stop=stop_after_attempt(10))
# The PSP answered "pending": ask again at this pace, for at most a day.
PENDING_RECHECKS = RetryPolicy(wait=wait_fixed(10), stop=stop_after_delay(86_400))


@dataclass(frozen=True)
class Policies:
    """When to try each kind of PSP work again (tenacity's strategies), and when to give up."""

    call: RetryPolicy = CALL_RETRIES
    webhook: RetryPolicy = WEBHOOK_RETRIES
    pending: RetryPolicy = PENDING_RECHECKS


# How long a webhook waits for a call to the PSP under way in this process (the PSP sends
# its webhook as it answers the call): the answer settles the order in milliseconds.
CALL_UNDER_WAY_WAIT = 2.0

# Orders this process settled lately, with their final status: the PSP's webhook about one
# finds it here rather than in the store (an order's final status never changes).
SETTLED_REMEMBERED = 10_000

# Webhook types GoPay acts on; any other validly signed one is acknowledged and ignored.
SETTLING = {"charge.succeeded": OperationStatus.SUCCEEDED,
            "charge.failed": OperationStatus.FAILED,
            "payout.paid": OperationStatus.SUCCEEDED,
            "payout.failed": OperationStatus.FAILED,
            "recharge.succeeded": OperationStatus.SUCCEEDED,
            "recharge.failed": OperationStatus.FAILED}
CHARGEBACK = "charge.disputed"
KNOWN_WEBHOOKS = (*SETTLING, CHARGEBACK)


class PspProcess:
    """Carries out PSP tasks; see the module docstring."""

    def __init__(self, commands: Commands, psp: Psp, due: Callable[[int], list[UUID]],
                 policies: Policies = Policies(), operators: Operators | None = None) -> None:
        self.commands = commands
        self.app = commands.context.app
        self.psp = psp
        self.due = due
        self.policies = policies
        self.operators = operators
        # Orders whose request is calling the PSP now, in this process: a webhook about one
        # waits for the call's answer rather than racing it.
        self._calls_under_way: dict[UUID, CallUnderWay] = {}
        self._calls_lock = threading.Lock()
        self._settled: LRUCache[UUID, str] = LRUCache(maxsize=SETTLED_REMEMBERED)

    def run_due(self, limit: int = 100) -> int:
        """Try every task that is due now; how many were tried."""
        tried = 0
        for task_id in self.due(limit):
            try:
                self.attempt(task_id)
            except Exception:  # one task's bug must not stop the others
                log.exception("PSP task %s failed unexpectedly", task_id)
            tried += 1
        return tried

    def attempt(self, task_id: UUID, *, first: bool = False) -> None:
        """Try a task once. `first`: the request that created it, which knows it made no call yet."""
        self._try(self.app.find(task_id, PspTask), first=first)

    def call_at_once(self, order: PaymentOrder) -> PaymentOrder:
        """The request that saved a pending `order` makes its call now; the order as it stands after.

        The command's batch has just saved the call's task and read the payment method, and
        this process remembers both as that batch left them (the committer's known state,
        brought up to date with other writers' events at each batch), so neither is read back
        from the store; nor is the order, which the command answered with and the command
        recording the PSP's answer answers with again.
        """
        task = self._recall(PspTask.id_for_call(order.id), PspTask)
        if task is None or task.done or task.dead:  # a repeated request, its call made before
            return self.app.get(order.id, PaymentOrder)
        with self._under_way(order.id):
            return self._call(task, first=True, order=order, fresh=True)

    async def call_at_once_async(self, order: PaymentOrder) -> PaymentOrder:
        """`call_at_once` for a coroutine: the PSP's answer and the batches are awaited, so a
        request holds no thread while the PSP works (an API process serves a top-up with the
        CPU a transfer takes, not a thread's)."""
        task = self.app.committer.known.get(PspTask.id_for_call(order.id))
        if (not isinstance(task, PspTask) or task.operation == OperationKind.RECHARGE
                or not isinstance(self.psp, AwaitedPsp)):
            return await asyncio.to_thread(self.call_at_once, order)
        if task.done or task.dead:
            return await asyncio.to_thread(self.app.get, order.id, PaymentOrder)
        with self._under_way(order.id):
            verdict = self._verdict(task, order, *await self._attempt_async(task, order))
            return self._settled_order(verdict, (await self.commands.run_async(verdict)).value,
                                       order)

    @contextmanager
    def _under_way(self, order_id: UUID) -> Iterator[None]:
        """While the block calls the PSP for the order, webhooks about it wait for its answer."""
        call = CallUnderWay()
        with self._calls_lock:
            self._calls_under_way[order_id] = call
        try:
            yield
        finally:
            with self._calls_lock:
                if self._calls_under_way.get(order_id) is call:
                    del self._calls_under_way[order_id]
            call.answered()

    async def keep_webhook(self, event_id: str, event_type: str, order_id: UUID | None,
                           data: Mapping[str, Any]) -> PspTask | None:
        """Keep a webhook as a task; None if it was delivered before (its task exists).

        News of an order already settled (as usual: the call's answer came first) is kept as
        a task done at once, by the same command: there is nothing left to apply. Orders only
        go from pending to final, so a final status read here stays true: an order this
        process settled lately is known without a read, another is read from the store in a
        thread. News of a pending order, or a chargeback, is kept to be applied (`apply`).
        The PSP sends its webhook as it answers the call, so news of an order whose call this
        process is making waits (briefly) for that call's answer to settle it first.
        """
        settled = None
        if order_id is not None and event_type in SETTLING:
            call = self._call_under_way(order_id)
            if call is not None:
                await call.wait(CALL_UNDER_WAY_WAIT)
            settled = self._settled_status(order_id) or _final(
                await asyncio.to_thread(self.app.find, order_id, PaymentOrder))
        task = (await self.commands.run_async(ReceiveWebhook(
            event_id=event_id, event_type=event_type, order_id=order_id, data=data,
            settled=f"already {settled}" if settled else None))).value
        if task is not None and task.done:
            self._note_lag(task.payload)
        return task

    def _call_under_way(self, order_id: UUID) -> CallUnderWay | None:
        with self._calls_lock:
            return self._calls_under_way.get(order_id)

    def _settled_status(self, order_id: UUID) -> str | None:
        with self._calls_lock:  # an LRU cache reorders itself on every read
            return self._settled.get(order_id)

    def apply(self, task: PspTask) -> None:
        """Try a task `keep_webhook` has just kept (as it returned it, not read back)."""
        self._try(task)

    def _try(self, task: PspTask | None, *, first: bool = False) -> None:
        if task is None or task.done or task.dead:
            return
        if task.attempts:
            RETRIES.labels(task.operation).inc()
        if task.kind == TaskKind.CALL:
            self._call(task, first=first)
        else:
            self._apply_webhook(task)

    def _recall(self, aggregate_id: UUID, kind: type[Any]) -> Any:
        """As this process's last batch left it, else as stored: only right after a command
        that saved or read it is the remembered one as fresh as a read."""
        remembered = self.app.committer.known.get(aggregate_id)
        if isinstance(remembered, kind):
            return remembered
        return self.app.find(aggregate_id, kind)

    # Calls for payment orders

    def _call(self, task: PspTask, *, first: bool, order: PaymentOrder | None = None,
              fresh: bool = False) -> PaymentOrder:
        """Make the call; the order as the outcome left it. `fresh`: right after the command
        that saved the task (its payment method may be recalled, not read)."""
        assert task.order_id is not None, "a call is for an order"
        if order is None:
            order = self.app.get(task.order_id, PaymentOrder)
        if order.status != OrderStatus.PENDING:
            self.commands.run(CompleteTask(task_id=task.id, outcome=f"already {order.status}"))
            return order
        verdict = self._verdict(task, order, *self._attempt(task, order, first=first, fresh=fresh))
        return self._settled_order(verdict, self.commands.run(verdict).value, order)

    def _attempt(self, task: PspTask, order: PaymentOrder, *, first: bool,
                 fresh: bool) -> tuple[PspResult | None, Exception | None]:
        """What the PSP did under the order's nonce (None: nothing), or why it is not known."""
        nonce = str(order.id)
        try:
            # Unless this is surely the first call, the PSP may have done it already.
            result = None if first else self._status(task, nonce)
            if result is None:
                try:
                    result = self._ask_psp(task, order, nonce, fresh=fresh)
                except NonceReused:
                    result = self._status(task, nonce)
        except (PspError, OSError, DomainError) as error:
            return None, error
        return result, None

    async def _attempt_async(self, task: PspTask, order: PaymentOrder
                             ) -> tuple[PspResult | None, Exception | None]:
        """`_attempt` of a first call, awaited (the instrument's secret is read in a thread)."""
        assert isinstance(self.psp, AwaitedPsp)
        nonce = str(order.id)
        result: PspResult | None
        try:
            instrument = await asyncio.to_thread(self._instrument, task, fresh=True)
            try:
                if task.operation == OperationKind.PAYOUT:
                    assert not isinstance(instrument, DigitalWallet), "payouts go to accounts"
                    result = await self.psp.payout_async(nonce, order.amount, order.currency,
                                                         instrument)
                else:
                    result = await self.psp.charge_async(nonce, order.amount, order.currency,
                                                         instrument)
            except NonceReused:
                result = await self.psp.status_async(nonce)
        except (PspError, OSError, DomainError) as error:
            return None, error
        return result, None

    def _verdict(self, task: PspTask, order: PaymentOrder, result: PspResult | None,
                 error: Exception | None) -> Command[Any]:
        """The command that records an attempt's outcome: `SettleWithPsp` or `FailAttempt`."""
        if isinstance(error, (PspRefused, DomainError)):  # refused, or the method is gone
            if isinstance(error, PspRefused):
                PSP_CALLS.labels(task.operation, "refused").inc()
            return self._settling(order.id, task, status=OperationStatus.FAILED,
                                  psp_reference="", failure_reason=error.code)
        if isinstance(error, PspBusy):  # turned away for now: the order is neither failed nor done
            PSP_CALLS.labels(task.operation, "busy").inc()
            return self._failing(task, f"the PSP is busy: {error}", self.policies.call,
                                 not_before=error.retry_after)
        if error is not None:
            PSP_CALLS.labels(task.operation, "no_answer").inc()
            return self._failing(task, f"no answer from the PSP: {error}", self.policies.call)
        if result is None:
            return self._failing(task, "the PSP has no operation under the nonce",
                                 self.policies.call)
        mismatch = _mismatch(order, task.operation, result.kind, result.amount, result.currency)
        if mismatch:  # no attempt will change what the PSP did: staff must look
            PSP_CALLS.labels(task.operation, "mismatch").inc()
            return self._giving_up(task, mismatch)
        PSP_CALLS.labels(task.operation, str(result.status)).inc()
        return self._recording(task, result)

    def _settled_order(self, verdict: Command[Any], value: Any,
                       order: PaymentOrder) -> PaymentOrder:
        """The order as the verdict's command left it (a failed attempt leaves it as it was)."""
        if not isinstance(verdict, SettleWithPsp):
            return order
        assert isinstance(value, PaymentOrder)
        if value.status != OrderStatus.PENDING:
            with self._calls_lock:
                self._settled[value.id] = str(value.status)
        return value

    def _status(self, task: PspTask, nonce: str) -> PspResult | None:
        if task.operation == OperationKind.RECHARGE:
            return self._operators().status(nonce)
        return self.psp.status(nonce)

    def _operators(self) -> Operators:
        if self.operators is None:
            raise PspNoAnswer("no mobile operators' gateway is configured")
        return self.operators

    def _ask_psp(self, task: PspTask, order: PaymentOrder, nonce: str, *,
                 fresh: bool = False) -> PspResult:
        if task.operation == OperationKind.RECHARGE:
            return self._operators().recharge(nonce, str(task.payload["phone_number"]),
                                              str(task.payload["operator"]), order.amount,
                                              order.currency)
        instrument = self._instrument(task, fresh=fresh)
        if task.operation == OperationKind.PAYOUT:
            assert not isinstance(instrument, DigitalWallet), "payouts go to accounts"
            return self.psp.payout(nonce, order.amount, order.currency, instrument)
        return self.psp.charge(nonce, order.amount, order.currency, instrument)

    def _instrument(self, task: PspTask, *, fresh: bool) -> Source:
        """The task's payment method as the PSP takes it, its secret revealed from the vault."""
        method_id = UUID(task.payload["payment_method_id"])
        owner_id = UUID(task.payload["owner_id"])
        method = (self._recall(method_id, PaymentMethod) if fresh
                  else self.app.find(method_id, PaymentMethod))
        secret = reveal_method(self.commands.context, owner_id, method_id, method)
        assert method is not None, "reveal_method refuses a missing method"
        if method.method_type == "card":
            return Card(secret)
        if method.method_type == "bank_account":
            return BankAccount(secret)
        return DigitalWallet(str(method.details["provider"]), secret)

    def _recording(self, task: PspTask, result: PspResult) -> SettleWithPsp:
        assert task.order_id is not None, "a call is for an order"
        recheck = None
        if result.status == OperationStatus.PENDING:
            delay = self.policies.pending.next_delay(1)
            recheck = self._at(delay if delay is not None else 60)
        return self._settling(task.order_id, task, status=result.status,
                              psp_reference=result.psp_reference, fee=result.fee,
                              failure_reason=result.failure_reason, recheck_at=recheck)

    # Webhooks

    def _apply_webhook(self, task: PspTask) -> None:
        data = task.payload
        if task.order_id is None:
            self._failed(task, f"the webhook names no GoPay order: {data.get('merchant_reference')!r}",
                         self.policies.webhook)
            return
        try:
            order = (self.app.find(task.order_id, PaymentOrder)
                     if task.operation in SETTLING else None)
            if order is not None and order.status != OrderStatus.PENDING:
                # The call's answer settled it first (as usual): read here, in the caller's
                # thread, rather than by the writer's batch, which every command waits on.
                self.commands.run(CompleteTask(task_id=task.id, outcome=f"already {order.status}"))
            elif task.operation in SETTLING and (mismatch := _mismatch(  # "charge.succeeded": a charge
                    order, task.operation.partition(".")[0], data.get("object"),
                    data.get("amount"), data.get("currency"))):
                self.commands.run(self._giving_up(task, f"webhook: {mismatch}"))
            elif task.operation in SETTLING:
                self._settle(task.order_id, task, status=SETTLING[task.operation],
                             psp_reference=str(data.get("psp_reference", "")),
                             fee=int(data.get("fee") or 0),
                             failure_reason=data.get("failure_reason"),
                             recheck_at=None)
            else:  # a chargeback
                self.commands.run(ChargeBack(
                    caller_id=task.order_id, topup_id=task.order_id,
                    idempotency_key=str(data.get("psp_reference")), fingerprint=CHARGEBACK,
                    money=Money(int(data["amount"]), str(data["currency"])),
                    psp_fee=int(data.get("fee") or 0)))
                self.commands.run(CompleteTask(task_id=task.id, outcome="charged back"))
        except (DomainError, KeyError, ValueError) as error:
            self._failed(task, f"{type(error).__name__}: {error}", self.policies.webhook)
            return
        self._note_lag(data)

    def _note_lag(self, data: Mapping[str, Any]) -> None:
        created = data.get("created_at")
        if isinstance(created, str):
            WEBHOOK_LAG.observe(max(0.0, (self._now() - datetime.fromisoformat(created)).total_seconds()))

    # Recording

    def _settle(self, order_id: UUID, task: PspTask, *, status: OperationStatus,
                psp_reference: str, fee: int = 0, failure_reason: str | None = None,
                recheck_at: str | None = None) -> PaymentOrder:
        command = self._settling(order_id, task, status=status, psp_reference=psp_reference,
                                 fee=fee, failure_reason=failure_reason, recheck_at=recheck_at)
        return self.commands.run(command).value

    @staticmethod
    def _settling(order_id: UUID, task: PspTask, *, status: OperationStatus,
                  psp_reference: str, fee: int = 0, failure_reason: str | None = None,
                  recheck_at: str | None = None) -> SettleWithPsp:
        return SettleWithPsp(order_id=order_id, status=status, psp_reference=psp_reference,
                             fee=fee, failure_reason=failure_reason, task_id=task.id,
                             recheck_at=recheck_at)

    def _failed(self, task: PspTask, error: str, policy: RetryPolicy) -> None:
        self.commands.run(self._failing(task, error, policy))

    def _failing(self, task: PspTask, error: str, policy: RetryPolicy,
                 not_before: float | None = None) -> FailAttempt:
        delay = policy.next_delay(task.attempts + 1)
        if delay is not None and not_before is not None:
            delay = max(delay, not_before)  # as long as the PSP asked, unless the policy waits longer
        if delay is None:
            return self._giving_up(task, error)
        return FailAttempt(task_id=task.id, error=error, retry_at=self._at(delay))

    def _giving_up(self, task: PspTask, error: str) -> FailAttempt:
        """No attempt will do the task now: it waits, dead-lettered, for staff."""
        DEAD_LETTERS.labels(task.operation).inc()
        log.warning("PSP task %s (%s) dead-lettered: %s", task.id, task.operation, error)
        return FailAttempt(task_id=task.id, error=error, retry_at=None)

    def _now(self) -> datetime:
        return self.commands.context.clock()

    def _at(self, seconds: float) -> str:
        return (self._now() + timedelta(seconds=seconds)).isoformat()


def _mismatch(order: PaymentOrder | None, operation: str, kind: object, amount: object,
              currency: object) -> str | None:
    """Why what the PSP says it did under the order's nonce is not the order's operation
    (another kind, amount or currency; what it leaves out is not compared), or None.
    Settling on it would book money the PSP did not move."""
    if order is None:
        return None
    expected = {"kind": operation, "amount": order.amount, "currency": order.currency}
    # ISO 4217 codes in any case (some PSPs write "usd")
    told = {"kind": kind, "amount": amount,
            "currency": currency.upper() if isinstance(currency, str) else currency}
    differ = [f"{name} {told[name]!r}, not {expected[name]!r}" for name in expected
              if told[name] is not None and told[name] != expected[name]]
    return f"the PSP's operation under the nonce is not the order's: {', '.join(differ)}" if differ else None


class CallUnderWay:
    """A call to the PSP this process is making; webhooks about its order wait for its answer,
    made in a thread (a recharge, the scheduled job) or on the event loop (a top-up)."""

    def __init__(self) -> None:
        self._answered = threading.Event()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self._answered_async: asyncio.Event | None = asyncio.Event()
        except RuntimeError:  # made in a thread
            self._loop = self._answered_async = None

    def answered(self) -> None:
        self._answered.set()
        if self._loop is not None and self._answered_async is not None:
            self._loop.call_soon_threadsafe(self._answered_async.set)

    async def wait(self, timeout: float) -> None:
        if self._answered_async is None or asyncio.get_running_loop() is not self._loop:
            await asyncio.to_thread(self._answered.wait, timeout)
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._answered_async.wait(), timeout)


def _final(order: PaymentOrder | None) -> str | None:
    """An order's status if it is final (it never changes again), else None."""
    return None if order is None or order.status == OrderStatus.PENDING else str(order.status)
