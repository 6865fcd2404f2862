"""Lost phones: locking a device ends its sessions; only password and second factor let it back."""

from __future__ import annotations

from uuid import UUID

import pytest

from gopay.aggregates.errors import InvalidState, NotFound, Unauthenticated
from gopay.aggregates.session import Session
from gopay.aggregates.user import OtpRejected, User
from gopay.commands.devices import LockDevice, ReenrollDevice
from tests.unit.commands.in_memory import PASSWORD, InMemoryGoPay


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def revoked(gopay: InMemoryGoPay, session_id: UUID) -> bool:
    return gopay.app.get(session_id, Session).revoked


class TestLocking:
    def test_locking_revokes_every_session_of_that_device_only(self, gopay: InMemoryGoPay,
                                                              ada: User) -> None:
        """Both sessions of the lost phone end; the laptop's goes on."""
        lost = [gopay.sign_in("ada@example.com", device_id="lost-phone").session.id
                for _ in range(2)]
        laptop = gopay.sign_in("ada@example.com", device_id="laptop").session.id
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone"))
        assert [revoked(gopay, session_id) for session_id in lost] == [True, True]
        assert not revoked(gopay, laptop)
        reason = gopay.events(lost[0])[-1]
        assert isinstance(reason, Session.Revoked) and reason.reason == "device_locked"

    def test_a_wipe_is_remembered_for_the_device(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Asking for a wipe marks the device, so it can be told to erase itself."""
        gopay.sign_in("ada@example.com", device_id="lost-phone")
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone", wipe=True))
        device = gopay.user(ada.id).devices["lost-phone"]
        assert (device.locked, device.wipe) == (True, True)

    def test_locking_again_records_nothing_new(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.sign_in("ada@example.com", device_id="lost-phone")
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone"))
        head = gopay.head()
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone"))
        assert gopay.head() == head

    def test_an_unknown_device_is_not_found(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(NotFound):
            gopay.run(LockDevice(user_id=ada.id, device_id="never-seen"))


class TestReenrolling:
    def test_the_password_lets_a_locked_device_back(self, gopay: InMemoryGoPay, ada: User) -> None:
        """After re-enrolment the device signs in again; its old sessions stay ended."""
        old = gopay.sign_in("ada@example.com", device_id="found-phone").session.id
        gopay.run(LockDevice(user_id=ada.id, device_id="found-phone", wipe=True))
        user = gopay.run(ReenrollDevice(user_id=ada.id, device_id="found-phone", password=PASSWORD))
        assert (user.devices["found-phone"].locked, user.devices["found-phone"].wipe) == (False, False)
        gopay.sign_in("ada@example.com", device_id="found-phone")
        assert revoked(gopay, old)

    def test_a_wrong_password_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.sign_in("ada@example.com", device_id="found-phone")
        gopay.run(LockDevice(user_id=ada.id, device_id="found-phone"))
        with pytest.raises(Unauthenticated):
            gopay.run(ReenrollDevice(user_id=ada.id, device_id="found-phone",
                                     password="a guess at it"))
        assert gopay.user(ada.id).devices["found-phone"].locked

    def test_with_two_factor_a_code_is_needed_too(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The password alone is not enough when the user has a second factor."""
        secret, _ = gopay.turn_on_two_factor(ada)
        gopay.sign_in("ada@example.com", device_id="found-phone", otp=gopay.totp_code(secret))
        gopay.run(LockDevice(user_id=ada.id, device_id="found-phone"))
        gopay.clock.advance(seconds=30)
        for code in (None, "000000"):
            with pytest.raises(OtpRejected):
                gopay.run(ReenrollDevice(user_id=ada.id, device_id="found-phone",
                                         password=PASSWORD, code=code))
        assert gopay.user(ada.id).devices["found-phone"].locked
        gopay.run(ReenrollDevice(user_id=ada.id, device_id="found-phone", password=PASSWORD,
                                 code=gopay.totp_code(secret)))
        assert not gopay.user(ada.id).devices["found-phone"].locked

    def test_a_device_that_is_not_locked_cannot_be_reenrolled(self, gopay: InMemoryGoPay,
                                                              ada: User) -> None:
        gopay.sign_in("ada@example.com", device_id="phone")
        with pytest.raises(InvalidState):
            gopay.run(ReenrollDevice(user_id=ada.id, device_id="phone", password=PASSWORD))
