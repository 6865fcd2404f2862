"""The projection runner: one reading of the log feeds every view, each from its own position."""

from __future__ import annotations

import time

import pytest

from gopay.aggregates.money import Money
from gopay.commands.profile import UpdateProfile
from gopay.commands.registration import Register
from gopay.commands.transfer import Transfer
from gopay.projections import runner as runner_module
from gopay.projections.read_side import ReadSide
from gopay.system import System
from tests.support import open_wallets, transfer


def test_every_view_reaches_the_head_even_when_none_of_its_events_come(system: System) -> None:
    """Transfers give the directory nothing to show, yet its position reaches the end of the
    log, so reads waiting for the read side never wait on it."""
    app, read_side = system.app, system.read_side
    alice, bob = open_wallets(system.commands, 2, 1_000)
    read_side.catch_up()
    for _ in range(3):  # nothing but wallet and payment-order events from here on
        transfer(system.commands, alice, bob, 10)
    head = app.recorder.max_notification_id()
    assert read_side.runner.process_page() is True
    assert set(read_side.runner.positions().values()) == {head}
    assert read_side.directory.position(app.name) == head
    assert read_side.runner.process_page() is False  # nothing new: no empty transaction either

    system.commands.run(UpdateProfile(user_id=bob.id, full_name="Robert"))
    carol = system.commands.run(Register(
        email="carol@example.com", password="x" * 12, kind="company", full_name="Carol",
        country="US", business_name="Carol's Cafe", category="merchant")).value
    read_side.catch_up()
    found = {row["id"]: row for row in read_side.directory.search(
        None, kinds=("person", "company"), limit=10)}
    assert found[bob.id]["full_name"] == "Robert"
    assert found[carol.id]["business_name"] == "Carol's Cafe"
    assert read_side.position() == app.recorder.max_notification_id()


def test_a_full_page_ends_at_its_last_event(system: System) -> None:
    """A page holds at most `page_size` events; the next one reads on from there, missing none."""
    app, read_side = system.app, system.read_side
    users = [system.commands.run(Register(email=f"p{i}@example.com", password="x" * 12,
                                          kind="person", full_name=f"P{i}")).value
             for i in range(5)]
    read_side.runner.page_size = 2
    pages = 0
    while read_side.runner.process_page():
        pages += 1
    events = app.recorder.max_notification_id() or 0
    assert pages == -(-events // 2)  # every event, two at a time
    found = {row["id"] for row in read_side.directory.search(None, kinds=("person",), limit=50)}
    assert found == {user.id for user in users}
    assert read_side.position() == events


def test_a_view_built_again_alone_catches_up_while_the_others_carry_on(system: System) -> None:
    """Emptied by itself (a new version of it, say), a view is rebuilt from event zero to the
    same rows; the views that were current are not written twice."""
    app, read_side = system.app, system.read_side
    alice, bob = open_wallets(system.commands, 2, 1_000)
    transfer(system.commands, alice, bob, 25)
    read_side.catch_up()
    users_before = read_side.directory.search(None, kinds=("person",), limit=50)
    history_before = read_side.wallets.transactions(bob.wallet_id, limit=50)

    read_side.directory.rebuild()
    assert read_side.directory.search(None, kinds=("person",), limit=50) == []
    assert read_side.runner.positions()["directory_projection"] == 0
    read_side.catch_up()

    assert read_side.directory.search(None, kinds=("person",), limit=50) == users_before
    assert read_side.wallets.transactions(bob.wallet_id, limit=50) == history_before
    assert set(read_side.runner.positions().values()) == {app.recorder.max_notification_id()}


def paid(system: System, sender, recipient, amount: int) -> int:  # type: ignore[no-untyped-def]
    """A transfer's log position."""
    return system.commands.run(Transfer(
        caller_id=sender.id, sender_wallet_id=sender.wallet_id, recipient=recipient.email,
        money=Money(amount, "USD"), note="", idempotency_key=None, fingerprint="f")).position


def listening(read_side: ReadSide, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while read_side._listener.position() is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class TestReadYourWritesWhereAnotherProcessLeads:
    """A process that does not run the projections hears where the leader has got, rather
    than asking the database again and again while a query waits."""

    def follower(self, system: System, database_url: str,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[ReadSide, list[int]]:
        """A second process's read side, counting the times it asks the database."""
        follower = ReadSide(system.app, database_url)
        asked: list[int] = []
        stored = follower._stored_position

        def counting() -> int:
            asked.append(1)
            return stored()

        monkeypatch.setattr(follower, "_stored_position", counting)
        return follower, asked

    def test_a_wait_ends_on_the_leader_s_announcement(
            self, system: System, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        follower, asked = self.follower(system, database_url, monkeypatch)
        try:
            system.read_side.start()  # this one leads
            alice, bob = open_wallets(system.commands, 2, 1_000)
            assert follower.wait_for(system.app.recorder.max_notification_id() or 0, timeout=10)
            assert listening(follower)
            waits_asked = 0
            for _ in range(20):
                position = paid(system, alice, bob, 1)
                before = len(asked)
                assert follower.wait_for(position, timeout=10)
                waits_asked += len(asked) - before
                assert follower.position() >= position  # as the database says
            assert waits_asked <= 2, "the waits asked the database rather than listening"
            assert follower.wallets.wallet(bob.wallet_id)["balance"] == 1_020
        finally:
            follower.stop()
            system.read_side.stop()

    def test_a_leader_that_does_not_announce_is_still_waited_for(
            self, system: System, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Code that does not announce (an older version leading during an upgrade) makes
        waits ask the database now and then: slower, never wrong."""
        follower, asked = self.follower(system, database_url, monkeypatch)
        monkeypatch.setattr(runner_module, "announce", lambda cursor, position: None)
        try:
            alice, bob = open_wallets(system.commands, 2, 1_000)
            system.read_side.catch_up()
            assert follower.wait_for(system.app.recorder.max_notification_id() or 0, timeout=10)
            assert listening(follower)
            position = paid(system, alice, bob, 5)
            assert follower.wait_for(position, timeout=0.1) is False  # not projected yet
            system.read_side.start()
            asked.clear()
            started = time.monotonic()
            assert follower.wait_for(position, timeout=10)
            assert time.monotonic() - started < 5
            assert asked, "the wait ended without hearing or asking anything"
            assert follower.wallets.wallet(bob.wallet_id)["balance"] == 1_005
        finally:
            follower.stop()
            system.read_side.stop()
