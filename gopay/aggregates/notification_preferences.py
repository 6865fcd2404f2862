"""A user's notification preferences: which notices reach them by which channel."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.ledger import LEDGER_NAMESPACE

# Every notice GoPay sends a person, and the channels it may go by.
NOTIFICATION_TYPES = (
    "transfer.received", "topup.succeeded", "topup.failed", "payout.paid", "payout.failed",
    "payment_request.received", "login.new_device", "kyc.decided", "review.decided",
    "security.password_changed", "security.two_factor_changed", "support.reply")
CHANNELS = ("email", "in_app")
# Told by every channel whatever the user prefers: a thief must not be able to silence them.
SECURITY_TYPES = frozenset({"login.new_device", "security.password_changed",
                            "security.two_factor_changed"})

Choice = Mapping[str, bool]  # channel -> on


def checked(preferences: Mapping[str, Mapping[str, bool]]) -> dict[str, dict[str, bool]]:
    """The preferences asked for, refused when a type or channel is unknown, or when they
    would turn a security notice off."""
    for kind, channels in preferences.items():
        if kind not in NOTIFICATION_TYPES:
            raise ValidationFailed(f"unknown notification type {kind!r}; "
                                   f"types are {', '.join(NOTIFICATION_TYPES)}")
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValidationFailed(f"unknown channel {unknown[0]!r}; channels are email, in_app")
        if kind in SECURITY_TYPES and not all(channels.values()):
            raise ValidationFailed(f"{kind} is a security notice and cannot be turned off")
    return {kind: dict(channels) for kind, channels in preferences.items()}


class NotificationPreferences(Aggregate):
    """What one user turned on or off; a type or channel never mentioned is on."""

    @staticmethod
    def id_for(user_id: UUID) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"notification-preferences/{user_id}")

    class Created(Aggregate.Created):
        user_id: UUID

    @event(Created)
    def __init__(self, id: UUID, user_id: UUID) -> None:
        self.user_id = user_id
        self.choices: Mapping[str, Choice] = MappingProxyType({})

    def change(self, preferences: Mapping[str, Mapping[str, bool]]) -> None:
        """Merge the new choices over the old ones; an unchanged document records nothing."""
        wanted = checked(preferences)
        merged = {kind: {**self.choices.get(kind, {}), **channels} for kind, channels in wanted.items()}
        if any(dict(self.choices.get(kind, {})) != channels for kind, channels in merged.items()):
            self._changed(user_id=self.user_id, preferences=merged)

    class Changed(Aggregate.Event):
        user_id: UUID
        preferences: dict[str, dict[str, bool]]  # only the types that changed, every channel set so far

    @event(Changed)
    def _changed(self, user_id: UUID, preferences: Mapping[str, Mapping[str, bool]]) -> None:
        self.choices = MappingProxyType({
            **self.choices,
            **{kind: MappingProxyType(dict(channels)) for kind, channels in preferences.items()}})

    def wants(self, kind: str, channel: str) -> bool:
        return kind in SECURITY_TYPES or self.choices.get(kind, {}).get(channel, True)
