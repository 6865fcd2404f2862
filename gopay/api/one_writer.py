"""One writer per machine: the API processes of one machine hand their payments to one of them.

Every process that writes takes the writers' turn in the database for each group commit
(`gopay.group_commit`). Two API processes taking turns run half-sized batches, each first
replaying the other's events, and the turn, held through each batch's fsync, is the whole
store's bottleneck: measured, two processes made 78 % of one. So the processes of one
machine elect one of them, by a lock on a file in the var dir that the kernel releases when
its holder dies, and the winner serves a Unix socket beside it. The others parse, check and
authenticate their requests as before, then send the command over that socket and await
its answer: all payments go through one group committer, in batches as large as one
process's, with nobody else's events to replay.

Nothing about correctness moves: the writer still takes the writers' turn for every batch
(the worker, and processes of other machines, still write too), and a command run twice
is answered once by its idempotency key. What forwarding can lose is an answer: if the link
breaks with a command sent, it may or may not have been saved, and the client is told
503 to retry with the same Idempotency-Key. When no writer answers the socket, a process
runs the command itself, taking turns as before, and within a second one of the survivors
holds the lock and serves the socket.

Commands and answers cross as pickles, on a socket only this user can open (the var dir
also holds the store's keys, so whoever can write to it could do worse).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import pickle
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from prometheus_client import Counter
from psycopg import OperationalError

from gopay.aggregates.errors import DomainError
from gopay.api.problems import STORE_UNAVAILABLE
from gopay.commands import Command
from gopay.commands.bus import Outcome

log = logging.getLogger(__name__)

FORWARDED = Counter("gopay_one_writer_commands_total",
                    "Payment commands by where they ran: here as the writer, forwarded to the "
                    "writer, or here taking turns because no writer answered", ["ran"])

# How often a process that is not the writer tries to become it.
ELECTION_INTERVAL = 0.5
# After the writer's socket refused a connection, run locally this long before trying again.
RECONNECT_PAUSE = 0.2
_FRAME = struct.Struct("!I")

Run = Callable[[Command[Any]], Awaitable[Outcome[Any]]]


class WriterLost(ConnectionError):
    """The writer went away with this command sent: it may or may not have been saved."""


class OneWriter:
    """Runs payment commands in this machine's writer process; see the module docstring."""

    def __init__(self, run: Run, var_dir: Path, database_url: str, *,
                 enabled: bool = True) -> None:
        self._run = run
        # Named after the database: processes of one var dir over two databases (two
        # environments run from one directory) must never hand each other their payments.
        store = hashlib.sha256(database_url.encode()).hexdigest()[:16]
        self._lock_path = var_dir / f"writer-{store}.lock"
        self._socket_path = var_dir / f"writer-{store}.sock"
        # A Unix socket's path has a length limit; past it, these processes take turns.
        self._enabled = enabled and len(os.fsencode(self._socket_path.absolute())) < 100
        self._lock_fd: int | None = None
        self._server: asyncio.Server | None = None
        self._elector: asyncio.Task[None] | None = None
        self._link: _Link | None = None
        self._linking: asyncio.Lock | None = None
        self._link_refused_until = 0.0
        self._links_served: set[asyncio.StreamWriter] = set()

    @property
    def leading(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._linking = asyncio.Lock()
        if not self._enabled:
            return
        self._socket_path.parent.mkdir(parents=True, exist_ok=True)
        await self._try_to_lead()
        self._elector = asyncio.create_task(self._elect())

    async def stop(self) -> None:
        if self._elector is not None:
            self._elector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._elector
        if self._link is not None:
            self._link.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self._socket_path.unlink()
            self._server = None
            # The forwarding processes hear of it at once (their commands in flight are
            # answered 503), and run their next ones themselves until one of them leads.
            for link in self._links_served:
                link.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    async def run(self, command: Command[Any]) -> Outcome[Any]:
        """The command's outcome, from the writer; raises what running it here would raise,
        or `WriterLost` if the writer died with the command sent."""
        if not self._enabled:
            return await self._run(command)
        if not self.leading:
            link = await self._linked()
            if link is not None:
                FORWARDED.labels("forwarded").inc()
                return await link.run(command)
            FORWARDED.labels("taking_turns").inc()
        else:
            FORWARDED.labels("writer").inc()
        return await self._run(command)

    # Becoming the writer

    async def _elect(self) -> None:
        while self._server is None:
            await asyncio.sleep(ELECTION_INTERVAL)
            await self._try_to_lead()

    async def _try_to_lead(self) -> None:
        try:
            await self._lead()
        except OSError as error:  # meanwhile this process runs its own, taking turns
            log.warning("could not become the writer of %s: %s", self._socket_path, error)

    async def _lead(self) -> None:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            with contextlib.suppress(FileNotFoundError):  # the socket of a writer that died
                self._socket_path.unlink()
            self._server = await asyncio.start_unix_server(self._serve, path=self._socket_path)
            os.chmod(self._socket_path, 0o600)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())  # who the writer is, for people and tests
        except OSError:
            os.close(fd)
            self._server = None
            raise
        self._lock_fd = fd
        if self._link is not None:
            self._link.close()
            self._link = None
        log.info("this process is the writer of %s", self._socket_path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One forwarding process's link: each command runs as it arrives, answers go back
        as they are ready, in any order."""
        tasks: set[asyncio.Task[None]] = set()
        sending = asyncio.Lock()
        self._links_served.add(writer)

        async def answer(number: int, command: Command[Any]) -> None:
            reply = await _outcome_of(self._run, command)
            async with sending:
                _send(writer, (number, reply))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        try:
            while True:
                number, command = await _receive(reader)
                task = asyncio.create_task(answer(number, command))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the forwarding process went away; its commands still finish here
        finally:
            self._links_served.discard(writer)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()

    # Forwarding

    async def _linked(self) -> _Link | None:
        if self._link is not None and not self._link.broken:
            return self._link
        if time.monotonic() < self._link_refused_until:
            return None
        assert self._linking is not None
        async with self._linking:
            if self._link is None or self._link.broken:
                try:
                    reader, writer = await asyncio.open_unix_connection(self._socket_path)
                except OSError:  # no writer: take turns until one of us becomes it
                    self._link_refused_until = time.monotonic() + RECONNECT_PAUSE
                    self._link = None
                    return None
                self._link = _Link(reader, writer)
        return self._link


class _Link:
    """A forwarding process's connection to the writer: many commands in flight at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._numbers = itertools.count()
        self._waiting: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self.broken = False
        self._reading = asyncio.create_task(self._read(reader))

    async def run(self, command: Command[Any]) -> Outcome[Any]:
        if self.broken:
            raise WriterLost("the writer went away")
        number = next(self._numbers)
        answer: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        _send(self._writer, (number, command))
        # A cancelled caller (the client went away) does not cancel the command itself.
        return _as_outcome(await asyncio.shield(answer))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                number, reply = await _receive(reader)
                answer = self._waiting.pop(number, None)
                if answer is not None and not answer.done():
                    answer.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.broken = True
        self._writer.close()
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(WriterLost("the writer went away with this command sent"))


async def _outcome_of(run: Run, command: Command[Any]) -> tuple[Any, ...]:
    """What the forwarding process needs to answer as if it had run the command itself."""
    try:
        outcome = await run(command)
    except DomainError as error:  # rebuilt over there as it is: its class, words and facts
        facts = {name: value for name, value in vars(error).items() if name != "details"}
        return ("refused", type(error), error.args, facts, dict(error.details))
    except STORE_UNAVAILABLE as error:
        return ("unavailable", str(error))
    except Exception as error:  # a bug: the forwarding process answers 500, as it would
        log.exception("a forwarded command failed")
        return ("failed", repr(error))
    return ("done", outcome.value, outcome.position)


def _as_outcome(reply: tuple[Any, ...]) -> Outcome[Any]:
    kind = reply[0]
    if kind == "done":
        return Outcome(reply[1], reply[2])
    if kind == "refused":
        error_type, args, facts, details = reply[1:]
        error = error_type.__new__(error_type)  # subclasses' own __init__ take other arguments
        error.args = args
        vars(error).update(facts)
        error.details = MappingProxyType(details)
        raise error
    if kind == "unavailable":
        raise OperationalError(reply[1])
    raise RuntimeError(f"the writer failed to run the command: {reply[1]}")


def _send(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_FRAME.pack(len(data)) + data)


async def _receive(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    (size,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own socket
    return message
