"""What a lost phone may learn about itself without signing in: is it locked, should it wipe."""

from __future__ import annotations

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
        self.locks: dict[str, bool] = {}  # user id → wipe; replaced, never changed in place

    @property
    def locked(self) -> bool:
        return bool(self.locks)

    @property
    def wipe(self) -> bool:
        return any(self.locks.values())

    @event("Locked")
    def lock(self, user_id: UUID, wipe: bool) -> None:
        self.locks = {**self.locks, str(user_id): wipe or self.locks.get(str(user_id), False)}

    @event("Unlocked")
    def unlock(self, user_id: UUID) -> None:
        self.locks = {u: w for u, w in self.locks.items() if u != str(user_id)}
