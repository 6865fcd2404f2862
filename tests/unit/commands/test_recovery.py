"""Account recovery: a one-time token by e-mail sets a new password and ends every session."""

from __future__ import annotations

import re

import pytest

from gopay.aggregates.errors import TooManyAttempts, Unauthenticated
from gopay.aggregates.session import Session
from gopay.aggregates.user import RecoveryRefused, User
from gopay.commands.recovery import ConfirmRecovery, RequestRecovery
from tests.unit.commands.in_memory import PASSWORD, InMemoryGoPay, settings

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def recovery_token(gopay: InMemoryGoPay, user: User) -> str:
    """The token in the newest message waiting in the user's outbox."""
    newest = gopay.context.outbox.messages_for(user.id)[0]
    assert (newest.recipient, newest.subject) == (user.email, "Reset your GoPay password")
    found = re.search(rf"{user.id}\.[A-Za-z0-9_-]+", newest.body)
    assert found is not None, newest.body
    return found.group(0)


class TestRequesting:
    def test_a_token_is_mailed_to_the_account_s_address(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The message says how long the token lives; the user keeps only its digest."""
        gopay.run(RequestRecovery(email="ADA@example.com"))
        token = recovery_token(gopay, ada)
        assert "valid 30 minutes" in gopay.context.outbox.messages_for(ada.id)[0].body
        secret = token.partition(".")[2]
        user = gopay.user(ada.id)
        assert user.recovery_digest is not None and secret not in user.recovery_digest

    def test_the_outbox_keeps_the_message_sealed(self, gopay: InMemoryGoPay, ada: User) -> None:
        """At rest the address and the token are sealed under the user's data key."""
        gopay.run(RequestRecovery(email="ada@example.com"))
        token = recovery_token(gopay, ada)
        [stored] = gopay.app.stores.messages.for_user(ada.id)
        assert token not in stored.body and ada.email not in stored.recipient

    def test_an_unknown_email_sends_nothing_and_says_nothing(self, gopay: InMemoryGoPay) -> None:
        """The answer is the same as for a real account; no event, no message."""
        head = gopay.head()
        assert gopay.run(RequestRecovery(email="nobody@example.com")) is None
        assert gopay.head() == head

    def test_requests_are_throttled_like_failed_sign_ins(self) -> None:
        """Recovery cannot flood a mailbox: requests spend the sign-in allowance."""
        gopay = InMemoryGoPay(settings(login_failures_per_account=2))
        ada = gopay.register("ada@example.com")
        for _ in range(2):
            gopay.run(RequestRecovery(email="ada@example.com"))
        with pytest.raises(TooManyAttempts) as refused:
            gopay.run(RequestRecovery(email="ada@example.com"))
        assert refused.value.retry_after == 900
        assert len(gopay.context.outbox.messages_for(ada.id)) == 2


class TestConfirming:
    def test_the_token_sets_the_new_password(self, gopay: InMemoryGoPay, ada: User) -> None:
        """After recovery only the new password signs in."""
        gopay.run(RequestRecovery(email="ada@example.com"))
        gopay.run(ConfirmRecovery(token=recovery_token(gopay, ada), new_password=NEW_PASSWORD))
        with pytest.raises(Unauthenticated):
            gopay.sign_in("ada@example.com", PASSWORD)
        assert gopay.sign_in("ada@example.com", NEW_PASSWORD).user.id == ada.id

    def test_every_session_ends_with_it(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Sessions on devices and without one are all revoked, in the same commit."""
        sessions = [gopay.sign_in("ada@example.com", device_id=device).session.id
                    for device in ("phone", "laptop", None)]
        gopay.run(RequestRecovery(email="ada@example.com"))
        head = gopay.head()
        gopay.run(ConfirmRecovery(token=recovery_token(gopay, ada), new_password=NEW_PASSWORD))
        for session_id in sessions:
            revoked = gopay.events(session_id)[-1]
            assert isinstance(revoked, Session.Revoked) and revoked.reason == "password_reset"
        assert gopay.head() == head + 1 + len(sessions)

    def test_a_token_works_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.run(RequestRecovery(email="ada@example.com"))
        token = recovery_token(gopay, ada)
        gopay.run(ConfirmRecovery(token=token, new_password=NEW_PASSWORD))
        with pytest.raises(RecoveryRefused):
            gopay.run(ConfirmRecovery(token=token, new_password="yet another passphrase"))
        gopay.sign_in("ada@example.com", NEW_PASSWORD)

    def test_an_expired_token_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Past its 30 minutes the token opens nothing and the old password still works."""
        gopay.run(RequestRecovery(email="ada@example.com"))
        token = recovery_token(gopay, ada)
        gopay.clock.advance(minutes=30)
        with pytest.raises(RecoveryRefused):
            gopay.run(ConfirmRecovery(token=token, new_password=NEW_PASSWORD))
        gopay.sign_in("ada@example.com", PASSWORD)

    def test_a_token_just_inside_its_lifetime_works(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.run(RequestRecovery(email="ada@example.com"))
        token = recovery_token(gopay, ada)
        gopay.clock.advance(minutes=29, seconds=59)
        gopay.run(ConfirmRecovery(token=token, new_password=NEW_PASSWORD))

    def test_only_the_newest_token_works(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Asking again replaces the earlier token."""
        gopay.run(RequestRecovery(email="ada@example.com"))
        first = recovery_token(gopay, ada)
        gopay.run(RequestRecovery(email="ada@example.com"))
        with pytest.raises(RecoveryRefused):
            gopay.run(ConfirmRecovery(token=first, new_password=NEW_PASSWORD))
        gopay.run(ConfirmRecovery(token=recovery_token(gopay, ada), new_password=NEW_PASSWORD))

    @pytest.mark.parametrize("token", ["", "garbage", "not-a-uuid.secret",
                                       "7c1f0d2e-1b5a-4f62-9a53-3e0c5a0d9b11.secret"])
    def test_a_malformed_or_foreign_token_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                     token: str) -> None:
        with pytest.raises(RecoveryRefused):
            gopay.run(ConfirmRecovery(token=token, new_password=NEW_PASSWORD))

    def test_a_token_with_its_secret_changed_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.run(RequestRecovery(email="ada@example.com"))
        token = recovery_token(gopay, ada)
        for forged in (f"{ada.id}.", f"{ada.id}.{token[-10:]}", token + "x"):
            with pytest.raises(RecoveryRefused):
                gopay.run(ConfirmRecovery(token=forged, new_password=NEW_PASSWORD))
