"""Second factors: an authenticator app's codes (each time step once) and recovery codes (each once)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from gopay.aggregates.errors import InvalidState
from gopay.aggregates.user import OtpRejected, User
from gopay.commands.two_factor import (
    ConfirmSecondFactor,
    DisableTotp,
    EnableTotp,
    RenewRecoveryCodes,
    SetUpTotp,
)
from tests.unit.commands.in_memory import InMemoryGoPay


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


class TestSettingUp:
    def test_setting_up_gives_a_secret_to_scan(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The otpauth URI names GoPay and the user, and carries the secret the user keeps."""
        setup = gopay.run(SetUpTotp(user_id=ada.id))
        uri = urlsplit(setup.otpauth_uri)
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert parse_qs(uri.query)["secret"] == [setup.secret]
        assert parse_qs(uri.query)["issuer"] == ["GoPay"] and "ada%40example.com" in uri.path

    def test_a_secret_set_up_is_not_yet_required(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Until a first code enables it, signing in needs no code."""
        gopay.run(SetUpTotp(user_id=ada.id))
        assert not gopay.user(ada.id).totp_enabled
        gopay.sign_in("ada@example.com")

    def test_a_valid_code_enables_it_and_answers_recovery_codes(self, gopay: InMemoryGoPay,
                                                                ada: User) -> None:
        """The code the app shows now turns 2FA on; ten distinct recovery codes are shown once."""
        secret = gopay.run(SetUpTotp(user_id=ada.id)).secret
        codes = gopay.run(EnableTotp(user_id=ada.id, code=pyotp.TOTP(secret).at(gopay.clock())))
        assert len(set(codes)) == 10
        user = gopay.user(ada.id)
        assert user.totp_enabled
        assert not set(codes) & set(user.recovery_code_digests)  # kept only as digests

    def test_a_code_of_a_moment_ago_still_enables_it(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A phone clock 30 seconds behind is allowed for; a minute and a half is not."""
        secret = gopay.run(SetUpTotp(user_id=ada.id)).secret
        totp = pyotp.TOTP(secret)
        with pytest.raises(OtpRejected):
            gopay.run(EnableTotp(user_id=ada.id, code=totp.at(gopay.clock().timestamp() - 90)))
        gopay.run(EnableTotp(user_id=ada.id, code=totp.at(gopay.clock().timestamp() - 30)))

    @pytest.mark.parametrize("code", ["000000", "12345", "abcdef", ""])
    def test_a_wrong_code_does_not_enable_it(self, gopay: InMemoryGoPay, ada: User, code: str) -> None:
        gopay.run(SetUpTotp(user_id=ada.id))
        with pytest.raises(OtpRejected):
            gopay.run(EnableTotp(user_id=ada.id, code=code))
        assert not gopay.user(ada.id).totp_enabled

    def test_enabling_needs_a_secret_set_up_first(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(OtpRejected):
            gopay.run(EnableTotp(user_id=ada.id, code="123456"))

    def test_it_cannot_be_set_up_again_while_on(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A new secret would lock the user out of the one their app knows: disable first."""
        gopay.turn_on_two_factor(ada)
        with pytest.raises(InvalidState):
            gopay.run(SetUpTotp(user_id=ada.id))


class TestCodesAreSpentOnce:
    def test_the_code_that_enabled_it_cannot_sign_in(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The enabling code's time step is spent: replaying it fails."""
        secret = gopay.run(SetUpTotp(user_id=ada.id)).secret
        code = gopay.totp_code(secret)
        gopay.run(EnableTotp(user_id=ada.id, code=code))
        with pytest.raises(OtpRejected, match="already used"):
            gopay.sign_in("ada@example.com", otp=code)

    def test_a_code_older_than_one_used_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Once a step is spent, the steps before it are too, even within the drift allowed."""
        secret, _ = gopay.turn_on_two_factor(ada)
        earlier = gopay.totp_code(secret)
        gopay.clock.advance(seconds=30)
        gopay.sign_in("ada@example.com", otp=gopay.totp_code(secret))
        with pytest.raises(OtpRejected, match="already used"):
            gopay.sign_in("ada@example.com", otp=earlier)

    def test_a_recovery_code_works_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A recovery code stands in for the app once, typed in any case, and is then gone."""
        _, codes = gopay.turn_on_two_factor(ada)
        gopay.sign_in("ada@example.com", otp=f" {codes[0].upper()} ")
        with pytest.raises(OtpRejected):
            gopay.sign_in("ada@example.com", otp=codes[0])
        assert len(gopay.user(ada.id).recovery_code_digests) == 9
        gopay.sign_in("ada@example.com", otp=codes[1])

    def test_renewed_recovery_codes_replace_the_old_ones(self, gopay: InMemoryGoPay, ada: User) -> None:
        """After renewal only the new codes work."""
        secret, old = gopay.turn_on_two_factor(ada)
        new = gopay.run(RenewRecoveryCodes(user_id=ada.id, code=gopay.totp_code(secret)))
        with pytest.raises(OtpRejected):
            gopay.sign_in("ada@example.com", otp=old[1])
        gopay.sign_in("ada@example.com", otp=new[1])

    def test_renewing_needs_a_second_factor(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.turn_on_two_factor(ada)
        with pytest.raises(OtpRejected):
            gopay.run(RenewRecoveryCodes(user_id=ada.id, code="000000"))


class TestTurningItOff:
    def test_disabling_needs_a_code_and_then_sign_in_needs_none(self, gopay: InMemoryGoPay,
                                                               ada: User) -> None:
        secret, _ = gopay.turn_on_two_factor(ada)
        with pytest.raises(OtpRejected):
            gopay.run(DisableTotp(user_id=ada.id, code="000000"))
        gopay.run(DisableTotp(user_id=ada.id, code=gopay.totp_code(secret)))
        user = gopay.user(ada.id)
        assert (user.totp_enabled, user.totp_secret, user.recovery_code_digests) == (False, None, ())
        gopay.sign_in("ada@example.com")

    def test_disabling_what_is_off_is_refused(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(InvalidState):
            gopay.run(DisableTotp(user_id=ada.id, code=""))


class TestStepUp:
    def test_without_two_factor_no_code_is_asked(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A user without 2FA passes the step-up check and nothing is recorded."""
        head = gopay.head()
        gopay.run(ConfirmSecondFactor(user_id=ada.id, code=None))
        assert gopay.head() == head

    def test_with_two_factor_a_code_is_required(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.turn_on_two_factor(ada)
        with pytest.raises(OtpRejected, match="fresh code"):
            gopay.run(ConfirmSecondFactor(user_id=ada.id, code=None))

    def test_a_fresh_code_confirms_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The step-up spends its code: the same code cannot confirm a second payment."""
        secret, _ = gopay.turn_on_two_factor(ada)
        code = gopay.totp_code(secret)
        gopay.run(ConfirmSecondFactor(user_id=ada.id, code=code))
        assert gopay.event_types(ada.id)[-1] == "OtpUsed"
        with pytest.raises(OtpRejected, match="already used"):
            gopay.run(ConfirmSecondFactor(user_id=ada.id, code=code))

    def test_a_recovery_code_also_confirms(self, gopay: InMemoryGoPay, ada: User) -> None:
        _, codes = gopay.turn_on_two_factor(ada)
        gopay.run(ConfirmSecondFactor(user_id=ada.id, code=codes[5]))
        assert gopay.event_types(ada.id)[-1] == "RecoveryCodeUsed"
