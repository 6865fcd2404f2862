"""A card top-up's cost on real PostgreSQL: three commands and no event read, in a thread or
awaited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.commands.topups import RequestTopUp
from gopay.processes.psp import PspProcess
from gopay.recorder import EventRecorder
from gopay.system import System
from tests.fake_psp import AwaitedFakePsp
from tests.integration.test_vault import add_payment_method, card, customer


@pytest.mark.parametrize("awaited", [False, True], ids=["in a thread", "awaited"])
def test_a_top_up_and_its_webhook_take_three_commands_and_no_event_read(
        system: System, monkeypatch: pytest.MonkeyPatch, awaited: bool) -> None:
    """The writers' turn keeps this process's memory fresh: the call reads nothing back, and
    the webhook finds the order's final status where the call left it."""
    ada: User = customer(system.commands)
    method = add_payment_method(system.commands, ada.id, card())
    process = PspProcess(system.commands, AwaitedFakePsp(), due=lambda limit: [])
    reads: list[Any] = []
    select_events = EventRecorder.select_events

    def counting(self: EventRecorder, *args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("originator_id", args[0] if args else None))
        return select_events(self, *args, **kwargs)

    monkeypatch.setattr(EventRecorder, "select_events", counting)
    batches = system.app.committer.batches
    assert ada.wallet_id is not None
    top_up = RequestTopUp(
        caller_id=ada.id, wallet_id=ada.wallet_id, payment_method_id=method.id,
        money=Money(1_000, "USD"), idempotency_key="t1", fingerprint="1000 USD")
    webhook = ("evt_1", "charge.succeeded")
    news = {"amount": 1_000}
    if awaited:
        async def request_and_webhook() -> tuple[PaymentOrder, PspTask | None]:
            order = (await system.commands.run_async(top_up)).value
            answered = await process.call_at_once_async(order)
            return answered, await process.keep_webhook(*webhook, order.id, news)

        answered, task = asyncio.run(request_and_webhook())
    else:
        order = system.commands.run(top_up).value
        answered = process.call_at_once(order)
        task = asyncio.run(process.keep_webhook(*webhook, order.id, news))
    assert answered.status == OrderStatus.SUCCEEDED
    assert task is not None and task.outcome == "already succeeded"
    assert (system.app.committer.batches - batches, reads) == (3, [])
