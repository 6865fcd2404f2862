"""A user changing what they own about themselves: name, phone, security preferences."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from gopay.aggregates.user import PhoneIndex, User
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.registration import claim_phone
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class UpdateProfile(Command[User]):
    """Fields left None stay as they are; a new phone is claimed and the old one released."""

    user_id: UUID
    full_name: str | None = None
    phone: str | None = None
    login_notifications: bool | None = None


@in_batch(UpdateProfile)
def update_profile(command: UpdateProfile, unit: UnitOfWork, context: Context) -> User:
    user = unit.get(command.user_id, User)
    phone = command.phone
    if phone is not None and phone != user.phone:
        unit.add(claim_phone(unit, phone, user.id))
        if user.phone:
            old = unit.find(PhoneIndex.id_for(user.phone), PhoneIndex)
            if old is not None and old.user_id == user.id:
                old.release()
    user.change_profile(
        full_name=command.full_name if command.full_name is not None else user.full_name,
        phone=phone if phone is not None else user.phone,
        login_notifications=(command.login_notifications
                             if command.login_notifications is not None
                             else user.login_notifications))
    return user
