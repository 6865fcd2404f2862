"""The PSP-work view: what staff and the retry job read, the same however the log is paged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from gopay.aggregates.psp_task import PspTask
from gopay.commands.psp_outcomes import FailAttempt, ReceiveWebhook
from gopay.system import System


@pytest.mark.parametrize("page_size", [1, 2000])
def test_a_dead_letter_shows_what_its_events_say_whatever_the_pages(system: System,
                                                                    page_size: int) -> None:
    """Tried, put off, then given up on: the view shows the task as its aggregate is, when the
    events come in one page and when they come one per page."""
    commands, read_side = system.commands, system.read_side
    task = commands.run(ReceiveWebhook(event_id="evt_1", event_type="charge.succeeded",
                                       order_id=None, data={"merchant_reference": "ord_9"})).value
    assert task is not None
    retry_at = datetime.fromisoformat(task.due_at) + timedelta(seconds=30)
    commands.run(FailAttempt(task_id=task.id, error="names no order", retry_at=retry_at.isoformat()))
    commands.run(FailAttempt(task_id=task.id, error="names no order", retry_at=None))
    read_side.runner.page_size = page_size
    read_side.rebuild()
    stored = system.app.get(task.id, PspTask)
    row = read_side.psp_tasks.task(task.id)
    assert row is not None
    assert (row["attempts"], row["dead"], row["done"], row["due_at"]) == (
        2, True, False, datetime.fromisoformat(stored.due_at))
    assert [dead["id"] for dead in read_side.psp_tasks.dead_letters(limit=10)] == [task.id]
    assert read_side.psp_tasks.due(10, retry_at + timedelta(days=1)) == []
