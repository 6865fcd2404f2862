"""Projection runners: a projection that reads only its own topics still passes every event."""

from __future__ import annotations

from gopay.commands.profile import UpdateProfile
from gopay.commands.registration import Register
from gopay.projections.directory import DirectoryProjection
from gopay.projections.runner import PagedProjectionRunner
from gopay.system import System
from tests.support import open_wallets, transfer


def directory_runner(system: System) -> PagedProjectionRunner:
    [runner] = [r for r in system.read_side.runners if r.projection.name == DirectoryProjection.name]
    return runner


def test_the_directory_reads_only_user_events_and_still_reaches_the_head(system: System) -> None:
    """Registrations and profile changes reach the directory; transfers after them are skipped
    unread, yet its position reaches the end of the log, so reads never wait on it."""
    app = system.app
    alice, bob = open_wallets(system.commands, 2, 1_000)
    runner = directory_runner(system)
    assert runner.projection.topics  # it asks the store for its own topics only
    runner.run_until_caught_up()
    assert runner.view.position(app.name) == app.recorder.max_notification_id()

    for _ in range(3):  # nothing but wallet and payment-order events from here on
        transfer(system.commands, alice, bob, 10)
    head = app.recorder.max_notification_id()
    assert runner.process_page() is True
    assert runner.view.position(app.name) == head
    assert runner.process_page() is False  # nothing new: no empty transaction either

    system.commands.run(UpdateProfile(user_id=bob.id, full_name="Robert"))
    carol = system.commands.run(Register(
        email="carol@example.com", password="x" * 12, kind="company", full_name="Carol",
        country="US", business_name="Carol's Cafe", category="merchant")).value
    runner.run_until_caught_up()
    found = {row["id"]: row for row in runner.view.search(
        None, kinds=("person", "company"), limit=10)}
    assert found[bob.id]["full_name"] == "Robert"
    assert found[carol.id]["business_name"] == "Carol's Cafe"
    assert runner.view.position(app.name) == app.recorder.max_notification_id()


def test_a_full_page_of_its_topics_ends_at_its_last_event(system: System) -> None:
    """When the page is full the runner cannot know what lies beyond it: it stops at the page's
    last event and reads on from there, missing none."""
    app = system.app
    runner = directory_runner(system)
    users = [system.commands.run(Register(email=f"p{i}@example.com", password="x" * 12,
                                          kind="person", full_name=f"P{i}")).value
             for i in range(5)]
    runner.page_size = 2
    pages = 0
    while runner.process_page():
        pages += 1
    assert pages == 3  # 2 + 2 + 1 registrations
    found = {row["id"] for row in runner.view.search(None, kinds=("person",), limit=50)}
    assert found == {user.id for user in users}
    assert runner.view.position(app.name) == app.recorder.max_notification_id()
