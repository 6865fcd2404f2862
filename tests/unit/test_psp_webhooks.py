"""PSP webhook signatures: what `verify` accepts, and that it refuses anything else with a reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gopay.psp.webhooks import (
    MalformedSignature,
    MissingSignature,
    SignatureError,
    StaleSignature,
    WrongSignature,
    sign,
    verify,
)

SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"charge.succeeded"}'
NOW = 1_796_000_000

secrets_ = st.text(min_size=1, max_size=64)
bodies = st.binary(max_size=2_000)
timestamps = st.integers(0, 10**11)


def changed(data: bytes, position: int, new: int) -> bytes:
    """`data` with the byte at `position` replaced by another value."""
    position %= len(data)
    replacement = new if new != data[position] else (new + 1) % 256
    return data[:position] + bytes([replacement]) + data[position + 1:]


class TestSignAndVerify:
    @given(secrets_, bodies, timestamps, st.integers(-300, 300))
    def test_a_signed_body_verifies_within_five_minutes(self, secret: str, body: bytes,
                                                         timestamp: int, skew: int) -> None:
        """A body signed with the secret verifies, and gives back its signing time."""
        assert verify(secret, sign(secret, body, timestamp), body, now=timestamp + skew) == timestamp

    def test_the_header_is_the_documented_hmac(self) -> None:
        """The header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as API.md says."""
        expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"

    def test_another_v1_entry_may_stand_beside_the_right_one(self) -> None:
        """A PSP rotating its secret signs with both: one matching entry is enough."""
        header = sign(SECRET, BODY, NOW)
        other = sign("old secret", BODY, NOW).split(",")[1]
        assert verify(SECRET, f"{header},{other}", BODY, now=NOW) == NOW
        assert verify(SECRET, f"t={NOW},{other},{header.split(',')[1]}", BODY, now=NOW) == NOW


class TestRefusals:
    @given(secrets_, bodies.filter(bool), st.integers(0, 10**6), st.integers(0, 255))
    def test_any_single_byte_change_of_the_body_is_refused(self, secret: str, body: bytes,
                                                           position: int, new: int) -> None:
        """Tampering with any one byte of the raw body breaks the signature."""
        header = sign(secret, body, NOW)
        with pytest.raises(WrongSignature):
            verify(secret, header, changed(body, position, new), now=NOW)

    @given(secrets_, bodies, st.integers(0, 10**6), st.integers(0, 255))
    def test_any_single_byte_change_of_the_header_is_refused(self, secret: str, body: bytes,
                                                             position: int, new: int) -> None:
        """Tampering with any one byte of the header is refused, whatever the byte."""
        header = sign(secret, body, NOW).encode()
        with pytest.raises(SignatureError):
            verify(secret, changed(header, position, new).decode("latin-1"), body, now=NOW)

    @given(secrets_, secrets_, bodies)
    def test_another_secret_is_refused(self, secret: str, other: str, body: bytes) -> None:
        """A body signed with any other secret does not verify."""
        if other != secret:
            with pytest.raises(WrongSignature):
                verify(secret, sign(other, body, NOW), body, now=NOW)

    @pytest.mark.parametrize("skew", [301, -301, 86_400])
    def test_a_stale_or_future_timestamp_is_refused(self, skew: int) -> None:
        """A signature more than five minutes from now is refused, so an old delivery cannot be replayed."""
        with pytest.raises(StaleSignature):
            verify(SECRET, sign(SECRET, BODY, NOW), BODY, now=NOW + skew)

    @pytest.mark.parametrize("header", [None, ""])
    def test_a_missing_header_is_refused(self, header: str | None) -> None:
        """No header, no trust."""
        with pytest.raises(MissingSignature):
            verify(SECRET, header, BODY, now=NOW)

    @pytest.mark.parametrize("header", [
        "garbage", f"t={NOW}", "v1=" + "a" * 64, f"t={NOW},v1=", f"t={NOW},v1=zz",
        f"t={NOW},v1=" + "A" * 64, f"t=soon,v1={'a' * 64}", f"t={NOW},t={NOW},v1={'a' * 64}",
        f"t=-{NOW},v1={'a' * 64}", f"t={NOW};v1={'a' * 64}", f"t={NOW},v1={'a' * 63}"])
    def test_a_malformed_header_is_refused(self, header: str) -> None:
        """A header that is not `t=<digits>,v1=<64 hex digits>` is refused as malformed."""
        with pytest.raises(MalformedSignature):
            verify(SECRET, header, BODY, now=NOW)

    def test_an_empty_secret_is_a_configuration_error(self) -> None:
        """An empty secret would make every signature guessable: it is refused outright."""
        with pytest.raises(ValueError, match="secret is empty"):
            sign("", BODY, NOW)
