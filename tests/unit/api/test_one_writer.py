"""Two processes' worth of `OneWriter` in one event loop: one leads, the other forwards to it,
answers cross whole, and the writer's end is the forwarder's cue to answer 503 and take over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gopay.aggregates.errors import InsufficientFunds, TooManyAttempts
from gopay.api.one_writer import ELECTION_INTERVAL, OneWriter, WriterLost
from gopay.commands import Command
from gopay.commands.bus import Outcome

DATABASE = "postgresql://gopay@127.0.0.1/one"


class Pay(Command[str]):
    """A stand-in command: picklable, says what to do."""

    def __init__(self, what: str) -> None:
        self.what = what


class Ledger:
    """What `Commands.run_async` would do, as far as the writer is concerned."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran: list[str] = []
        self.release = asyncio.Event()

    async def run(self, command: Command[Any]) -> Outcome[Any]:
        assert isinstance(command, Pay)
        self.ran.append(command.what)
        if command.what == "too much":
            raise InsufficientFunds("balance too low", available=5)
        if command.what == "throttled":
            raise TooManyAttempts("slow down", retry_after=30)
        if command.what == "slow":
            await self.release.wait()
        return Outcome(f"{command.what} by {self.name}", 7)


def test_one_leads_the_other_forwards_and_takes_over(tmp_path: Path) -> None:
    asyncio.run(_one_leads_the_other_forwards_and_takes_over(tmp_path))


async def _one_leads_the_other_forwards_and_takes_over(var: Path) -> None:
    first, second = Ledger("first"), Ledger("second")
    writer, other = OneWriter(first.run, var, DATABASE), OneWriter(second.run, var, DATABASE)
    await writer.start()
    await other.start()
    try:
        assert (writer.leading, other.leading) == (True, False)
        assert await other.run(Pay("rent")) == Outcome("rent by first", 7)
        with pytest.raises(InsufficientFunds) as refused:
            await other.run(Pay("too much"))
        assert (str(refused.value), dict(refused.value.details)) == ("balance too low",
                                                                     {"available": 5})
        with pytest.raises(TooManyAttempts) as throttled:
            await other.run(Pay("throttled"))
        assert (throttled.value.retry_after, dict(throttled.value.details)) == (30, {"retry_after": 30})
        assert (first.ran, second.ran) == (["rent", "too much", "throttled"], [])

        # The writer goes with a command sent: its outcome is unknown, so the caller hears so.
        in_flight = asyncio.create_task(other.run(Pay("slow")))
        while "slow" not in first.ran:
            await asyncio.sleep(0.01)
        await writer.stop()
        with pytest.raises(WriterLost):
            await in_flight
        # Nobody answers the socket: the survivor runs commands itself, then leads.
        assert await other.run(Pay("meanwhile")) == Outcome("meanwhile by second", 7)
        await asyncio.sleep(ELECTION_INTERVAL * 3)
        assert other.leading
    finally:
        await writer.stop()
        await other.stop()


def test_processes_of_two_databases_never_forward_to_each_other(tmp_path: Path) -> None:
    async def run() -> None:
        one, two = Ledger("one"), Ledger("two")
        first = OneWriter(one.run, tmp_path, DATABASE)
        second = OneWriter(two.run, tmp_path, DATABASE.replace("/one", "/two"))
        await first.start()
        await second.start()
        try:
            assert first.leading and second.leading
            assert await second.run(Pay("rent")) == Outcome("rent by two", 7)
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(run())
