"""How a command runs: found by its type, carried out in a group commit, answered with an outcome.

A command is a frozen dataclass of typed values. Its handler is registered in one of two ways:

- `in_batch`: the whole command runs inside a group commit, as a function of the unit of work.
  It may be run blocking (`Commands.run`) or awaited without holding a thread
  (`Commands.run_async`): the money flows are of this kind.
- `procedure`: the command first does slow work of its own (hashing a password, vaulting a
  number) outside any batch, then commits through `Context.commit`, and may follow up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from gopay.aggregates.fees import FeeSchedule
from gopay.aggregates.limits import TierLimits
from gopay.clock import Clock

if TYPE_CHECKING:
    from gopay.application import GoPay
    from gopay.group_commit import UnitOfWork
    from gopay.notifications.outbox import Outbox
    from gopay.security.login_throttle import LoginThrottle
    from gopay.security.vault import Vault

R = TypeVar("R")
T = TypeVar("T")


class Command(Generic[R]):
    """A request to change GoPay, as frozen typed values; its handler answers with an R."""


C = TypeVar("C", bound=Command[Any])


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What a command produced, and the log position the read side must reach to show it."""

    value: R
    position: int


@dataclass(frozen=True)
class Context:
    """What handlers may use besides the aggregates: the application, the clock and the rules."""

    app: GoPay
    clock: Clock
    limits: Mapping[str, TierLimits]
    fees: FeeSchedule
    vault: Vault
    outbox: Outbox
    login_throttle: LoginThrottle
    recovery_ttl: timedelta
    # How long a PSP call waits for the request that made it before a background attempt.
    psp_call_grace: timedelta = timedelta(seconds=15)
    fraud_screening: str = "on"  # on | monitor | off (see Settings.fraud_screening)
    # How long after a payment its payer may dispute it.
    dispute_window: timedelta = timedelta(days=60)

    def today(self) -> date:
        return self.clock().date()

    def commit(self, run: Callable[[UnitOfWork], T], probes: tuple[UUID, ...] = ()) -> Outcome[T]:
        """Run `run` in the next group commit; its result once its events are durable."""
        value, position = self.app.committer.execute(run, probes)
        return Outcome(value, position)


InBatch = Callable[[C, "UnitOfWork", Context], R]


@dataclass(frozen=True)
class _Batched:
    run: Callable[[Any, UnitOfWork, Context], Any]
    probes: Callable[[Any], tuple[UUID, ...]]
    answer: Callable[[Any], Any]


_BATCHED: dict[type[Any], _Batched] = {}
_PROCEDURES: dict[type[Any], Callable[[Any, Context], Outcome[Any]]] = {}


def _nothing_to_probe(command: Any) -> tuple[UUID, ...]:
    return ()


def _as_it_is(value: Any) -> Any:
    return value


def in_batch(command_type: type[C], *,
             probes: Callable[[C], tuple[UUID, ...]] = _nothing_to_probe,
             answer: Callable[[R], R] = _as_it_is,
             ) -> Callable[[InBatch[C, R]], InBatch[C, R]]:
    """Register a handler that runs inside a group commit.

    `probes` names ids the command looks up that usually do not exist yet (its own new
    order): the batch asks about all of them at once. `answer` may turn the result into
    the caller's answer (raising the refusal a repeated request recorded, say).
    """
    def register(handler: InBatch[C, R]) -> InBatch[C, R]:
        _register(command_type, _BATCHED, _Batched(handler, probes, answer))
        return handler
    return register


def procedure(command_type: type[C]) -> Callable[[Callable[[C, Context], Outcome[R]]],
                                                 Callable[[C, Context], Outcome[R]]]:
    """Register a handler that works outside the batch and commits through `Context.commit`."""
    def register(handler: Callable[[C, Context], Outcome[R]]) -> Callable[[C, Context], Outcome[R]]:
        _register(command_type, _PROCEDURES, handler)
        return handler
    return register


def _register(command_type: type[Any], registry: dict[type[Any], Any], handler: Any) -> None:
    if command_type in _BATCHED or command_type in _PROCEDURES:
        raise TypeError(f"{command_type.__name__} already has a handler")
    registry[command_type] = handler


class Commands:
    """Runs any command with its registered handler."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def run(self, command: Command[R]) -> Outcome[R]:
        procedure_handler = _PROCEDURES.get(type(command))
        if procedure_handler is not None:
            outcome: Outcome[R] = procedure_handler(command, self.context)
            return outcome
        batched = self._batched(command)
        value, position = self.context.app.committer.execute(
            lambda unit: batched.run(command, unit, self.context), batched.probes(command))
        return Outcome(batched.answer(value), position)

    async def run_async(self, command: Command[R]) -> Outcome[R]:
        """`run` for a command that runs wholly in a batch, awaited without holding a thread."""
        batched = self._batched(command)
        value, position = await self.context.app.committer.execute_async(
            lambda unit: batched.run(command, unit, self.context), batched.probes(command))
        return Outcome(batched.answer(value), position)

    @staticmethod
    def _batched(command: Command[Any]) -> _Batched:
        try:
            return _BATCHED[type(command)]
        except KeyError:
            raise TypeError(f"no in-batch handler for {type(command).__name__}") from None
