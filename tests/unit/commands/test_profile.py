"""A user changing their own profile: a new phone is claimed and the old one given up."""

from __future__ import annotations

import pytest

from gopay.aggregates.errors import PhoneTaken
from gopay.aggregates.user import PhoneIndex
from gopay.commands.profile import UpdateProfile
from tests.unit.commands.in_memory import InMemoryGoPay

ADA_PHONE, NEW_PHONE = "+442071234567", "+442079460001"


def phone_holder(gopay: InMemoryGoPay, phone: str) -> object:
    index = gopay.app.find(PhoneIndex.id_for(phone), PhoneIndex)
    return None if index is None else index.user_id


class TestChangingTheProfile:
    def test_fields_left_out_stay_as_they_are(self, gopay: InMemoryGoPay) -> None:
        """Changing the name keeps the phone and the notification preference."""
        ada = gopay.register("ada@example.com", phone=ADA_PHONE)
        user = gopay.run(UpdateProfile(user_id=ada.id, full_name="Augusta Ada King"))
        assert (user.full_name, user.phone, user.login_notifications) == (
            "Augusta Ada King", ADA_PHONE, True)
        assert gopay.event_types(ada.id)[-1] == "ProfileChanged"

    def test_login_notifications_can_be_turned_off(self, gopay: InMemoryGoPay) -> None:
        ada = gopay.register("ada@example.com")
        assert not gopay.run(UpdateProfile(user_id=ada.id, login_notifications=False)
                             ).login_notifications
        assert not gopay.user(ada.id).login_notifications


class TestChangingThePhone:
    def test_the_new_number_is_claimed_and_the_old_one_released(self, gopay: InMemoryGoPay) -> None:
        """After the change the new number points at the user and the old at nobody."""
        ada = gopay.register("ada@example.com", phone=ADA_PHONE)
        gopay.run(UpdateProfile(user_id=ada.id, phone=NEW_PHONE))
        assert gopay.user(ada.id).phone == NEW_PHONE
        assert phone_holder(gopay, NEW_PHONE) == ada.id
        assert phone_holder(gopay, ADA_PHONE) is None

    def test_a_released_number_can_be_claimed_by_someone_else(self, gopay: InMemoryGoPay) -> None:
        """A number given up is free: a new customer may register with it."""
        ada = gopay.register("ada@example.com", phone=ADA_PHONE)
        gopay.run(UpdateProfile(user_id=ada.id, phone=NEW_PHONE))
        grace = gopay.register("grace@example.com", phone=ADA_PHONE)
        assert phone_holder(gopay, ADA_PHONE) == grace.id
        assert gopay.event_types(PhoneIndex.id_for(ADA_PHONE)) == ["Claimed", "Released",
                                                                   "Reclaimed"]

    def test_a_number_someone_holds_is_refused_and_nothing_changes(self, gopay: InMemoryGoPay) -> None:
        """Taking another user's number fails, and the user keeps their own number."""
        ada = gopay.register("ada@example.com", phone=ADA_PHONE)
        gopay.register("grace@example.com", phone=NEW_PHONE)
        head = gopay.head()
        with pytest.raises(PhoneTaken):
            gopay.run(UpdateProfile(user_id=ada.id, full_name="Ada K", phone=NEW_PHONE))
        assert gopay.head() == head
        assert (gopay.user(ada.id).phone, gopay.user(ada.id).full_name) == (ADA_PHONE, "Ada")
        assert phone_holder(gopay, ADA_PHONE) == ada.id

    def test_a_first_phone_claims_without_releasing_anything(self, gopay: InMemoryGoPay) -> None:
        """A user who had no phone just claims one."""
        ada = gopay.register("ada@example.com")
        gopay.run(UpdateProfile(user_id=ada.id, phone=NEW_PHONE))
        assert phone_holder(gopay, NEW_PHONE) == ada.id

    def test_giving_the_same_number_changes_no_claim(self, gopay: InMemoryGoPay) -> None:
        """Saving the profile with its own number neither releases nor re-claims it."""
        ada = gopay.register("ada@example.com", phone=ADA_PHONE)
        gopay.run(UpdateProfile(user_id=ada.id, phone=ADA_PHONE))
        assert gopay.event_types(PhoneIndex.id_for(ADA_PHONE)) == ["Claimed"]
