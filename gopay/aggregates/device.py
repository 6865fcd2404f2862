"""What a lost phone could learn about itself: kept so that the events it recorded still load.

Device locks are the user's events now (`User.DeviceLocked`), and the security view answers
what a device's status is; no command writes this aggregate any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.ledger import LEDGER_NAMESPACE


class DeviceStatus(Aggregate):
    """The locks users put on one device id (two accounts may share a phone)."""

    @staticmethod
    def id_for(device_id: str) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"device/{device_id}")

    @event("Created")
    def __init__(self, id: UUID) -> None:
        self.locks: Mapping[str, bool] = MappingProxyType({})  # user id → wipe

    @property
    def locked(self) -> bool:
        return bool(self.locks)

    @property
    def wipe(self) -> bool:
        return any(self.locks.values())

    @event("Locked")
    def lock(self, user_id: UUID, wipe: bool) -> None:
        self.locks = MappingProxyType(
            {**self.locks, str(user_id): wipe or self.locks.get(str(user_id), False)})

    @event("Unlocked")
    def unlock(self, user_id: UUID) -> None:
        self.locks = MappingProxyType({u: w for u, w in self.locks.items() if u != str(user_id)})
