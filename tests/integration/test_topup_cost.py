"""A card top-up's cost on real PostgreSQL: three commands, and one event read (the webhook's)."""

from __future__ import annotations

from typing import Any

import pytest

from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus
from gopay.aggregates.user import User
from gopay.commands.topups import RequestTopUp
from gopay.processes.psp import PspProcess
from gopay.recorder import EventRecorder
from gopay.system import System
from tests.fake_psp import FakePsp
from tests.integration.test_vault import add_payment_method, card, customer


def test_a_top_up_and_its_webhook_take_three_commands_and_one_event_read(
        system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writers' turn keeps this process's memory fresh: the call reads nothing back."""
    ada: User = customer(system.commands)
    method = add_payment_method(system.commands, ada.id, card())
    process = PspProcess(system.commands, FakePsp(), due=lambda limit: [])
    reads: list[Any] = []
    select_events = EventRecorder.select_events

    def counting(self: EventRecorder, *args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("originator_id", args[0] if args else None))
        return select_events(self, *args, **kwargs)

    monkeypatch.setattr(EventRecorder, "select_events", counting)
    batches = system.app.committer.batches
    assert ada.wallet_id is not None
    order = system.commands.run(RequestTopUp(
        caller_id=ada.id, wallet_id=ada.wallet_id, payment_method_id=method.id,
        money=Money(1_000, "USD"), idempotency_key="t1", fingerprint="1000 USD")).value
    answered = process.call_at_once(order)
    task = process.keep_webhook("evt_1", "charge.succeeded", order.id,
                                {"merchant_reference": str(order.id), "amount": 1_000})
    assert answered.status == OrderStatus.SUCCEEDED
    assert task is not None and task.outcome == "already succeeded"
    assert (system.app.committer.batches - batches, reads) == (3, [order.id])
