"""Signing in and out: sessions for the right credentials, throttled failures, rotated refresh tokens."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from gopay.aggregates.errors import TooManyAttempts, Unauthenticated
from gopay.aggregates.session import Session, SessionRevoked
from gopay.aggregates.user import OtpRejected, User
from gopay.commands.devices import LockDevice
from gopay.commands.sign_in import EndSession, RefreshSession, SignIn
from gopay.security import passwords
from tests.unit.commands.in_memory import PASSWORD, InMemoryGoPay, settings

WRONG = "not the password at all"


def failures(gopay: InMemoryGoPay, user: User) -> list[str]:
    """Why each failed sign-in of the user's security history failed."""
    return [event.reason for event in gopay.events(user.id) if isinstance(event, User.LoginFailed)]


@pytest.fixture
def strict() -> InMemoryGoPay:
    """Three failures per account, five per client address, in windows of 15 minutes."""
    return InMemoryGoPay(settings(login_failures_per_account=3, login_failures_per_address=5,
                                  login_window_seconds=900))


class TestStartingASession:
    def test_the_right_password_starts_a_session(self, gopay: InMemoryGoPay) -> None:
        """A session for the user on that device, recorded as a sign-in at the story's time."""
        ada = gopay.register("ada@example.com")
        signed_in = gopay.sign_in("ADA@example.com", device_id="ada-phone", address="203.0.113.7")
        session = gopay.app.get(signed_in.session.id, Session)
        assert (session.user_id, session.device_id, session.revoked) == (ada.id, "ada-phone", False)
        logged_in = gopay.events(ada.id)[-1]
        assert isinstance(logged_in, User.LoggedIn)
        assert (logged_in.session_id, logged_in.address, logged_in.at) == (
            session.id, "203.0.113.7", gopay.clock().isoformat())

    def test_the_first_sign_in_on_a_device_enrolls_it(self, gopay: InMemoryGoPay) -> None:
        """A device remembers every session it started."""
        ada = gopay.register("ada@example.com")
        first = gopay.sign_in("ada@example.com", device_id="ada-phone").session.id
        gopay.clock.advance(hours=1)
        second = gopay.sign_in("ada@example.com", device_id="ada-phone").session.id
        device = gopay.user(ada.id).devices["ada-phone"]
        assert device.sessions == (first, second)
        assert device.last_login_at > device.enrolled_at

    def test_a_wrong_password_is_refused_and_recorded(self, gopay: InMemoryGoPay) -> None:
        """The failure is saved in the user's security history; no session starts."""
        ada = gopay.register("ada@example.com")
        with pytest.raises(Unauthenticated):
            gopay.sign_in("ada@example.com", WRONG, device_id="ada-phone")
        assert failures(gopay, ada) == ["password"]
        assert gopay.user(ada.id).sessions == []

    def test_an_unknown_email_gets_the_same_answer_and_records_nothing(self,
                                                                       gopay: InMemoryGoPay) -> None:
        """Nobody learns from the answer whether an account exists."""
        gopay.register("ada@example.com")
        head = gopay.head()
        with pytest.raises(Unauthenticated, match="the e-mail or the password is wrong"):
            gopay.sign_in("nobody@example.com")
        with pytest.raises(Unauthenticated, match="the e-mail or the password is wrong"):
            gopay.sign_in("ada@example.com", WRONG)
        assert gopay.head() == head + 1  # Ada's failure, nothing for nobody

    def test_a_hash_on_old_parameters_is_renewed(self, gopay: InMemoryGoPay,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """Signing in with the right password re-hashes it on the current Argon2 parameters."""
        current = passwords._hasher
        monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=16,
                                                                 parallelism=1))
        ada = gopay.register("ada@example.com")
        monkeypatch.setattr(passwords, "_hasher", current)
        gopay.sign_in("ada@example.com")
        rehashed = gopay.user(ada.id).password_hash
        assert "PasswordRehashed" in gopay.event_types(ada.id)
        assert passwords.verify_password(rehashed, PASSWORD)
        assert not passwords.needs_rehash(rehashed)


