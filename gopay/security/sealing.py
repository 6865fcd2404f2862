"""Seals personal fields of domain events before they are stored, and opens them on the way back.

The aggregates work with plain values; only the stored copy of an event holds ciphertext,
under the data key of the aggregate the event belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder

from gopay.security.data_keys import DataKeys

SealedFields = Mapping[type, tuple[str, ...]]


class SealingMapper(Mapper[UUID]):
    """The library's mapper, sealing the listed fields of the listed event classes."""

    def __init__(self, transcoder: Transcoder, data_keys: DataKeys, sealed: SealedFields) -> None:
        super().__init__(transcoder)
        self.data_keys = data_keys
        self.sealed = sealed

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        fields = self.sealed.get(type(domain_event))
        if fields:
            state = dict(vars(domain_event))
            subject = state["originator_id"]
            for name in fields:
                if state[name] is not None:
                    state[name] = self.data_keys.seal(subject, name, _text(state[name]))
            domain_event = _with_state(domain_event, state)
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        domain_event = super().to_domain_event(stored_event)
        fields = self.sealed.get(type(domain_event))
        if fields:
            state = vars(domain_event)  # a fresh object: nothing else holds it yet
            subject = state["originator_id"]
            for name in fields:
                if state[name] is not None:
                    state[name] = self.data_keys.unseal(subject, name, state[name])
        return domain_event


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"only text can be sealed, not {type(value).__name__}")
    return value


def _with_state(event: Any, state: dict[str, Any]) -> Any:
    copy = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", state)
    return copy
