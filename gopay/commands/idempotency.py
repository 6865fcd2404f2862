"""Idempotency by identity, for every command that creates something.

A keyed request creates its aggregate under an id derived from (caller, operation, key), so
a repeat finds what the first one created instead of creating a second; concurrent
duplicates collide on that id in the event store and exactly one wins. The same key with a
different request is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from gopay.aggregates.errors import IdempotencyConflict
from gopay.group_commit import UnitOfWork

A = TypeVar("A", bound=Aggregate)


def repeat_of(unit: UnitOfWork, target_id: UUID, kind: type[A], key: str | None,
              same_request: Callable[[A], bool]) -> A | None:
    """What an earlier request with this key created, or None when this one is the first."""
    if key is None:
        return None
    existing = unit.find(target_id, kind)
    if existing is not None and not same_request(existing):
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request")
    return existing