class TestThrottling:
    def test_failures_close_the_door_even_to_the_right_password(self, strict: InMemoryGoPay) -> None:
        """After the allowed failures, sign-ins are refused with how long to wait."""
        strict.register("ada@example.com")
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                strict.sign_in("ada@example.com", WRONG)
        strict.clock.advance(seconds=100)
        with pytest.raises(TooManyAttempts) as refused:
            strict.sign_in("ada@example.com")
        assert refused.value.retry_after == 800
        assert refused.value.details["retry_after"] == 800

    def test_the_door_opens_again_when_the_window_ends(self, strict: InMemoryGoPay) -> None:
        """Once the window has passed, the right password works again."""
        ada = strict.register("ada@example.com")
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                strict.sign_in("ada@example.com", WRONG)
        strict.clock.advance(seconds=901)
        assert strict.sign_in("ada@example.com").user.id == ada.id

    def test_a_throttled_attempt_records_nothing(self, strict: InMemoryGoPay) -> None:
        """Refused at the door: no password is checked, no failure recorded."""
        ada = strict.register("ada@example.com")
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                strict.sign_in("ada@example.com", WRONG)
        with pytest.raises(TooManyAttempts):
            strict.sign_in("ada@example.com", WRONG)
        assert failures(strict, ada) == ["password"] * 3

    def test_a_success_clears_the_account_s_count(self, strict: InMemoryGoPay) -> None:
        """Failures before a successful sign-in no longer count against the account."""
        strict.register("ada@example.com")
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                strict.sign_in("ada@example.com", WRONG)
        strict.sign_in("ada@example.com")
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                strict.sign_in("ada@example.com", WRONG)
        strict.sign_in("ada@example.com")

    def test_unknown_emails_are_throttled_like_known_ones(self, strict: InMemoryGoPay) -> None:
        """Guessing at an address that has no account is throttled all the same."""
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                strict.sign_in("nobody@example.com")
        with pytest.raises(TooManyAttempts):
            strict.sign_in("nobody@example.com")

    def test_one_address_trying_many_accounts_is_stopped(self, strict: InMemoryGoPay) -> None:
        """Failures from one client address add up across accounts; other addresses go on."""
        for name in ("ada", "grace", "alan"):
            strict.register(f"{name}@example.com")
        for name in ("ada", "ada", "grace", "grace", "grace"):
            with pytest.raises(Unauthenticated):
                strict.sign_in(f"{name}@example.com", WRONG, address="198.51.100.9")
        with pytest.raises(TooManyAttempts):
            strict.sign_in("alan@example.com", address="198.51.100.9")
        strict.sign_in("alan@example.com", address="203.0.113.7")


class TestSecondFactor:
    def test_a_user_with_two_factor_must_give_a_code(self, gopay: InMemoryGoPay) -> None:
        """Without a code the answer asks for one; asking is not a failure."""
        ada = gopay.register("ada@example.com")
        gopay.turn_on_two_factor(ada)
        with pytest.raises(OtpRejected, match="enter the code"):
            gopay.sign_in("ada@example.com")
        assert failures(gopay, ada) == []

    def test_a_wrong_code_is_a_recorded_failure(self, gopay: InMemoryGoPay) -> None:
        ada = gopay.register("ada@example.com")
        gopay.turn_on_two_factor(ada)
        with pytest.raises(OtpRejected):
            gopay.sign_in("ada@example.com", otp="000000")
        assert failures(gopay, ada) == ["otp"]

    def test_the_current_code_signs_in_once(self, gopay: InMemoryGoPay) -> None:
        """A code opens one session; the same code again is refused."""
        ada = gopay.register("ada@example.com")
        secret, _ = gopay.turn_on_two_factor(ada)
        code = gopay.totp_code(secret)
        assert gopay.sign_in("ada@example.com", otp=code).user.id == ada.id
        with pytest.raises(OtpRejected, match="already used"):
            gopay.sign_in("ada@example.com", otp=code)

    def test_a_wrong_password_fails_before_the_code_is_looked_at(self, gopay: InMemoryGoPay) -> None:
        """A right code with a wrong password is a password failure, and the code stays unspent."""
        ada = gopay.register("ada@example.com")
        secret, _ = gopay.turn_on_two_factor(ada)
        code = gopay.totp_code(secret)
        with pytest.raises(Unauthenticated):
            gopay.sign_in("ada@example.com", WRONG, otp=code)
        assert failures(gopay, ada) == ["password"]
        gopay.sign_in("ada@example.com", otp=code)


