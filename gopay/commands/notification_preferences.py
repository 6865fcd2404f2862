"""A user choosing which notices reach them by e-mail and in the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.notification_preferences import NotificationPreferences
from gopay.commands.bus import Command, Context, in_batch
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class ChangeNotificationPreferences(Command[NotificationPreferences]):
    """`{TYPE: {email: bool, in_app: bool}}`, merged over what the user chose before."""

    user_id: UUID
    preferences: Mapping[str, Mapping[str, bool]]


@in_batch(ChangeNotificationPreferences)
def change_notification_preferences(command: ChangeNotificationPreferences, unit: UnitOfWork,
                                    context: Context) -> NotificationPreferences:
    preferences_id = NotificationPreferences.id_for(command.user_id)
    preferences = unit.find(preferences_id, NotificationPreferences)
    if preferences is None:
        preferences = NotificationPreferences(id=preferences_id, user_id=command.user_id)
        unit.add(preferences)
    preferences.change(command.preferences)
    return preferences
