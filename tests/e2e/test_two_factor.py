"""Two-factor authentication: setup, enable, login with codes, recovery codes, step-up."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest

from tests.support import PASSWORD, Client, fund, register


def code(secret: str, steps_from_now: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_from_now)


def sign_in(client: Client, **fields: str) -> httpx.Response:
    return httpx.post(f"{client.base_url}/v1/auth/login",
                      json={"email": client.user["email"], "password": PASSWORD, **fields})


def with_two_factor(url: str) -> tuple[Client, str, list[str]]:
    """A customer who has just turned 2FA on: the client, its secret, its recovery codes."""
    client = register(url)
    setup = client.post("/v1/auth/2fa/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/GoPay:")
    enabled = client.post("/v1/auth/2fa/enable", {"otp": code(secret)})
    assert enabled.status_code == 200, enabled.text
    return client, secret, enabled.json()["recovery_codes"]


class TestEnabling:
    def test_setup_changes_nothing_until_a_valid_code_enables_it(self, server) -> None:  # type: ignore[no-untyped-def]
        """After setup alone, login needs no code; a wrong first code does not enable it."""
        client = register(server.url)
        secret = client.post("/v1/auth/2fa/setup").json()["secret"]
        assert sign_in(client).status_code == 200
        wrong = client.post("/v1/auth/2fa/enable", {"otp": "000000" if code(secret) != "000000"
                                                    else "111111"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "otp_required"
        assert client.get("/v1/me").json()["two_factor_enabled"] is False
        assert client.post("/v1/auth/2fa/enable", {"otp": code(secret)}).status_code == 200
        assert client.get("/v1/me").json()["two_factor_enabled"] is True

    def test_setup_again_while_enabled_is_refused(self, server) -> None:  # type: ignore[no-untyped-def]
        client, _, _ = with_two_factor(server.url)
        assert client.post("/v1/auth/2fa/setup").status_code == 409


class TestLogin:
    def test_a_password_alone_is_no_longer_enough(self, server) -> None:  # type: ignore[no-untyped-def]
        client, secret, _ = with_two_factor(server.url)
        missing = sign_in(client)
        assert missing.status_code == 401 and missing.json()["code"] == "otp_required"
        assert missing.headers["content-type"] == "application/problem+json"
        assert sign_in(client, otp=code(secret, 1)).status_code == 200

    def test_wrong_reused_and_drifted_codes_are_refused(self, server) -> None:  # type: ignore[no-untyped-def]
        """A code works once; a wrong one or one from minutes ago never does."""
        client, secret, _ = with_two_factor(server.url)
        fresh = code(secret, 1)
        assert sign_in(client, otp=fresh).status_code == 200
        reused = sign_in(client, otp=fresh)
        assert reused.status_code == 401 and reused.json()["code"] == "otp_required"
        for drifted in (code(secret, -4), code(secret, 4)):
            if drifted != fresh:
                assert sign_in(client, otp=drifted).status_code == 401
        wrong = str((int(fresh) + 1) % 1_000_000).zfill(6)
        assert sign_in(client, otp=wrong).status_code == 401

    def test_each_recovery_code_signs_in_once(self, server) -> None:  # type: ignore[no-untyped-def]
        client, _, recovery_codes = with_two_factor(server.url)
        assert len(recovery_codes) == 10 and len(set(recovery_codes)) == 10
        first = recovery_codes[0]
        assert sign_in(client, otp=first).status_code == 200
        assert sign_in(client, otp=first).status_code == 401
        assert sign_in(client, otp=recovery_codes[1].upper()).status_code == 200

    def test_renewed_recovery_codes_replace_the_old_ones(self, server) -> None:  # type: ignore[no-untyped-def]
        client, secret, old_codes = with_two_factor(server.url)
        renewed = client.post("/v1/auth/2fa/recovery-codes", {"otp": code(secret, 1)})
        assert renewed.status_code == 200, renewed.text
        assert sign_in(client, otp=old_codes[0]).status_code == 401
        assert sign_in(client, otp=renewed.json()["recovery_codes"][0]).status_code == 200


class TestDisabling:
    def test_disabling_takes_a_code(self, server) -> None:  # type: ignore[no-untyped-def]
        client, secret, _ = with_two_factor(server.url)
        assert client.post("/v1/auth/2fa/disable", {"otp": "123456" if code(secret, 1) != "123456"
                                                    else "654321"}).status_code == 401
        assert client.post("/v1/auth/2fa/disable", {"otp": code(secret, 1)}).status_code == 200
        assert sign_in(client).status_code == 200


class TestStepUp:
    def test_large_transfers_and_security_changes_need_a_fresh_code(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """From the step-up amount up, no code means 401 otp_required and no money moves."""
        client, secret, _ = with_two_factor(server.url)
        friend = register(server.url)
        fund(admin, client.user["wallet_id"], 200_000)
        large = {"recipient": friend.user["email"], "amount": 50_000, "currency": "USD"}
        refused = client.post("/v1/transfers", large, key="big-1")
        assert refused.status_code == 401 and refused.json()["code"] == "otp_required"
        assert client.balance() == 200_000

        small = client.post("/v1/transfers", {**large, "amount": 49_999})
        assert small.status_code == 201, small.text

        otp = code(secret, 1)
        sent = client.post("/v1/transfers", large, key="big-1", headers={"GoPay-OTP": otp})
        assert sent.status_code == 201, sent.text
        again = client.post("/v1/transfers", large, key="big-1", headers={"GoPay-OTP": otp})
        assert again.status_code == 201 and again.json()["id"] == sent.json()["id"]
        assert client.balance() == 200_000 - 49_999 - 50_000

        security = client.http.patch("/v1/me", json={"login_notifications": False})
        assert security.status_code == 401
        assert client.http.patch("/v1/me", json={"login_notifications": False},
                                 headers={"GoPay-OTP": code(secret, 1)}).status_code == 401  # used
        changed = client.http.patch("/v1/me", json={"login_notifications": False},
                                    headers={"GoPay-OTP": code(secret, 0)})
        assert changed.status_code == 401  # older than the last code used
        assert client.http.patch("/v1/me", json={"full_name": "No Code Needed"}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"otp": ""}, {"otp": 123456}, {"otp": "x" * 40}])
def test_malformed_codes_are_422(server, body) -> None:  # type: ignore[no-untyped-def]
    client = register(server.url)
    response = client.post("/v1/auth/2fa/enable", body)
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