class TestLockedDevices:
    def test_a_locked_device_cannot_sign_in(self, gopay: InMemoryGoPay) -> None:
        """Even the right password is refused on a locked device, and the attempt recorded."""
        ada = gopay.register("ada@example.com")
        gopay.sign_in("ada@example.com", device_id="lost-phone")
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone"))
        with pytest.raises(Unauthenticated, match="locked"):
            gopay.sign_in("ada@example.com", device_id="lost-phone")
        assert failures(gopay, ada) == ["device_locked"]

    def test_other_devices_still_sign_in(self, gopay: InMemoryGoPay) -> None:
        ada = gopay.register("ada@example.com")
        gopay.sign_in("ada@example.com", device_id="lost-phone")
        gopay.run(LockDevice(user_id=ada.id, device_id="lost-phone"))
        assert gopay.sign_in("ada@example.com", device_id="new-phone").session.device_id == "new-phone"


class TestRefreshTokens:
    def test_a_refresh_token_is_rotated(self, gopay: InMemoryGoPay) -> None:
        """Refreshing keeps the session and hands out a new token."""
        gopay.register("ada@example.com")
        signed_in = gopay.sign_in("ada@example.com")
        refreshed = gopay.run(RefreshSession(refresh_token=signed_in.refresh_token))
        assert refreshed.session.id == signed_in.session.id
        assert refreshed.refresh_token != signed_in.refresh_token
        assert gopay.event_types(signed_in.session.id) == ["Started", "Rotated"]
        gopay.run(RefreshSession(refresh_token=refreshed.refresh_token))

    def test_a_used_token_revokes_the_whole_session(self, gopay: InMemoryGoPay) -> None:
        """Presenting a spent token means it leaked: the session ends, its newest token with it."""
        gopay.register("ada@example.com")
        signed_in = gopay.sign_in("ada@example.com")
        newest = gopay.run(RefreshSession(refresh_token=signed_in.refresh_token)).refresh_token
        with pytest.raises(SessionRevoked, match="already used"):
            gopay.run(RefreshSession(refresh_token=signed_in.refresh_token))
        revoked = gopay.events(signed_in.session.id)[-1]
        assert isinstance(revoked, Session.Revoked) and revoked.reason == "refresh_token_reused"
        with pytest.raises(SessionRevoked, match="has ended"):
            gopay.run(RefreshSession(refresh_token=newest))

    @pytest.mark.parametrize("token", ["", "not-a-token", "7c1f0d2e-1b5a-4f62-9a53-3e0c5a0d9b11.x"])
    def test_a_token_of_no_session_is_refused(self, gopay: InMemoryGoPay, token: str) -> None:
        with pytest.raises(SessionRevoked):
            gopay.run(RefreshSession(refresh_token=token))


class TestSigningOut:
    def test_logout_ends_the_session_and_its_refresh_token(self, gopay: InMemoryGoPay) -> None:
        """After logout the session is revoked and refreshing it is refused."""
        gopay.register("ada@example.com")
        signed_in = gopay.sign_in("ada@example.com")
        session = gopay.run(EndSession(session_id=signed_in.session.id))
        assert session.revoked
        with pytest.raises(SessionRevoked):
            gopay.run(RefreshSession(refresh_token=signed_in.refresh_token))

    def test_logging_out_twice_records_one_revocation(self, gopay: InMemoryGoPay) -> None:
        gopay.register("ada@example.com")
        session_id = gopay.sign_in("ada@example.com").session.id
        gopay.run(EndSession(session_id=session_id))
        gopay.run(EndSession(session_id=session_id))
        assert gopay.event_types(session_id) == ["Started", "Revoked"]

    def test_sign_in_is_a_command_like_the_others(self) -> None:
        """The sign-in command is frozen: a handler cannot change what was asked."""
        command = SignIn(email="ada@example.com", password=PASSWORD)
        with pytest.raises(AttributeError):
            command.email = "eve@example.com"  # type: ignore[misc]  # frozen: what this test shows
        assert PASSWORD not in repr(command)
